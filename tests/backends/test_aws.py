"""What S3 and the Glacier vault share (bakthat/backends/aws.py): the AWS side of a profile,
sessions and clients built from it, and botocore failures turned into bakthat errors.

The errors are botocore's own exception classes, raised by a real client against the
moto server (tests/backends/conftest.py) or an endpoint that refuses connections, and
built directly only for the cases neither can produce (a checksum failure, a missing
credential).
"""

from __future__ import annotations

import datetime
import logging

import pytest
from botocore import exceptions as botocore_errors

from bakthat.backends import aws
from bakthat.backends.aws import AwsConfig, aws_client, aws_session, explicit_region, to_epoch, translate_error
from bakthat.errors import (
    AlreadyExistsError,
    ConfigError,
    IntegrityError,
    NotFoundError,
    RetrievalPendingError,
    StorageError,
)

WHAT = "s3://bucket/some/key"


def client_error(code: str, status: int) -> botocore_errors.ClientError:
    return botocore_errors.ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject"
    )


# --------------------------------------------------------------------------- config


def test_the_config_takes_the_declared_defaults():
    config = AwsConfig.from_settings({})
    assert (config.access_key, config.secret_key, config.profile, config.region) == (None, None, None, None)
    assert (config.retry_mode, config.max_attempts, config.verify) == (
        aws.SETTINGS["s3_retry_mode"].default, aws.SETTINGS["s3_max_attempts"].default, aws.SETTINGS["s3_verify"].default
    )


def test_the_config_reads_the_profile_and_shows_no_secret():
    config = AwsConfig.from_settings(
        {"access_key": "AKIAEXAMPLE", "secret_key": "the-secret-key", "session_token": "the-token",
         "aws_profile": "work", "s3_max_attempts": "3", "s3_verify": "/etc/ca.pem"}
    )
    assert (config.access_key, config.secret_key, config.profile, config.max_attempts, config.verify) == (
        "AKIAEXAMPLE", "the-secret-key", "work", 3, "/etc/ca.pem"
    )
    for secret in ("AKIAEXAMPLE", "the-secret-key", "the-token"):
        assert secret not in repr(config)


@pytest.mark.parametrize("settings", [{"access_key": "AKIAONLY"}, {"secret_key": "only-the-secret"}])
def test_one_key_without_the_other_is_a_config_error(settings):
    with pytest.raises(ConfigError, match="set both access_key and secret_key, or neither"):
        AwsConfig.from_settings(settings)


@pytest.mark.parametrize("attempts", [0, -1, "none"])
def test_attempts_below_one_are_a_config_error_naming_the_key(attempts):
    with pytest.raises(ConfigError, match="s3_max_attempts must"):
        AwsConfig.from_settings({"s3_max_attempts": attempts})


def test_the_region_is_the_users_only_when_the_raw_profile_sets_it():
    assert explicit_region({"region_name": "eu-west-1"}) == "eu-west-1"  # a plain dict: the user's
    assert explicit_region({"region_name": "us-east-1", "_raw": {}}) is None  # the core default
    assert explicit_region({"region_name": "eu-west-3", "_raw": {"region_name": "eu-west-3"}}) == "eu-west-3"

    class Resolved(dict):
        raw = {"s3_bucket": "b"}

    assert explicit_region(Resolved(region_name="us-east-1")) is None
    assert explicit_region({}) is None


# --------------------------------------------------------------------------- sessions and clients


def test_a_session_uses_the_profile_keys_and_region(aws, caplog):
    session = aws_session(AwsConfig(access_key="AKIAPROFILEKEY", secret_key="profile-secret-key", region="eu-west-1"))
    credentials = session.get_credentials().get_frozen_credentials()
    assert (credentials.access_key, credentials.secret_key, session.region_name) == ("AKIAPROFILEKEY", "profile-secret-key", "eu-west-1")
    caplog.set_level(logging.DEBUG)
    logging.getLogger("botocore").debug("signing with %s and %s", "AKIAPROFILEKEY", "profile-secret-key")
    assert "AKIAPROFILEKEY" not in caplog.text and "profile-secret-key" not in caplog.text and "***" in caplog.text


