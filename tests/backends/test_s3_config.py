"""The S3 backend's typed config (bakthat/backends/_s3_config.py): defaults from SETTINGS,
every bad value a ConfigError naming its key, no secret in its repr."""

from __future__ import annotations


import pytest

from bakthat.backends import s3
from bakthat.backends._config import parse_size
from bakthat.backends._s3_config import SETTINGS, S3Config
from bakthat.errors import ConfigError

MiB = 1 << 20


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError):
        s3.Backend({})
    with pytest.raises(ConfigError):
        s3.Backend({"s3_bucket": "b", "part_size": "1MiB"})
    with pytest.raises(ConfigError):
        s3.Backend({"s3_bucket": "b", "storage_class": "COLD"})
    assert parse_size("64MB", 0) == 64 * MiB and parse_size(5 * MiB, 0) == 5 * MiB


@pytest.mark.parametrize("key", ["concurrency", "s3_max_attempts", "retrieval_days"])
def test_a_zero_where_a_count_is_needed_names_the_key(key):
    with pytest.raises(ConfigError, match=key):
        s3.Backend({"s3_bucket": "b", key: 0})


def test_the_typed_config_takes_the_declared_defaults_and_shows_no_secret():
    store = s3.Backend({"s3_bucket": "b", "access_key": "AKIAEXAMPLE", "secret_key": "very-secret-key"})
    config = store.config
    assert config.part_size == parse_size(s3.SETTINGS["part_size"].default, 0) == 5 * MiB
    assert (config.concurrency, config.checksum_mode, config.abort_incomplete_days) == (
        s3.SETTINGS["concurrency"].default, s3.SETTINGS["checksum_mode"].default, s3.SETTINGS["s3_abort_incomplete_days"].default
    )
    assert config.retrieval.tier == "Standard" and config.aws.max_attempts == 5
    assert "very-secret-key" not in repr(config) and "AKIAEXAMPLE" not in repr(config)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"part_size": "1MiB"}, "part_size must be between 5 MiB and 5 GiB, not 1048576 bytes"),
        ({"part_size": "6GiB"}, "part_size must be between 5 MiB and 5 GiB"),
        ({"concurrency": 65}, "concurrency must be from 1 to 64, not 65"),
        ({"concurrency": -2}, "concurrency must be from 1 to 64, not -2"),
        ({"s3_abort_incomplete_days": -1}, "s3_abort_incomplete_days must be at least 0"),
        ({"checksum_mode": "always"}, "checksum_mode must be when_supported or when_required"),
        ({"checksum_algorithm": "CRC64"}, "checksum_algorithm must be one of"),
        ({"storage_class": "COLD"}, "unknown storage_class 'COLD'"),
    ],
)
def test_each_value_out_of_range_is_a_config_error_naming_its_key(settings, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        S3Config.from_settings({"s3_bucket": "b", **settings})


def test_a_missing_bucket_names_the_key_and_the_destination():
    with pytest.raises(ConfigError, match="destination glacier needs s3_bucket"):
        S3Config.from_settings({"s3_bucket": ""}, destination="glacier")


def test_the_prefix_is_stripped_of_slashes_and_ends_with_one():
    assert S3Config.from_settings({"s3_bucket": "b", "s3_prefix": "/host1/backups/"}).prefix == "host1/backups/"
    assert S3Config.from_settings({"s3_bucket": "b", "s3_prefix": "/"}).prefix == ""


def test_the_part_checksum_defaults_to_md5_for_stores_that_want_checksums_only_when_required():
    assert S3Config.from_settings({"s3_bucket": "b"}).checksum_algorithm == "CRC32"
    assert S3Config.from_settings({"s3_bucket": "b", "checksum_mode": "when_required"}).checksum_algorithm == "MD5"
    explicit = S3Config.from_settings({"s3_bucket": "b", "checksum_mode": "when_required", "checksum_algorithm": "SHA256"})
    assert explicit.checksum_algorithm == "SHA256"


def test_sizes_and_counts_given_as_strings_are_read():
    config = S3Config.from_settings({"s3_bucket": "b", "part_size": "64MB", "concurrency": "8"})
    assert (config.part_size, config.concurrency) == (64 * MiB, 8)


def test_the_backend_module_reexports_the_declared_settings():
    assert s3.SETTINGS is SETTINGS and s3.S3Config is S3Config