def test_without_keys_a_session_uses_the_credential_chain_and_its_region(aws, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    session = aws_session(AwsConfig())
    assert session.get_credentials().get_frozen_credentials().access_key == "testing-access-key"
    assert session.region_name == "ap-south-1"
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert aws_session(AwsConfig()).region_name == "us-east-1"  # no region anywhere


def test_an_unknown_aws_profile_is_a_config_error_naming_it(aws):
    with pytest.raises(ConfigError, match="AWS profile 'nowhere' not found"):
        aws_session(AwsConfig(profile="nowhere"))


def test_a_client_carries_the_retries_checksums_and_addressing(aws):
    client = aws_client(AwsConfig(max_attempts=2, retry_mode="adaptive"), "s3", endpoint_url=aws, checksum_mode="when_required")
    config = client.meta.config
    # botocore counts the first request too: max_attempts 2 becomes total_max_attempts 3
    assert config.retries == {"mode": "adaptive", "total_max_attempts": 3}
    assert config.request_checksum_calculation == "when_required" == config.response_checksum_validation
    assert config.s3["addressing_style"] == "path"  # an endpoint_url means path style
    assert client.meta.endpoint_url == aws
    client.create_bucket(Bucket="through-aws-client")
    assert "through-aws-client" in [bucket["Name"] for bucket in client.list_buckets()["Buckets"]]


# --------------------------------------------------------------------------- error translation


def test_a_missing_object_on_the_server_is_not_found_naming_it(aws):
    client = aws_client(AwsConfig(), "s3", endpoint_url=aws)
    client.create_bucket(Bucket="bucket")
    with pytest.raises(botocore_errors.ClientError) as raised:
        client.get_object(Bucket="bucket", Key="some/key")
    error = translate_error(raised.value, "reading", WHAT)
    assert isinstance(error, NotFoundError)
    assert str(error) == f"reading {WHAT}: not found (NoSuchKey)"


def test_a_failed_if_match_on_the_server_is_already_exists(aws):
    client = aws_client(AwsConfig(), "s3", endpoint_url=aws)
    client.create_bucket(Bucket="bucket")
    client.put_object(Bucket="bucket", Key="k", Body=b"v")
    with pytest.raises(botocore_errors.ClientError) as raised:
        client.get_object(Bucket="bucket", Key="k", IfMatch='"not-the-etag"')
    error = translate_error(raised.value, "reading", WHAT)
    assert isinstance(error, AlreadyExistsError) and "changed meanwhile (PreconditionFailed)" in str(error)


def test_an_endpoint_that_refuses_connections_is_a_storage_error_saying_so(aws):
    client = aws_client(AwsConfig(max_attempts=1), "s3", endpoint_url="http://127.0.0.1:1")
    with pytest.raises(botocore_errors.EndpointConnectionError) as raised:
        client.list_buckets()
    error = translate_error(raised.value, "listing", WHAT)
    assert isinstance(error, StorageError)
    assert str(error) == f"listing {WHAT}: cannot reach the store (EndpointConnectionError)"


@pytest.mark.parametrize(
    ("error", "expected", "message"),
    [
        (client_error("NoSuchBucket", 404), NotFoundError, f"reading {WHAT}: not found (NoSuchBucket)"),
        (client_error("", 404), NotFoundError, f"reading {WHAT}: not found (404)"),
        (client_error("AccessDenied", 403), StorageError,
         f"reading {WHAT}: access denied (AccessDenied); check the credentials and the bucket policy"),
        (client_error("SignatureDoesNotMatch", 403), StorageError, "access denied (SignatureDoesNotMatch)"),
        (client_error("InvalidObjectState", 403), RetrievalPendingError,
         f"{WHAT} is in an archive storage class and has not been restored"),
        (client_error("BadDigest", 400), IntegrityError, f"reading {WHAT}: checksum mismatch (BadDigest)"),
        (client_error("SlowDown", 503), StorageError, f"reading {WHAT} failed (SlowDown)"),
        (botocore_errors.FlexibleChecksumError(error_msg="crc32 mismatch"), IntegrityError,
         "checksum mismatch (FlexibleChecksumError); the data was damaged in transit"),
        (botocore_errors.NoCredentialsError(), ConfigError, "no usable AWS credentials"),
        (botocore_errors.ReadTimeoutError(endpoint_url="http://s3"), StorageError, "cannot reach the store (ReadTimeoutError)"),
        (ValueError("odd"), StorageError, f"reading {WHAT} failed (ValueError)"),
    ],
)
def test_each_botocore_failure_becomes_the_bakthat_error_naming_the_object(error, expected, message):
    translated = translate_error(error, "reading", WHAT)
    assert type(translated) is expected
    assert message in str(translated)


def test_a_bakthat_error_passes_through_unchanged():
    original = IntegrityError("already ours")
    assert translate_error(original, "reading", WHAT) is original


def test_no_credential_reaches_a_translated_message():
    error = botocore_errors.ClientError(
        {"Error": {"Code": "InvalidAccessKeyId", "Message": "The key AKIALEAKED does not exist"},
         "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject"
    )
    assert "AKIALEAKED" not in str(translate_error(error, "storing", WHAT))


def test_to_epoch_reads_a_datetime_or_gives_none():
    moment = datetime.datetime(2024, 6, 4, 19, 10, 55, tzinfo=datetime.timezone.utc)
    assert to_epoch(moment) == 1717528255.0
    assert to_epoch(None) is None
