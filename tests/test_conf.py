"""Configuration: profiles, precedence, validation messages, safe writing, 0.6 files."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys

import pytest
import yaml

from bakthat import conf
from bakthat.conf import ConfigError, Setting, get_profile
from tests.conftest import ROOT

#: A ~/.bakthat.yml as bakthat 0.6 users have them: profiles, a rotation block, plugins,
#: Swift and BakManager keys, and the top-level sync section.
CONFIG_06 = """\
default:
  access_key: AKIAEXAMPLE
  secret_key: wJalrXUtnFEMI/K7MDENG
  s3_bucket: mybucket
  glacier_vault: ''
  region_name: eu-west-1
  default_destination: s3
  compress: true
  plugins: [myplugins.TestPlugin, other.Plugin]
  plugins_dir: ~/.bakthat_plugins
  bakmanager_token: 0123456789abcdef
  rotation:
    days: 7
    weeks: 6
    months: 6
    first_week_day: 5
glacier:
  access_key: AKIAEXAMPLE
  secret_key: wJalrXUtnFEMI/K7MDENG
  glacier_vault: myvault
  s3_bucket: ''
  region_name: us-east-1
  default_destination: glacier
  rotation: {days: 3, weeks: 2, months: 1, first_week_day: 0, hours: 12}
swift:
  access_key: 'account:user'
  secret_key: password
  s3_bucket: container
  auth_url: https://auth.example.com/v1.0
  auth_version: '1'
  default_destination: local
  compress: false
sync:
  url: http://sync.example.com
  username: me
  password: pw
  auto: true
"""


def write(home, text: str, name: str = ".bakthat.yml", mode: int = 0o600):
    path = home / name
    path.write_text(text)
    path.chmod(mode)
    return path


def error_of(*args, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        get_profile(*args, **kwargs)
    return str(info.value)


# -- 0.6 files ---------------------------------------------------------------------


def test_a_06_config_loads_unchanged_in_every_profile(home):
    path = write(home, CONFIG_06)
    before = path.read_bytes()
    default = get_profile()
    assert default["s3_bucket"] == "mybucket" and default["region_name"] == "eu-west-1"
    assert default["rotation"] == {"days": 7, "weeks": 6, "months": 6, "first_week_day": 5}
    assert default["plugins"] == ["myplugins.TestPlugin", "other.Plugin"]
    assert get_profile("glacier")["rotation"]["hours"] == 12
    swift = get_profile("swift")
    assert swift["auth_version"] == "1" and swift["compression"] == "none"
    assert path.read_bytes() == before
    assert conf.check_config() == []


def test_the_developer_guide_conf_dict_is_valid():
    settings = get_profile(conf={"access_key": "K", "secret_key": "S", "glacier_vault": "v", "s3_bucket": "b",
                                 "region_name": "eu-west-1", "rotation": {"days": 7, "first_week_day": 5}})
    assert settings["default_destination"] == "local" and settings["s3_bucket"] == "b"


def test_aws_keys_are_optional_even_for_s3(home):
    write(home, "default:\n  default_destination: s3\n  s3_bucket: b\n")
    settings = get_profile()
    assert settings["access_key"] is None and settings["secret_key"] is None


# -- validation messages, exactly ---------------------------------------------------


def test_an_unknown_key_names_file_profile_key_and_the_near_spelling(home):
    write(home, "default:\n  compresion: gzip\n")
    assert error_of() == "~/.bakthat.yml: profile 'default': unknown key 'compresion' (did you mean 'compression'?)"


def test_an_unknown_key_without_a_near_spelling_points_to_the_list(home):
    write(home, "work:\n  zzz: 1\n")
    assert error_of("work") == (
        "~/.bakthat.yml: profile 'work': unknown key 'zzz' (bakthat configure --list-keys lists the known keys)"
    )


def test_a_wrong_type_names_the_expected_type(home):
    write(home, "default:\n  compression_level: '3'\n")
    assert error_of() == "~/.bakthat.yml: profile 'default': key 'compression_level' must be an integer, not a string"


def test_a_boolean_is_not_an_integer(home):
    write(home, "default:\n  scrypt_work_factor: yes\n")
    assert error_of() == "~/.bakthat.yml: profile 'default': key 'scrypt_work_factor' must be an integer, not true or false"


def test_a_value_outside_the_choices_suggests_the_near_one(home):
    write(home, "default:\n  compression: zstf\n")
    assert error_of() == (
        "~/.bakthat.yml: profile 'default': key 'compression' must be one of zstd, gzip, none, not 'zstf' (did you mean 'zstd'?)"
    )


def test_a_key_without_a_value_is_a_missing_value(home):
    write(home, "default:\n  local_path:\n")
    assert error_of() == "~/.bakthat.yml: profile 'default': key 'local_path' needs a value"


def test_a_destination_without_its_required_key_is_an_error(home):
    write(home, "default:\n  default_destination: s3\n")
    assert error_of() == "~/.bakthat.yml: profile 'default': key 's3_bucket' is required when the destination is s3"


def test_an_empty_required_key_is_missing_too(home):
    write(home, "default:\n  default_destination: s3\n  s3_bucket: ''\n")
    assert error_of() == "~/.bakthat.yml: profile 'default': key 's3_bucket' is required when the destination is s3"


def test_every_problem_is_reported_one_per_line(home):
    write(home, "default:\n  compresion: gzip\n  compression_level: x\n")
    assert error_of().splitlines() == [
        "~/.bakthat.yml: profile 'default': unknown key 'compresion' (did you mean 'compression'?)",
        "~/.bakthat.yml: profile 'default': key 'compression_level' must be an integer, not a string",
    ]


def test_a_config_outside_home_is_named_by_its_full_path(tmp_path):
    path = write(tmp_path, "default:\n  compresion: gzip\n", name="other.yml")
    assert error_of(config=str(path)) == (
        f"{path}: profile 'default': unknown key 'compresion' (did you mean 'compression'?)"
    )


def test_a_conf_dict_is_validated_too():
    assert error_of(conf={"local_pth": "/x"}) == "conf=: profile 'default': unknown key 'local_pth' (did you mean 'local_path'?)"


def test_a_secret_value_never_appears_in_a_message(home):
    write(home, "default:\n  secret_key: [hunter2-secret]\n")
    message = error_of()
    assert message == "~/.bakthat.yml: profile 'default': key 'secret_key' must be a string, not a list"
    assert "hunter2" not in message


def test_a_setting_at_the_top_level_is_not_a_profile(home):
    write(home, "region_name: eu-west-1\n")
    assert error_of() == (
        "~/.bakthat.yml: top-level key 'region_name' is not a profile ('region_name' is a setting): "
        "put settings under a profile name such as 'default:'"
    )


def test_the_sync_section_is_checked(home):
    write(home, "sync:\n  urll: http://x\n")
    assert error_of() == "~/.bakthat.yml: sync: unknown key 'urll' (did you mean 'url'?)"


def test_sync_is_not_a_profile(home):
    write(home, "default: {}\nsync:\n  url: http://x\n")
    assert error_of("sync") == "~/.bakthat.yml: no profile 'sync' (profiles: default)"


def test_a_python_object_tag_is_refused_by_safe_loading(home):
    write(home, "default: !!python/object/apply:os.system ['touch pwned']\n")
    assert error_of().startswith("~/.bakthat.yml: invalid YAML: could not determine a constructor")
    assert not (home / "pwned").exists()


def test_sub_keys_of_a_mapping_setting_are_checked_when_declared():
    setting = Setting(dict, None, "a scheme", keys=("days", "weeks"))
    assert conf.check_value("rotation", setting, {"dyas": 1}) == "unknown key 'rotation.dyas' (did you mean 'rotation.days'?)"
    assert conf.check_value("rotation", setting, {"days": 1}) is None


# -- precedence ----------------------------------------------------------------------


def test_precedence_defaults_file_conf_environment(home, monkeypatch, tmp_path):
    write(home, "default:\n  compression: gzip\n  local_path: /from/file\n")
    assert get_profile()["compression"] == "gzip"
    assert get_profile()["database"] == "~/.bakthat.sqlite"
    assert get_profile(conf={"local_path": "/from/conf"})["compression"] == "zstd"
    monkeypatch.setenv("BAKTHAT_COMPRESSION", "none")
    monkeypatch.setenv("BAKTHAT_LOCAL_PATH", "/from/env")
    assert get_profile()["compression"] == "none"
    assert get_profile(conf={"local_path": "/from/conf"})["local_path"] == "/from/env"


def test_bakthat_config_selects_the_file_and_c_wins_over_it(tmp_path, monkeypatch):
    write(tmp_path, "default:\n  compression: gzip\n", name="env.yml")
    write(tmp_path, "default:\n  compression: none\n", name="flag.yml")
    monkeypatch.setenv("BAKTHAT_CONFIG", str(tmp_path / "env.yml"))
    assert get_profile()["compression"] == "gzip"
    assert get_profile(config=str(tmp_path / "flag.yml"))["compression"] == "none"


def test_a_named_config_that_does_not_exist_is_an_error_naming_it(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="^" + str(tmp_path / "typo.yml") + ": config file not found$"):
        get_profile(config=str(tmp_path / "typo.yml"))
    monkeypatch.setenv("BAKTHAT_CONFIG", str(tmp_path / "env-typo.yml"))
    with pytest.raises(ConfigError, match="env-typo.yml: config file not found$"):
        get_profile()
    assert conf.load_config(str(tmp_path / "new.yml"), create=True) == {}  # configure writes it next


def test_the_default_config_may_be_missing(home):
    assert not (home / ".bakthat.yml").exists()
    assert get_profile()["compression"] == "zstd"


def test_environment_values_are_typed(monkeypatch):
    monkeypatch.setenv("BAKTHAT_COMPRESSION_LEVEL", "9")
    monkeypatch.setenv("BAKTHAT_COMPRESS", "no")
    monkeypatch.setenv("BAKTHAT_PLUGINS", "a.B, c.D")
    monkeypatch.setenv("BAKTHAT_DESTINATION", "local")
    settings = get_profile()
    assert settings["compression_level"] == 9 and settings["compress"] is False
    assert settings["compression"] == "none" and settings["plugins"] == ["a.B", "c.D"]


def test_a_bad_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("BAKTHAT_COMPRESSION_LEVEL", "high")
    assert error_of() == "environment variable BAKTHAT_COMPRESSION_LEVEL: key 'compression_level' must be an integer"
    monkeypatch.setenv("BAKTHAT_COMPRESSION_LEVEL", "3")
    monkeypatch.setenv("BAKTHAT_COMPRESSION", "lz4")
    assert error_of() == (
        "environment variable BAKTHAT_COMPRESSION: key 'compression' must be one of zstd, gzip, none, not 'lz4'"
    )


def test_compression_from_the_environment_beats_compress_false(home, monkeypatch):
    write(home, "default:\n  compress: false\n")
    assert get_profile()["compression"] == "none"
    monkeypatch.setenv("BAKTHAT_COMPRESSION", "gzip")
    assert get_profile()["compression"] == "gzip"


def test_every_scalar_key_has_an_environment_variable():
    variables = conf.env_overrides()
    assert variables["BAKTHAT_DESTINATION"] == "default_destination"
    assert variables["BAKTHAT_SECRET_KEY"] == "secret_key"
    assert "BAKTHAT_PASSWORD" not in variables and "BAKTHAT_CONFIG" not in variables
    assert "BAKTHAT_ROTATION" not in variables


# -- secrets and file modes ------------------------------------------------------------


def test_a_readable_config_holding_secrets_gets_a_warning(home, caplog, monkeypatch):
    monkeypatch.setattr(conf, "_warned", set())
    write(home, CONFIG_06, mode=0o644)
    with caplog.at_level(logging.WARNING, logger="bakthat"):
        get_profile()
        get_profile("glacier")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "~/.bakthat.yml holds secrets (default.secret_key, default.bakmanager_token, glacier.secret_key, "
        "swift.secret_key, sync.password) and other users can read it (mode 0644): run chmod 600 ~/.bakthat.yml"
    ]
    assert "wJalrXUtnFEMI" not in caplog.text


def test_no_warning_for_a_private_file_or_a_file_without_secrets(home, caplog, monkeypatch):
    monkeypatch.setattr(conf, "_warned", set())
    write(home, CONFIG_06, mode=0o600)
    write(home, "default:\n  access_key: AKIA\n  database_url: postgresql://db/bakthat\n", name="open.yml", mode=0o644)
    with caplog.at_level(logging.WARNING, logger="bakthat"):
        get_profile()
        get_profile(config=str(home / "open.yml"))
    assert caplog.records == []


def test_a_database_url_with_a_password_is_a_secret(home):
    data = {"default": {"database_url": "postgresql://u:pw@db/x"}, "b": {"database_url": "postgresql://db/x"}}
    assert conf.secrets_in(data) == ["default.database_url"]


def test_public_view_masks_secrets():
    view = conf.public_view(get_profile(conf={"secret_key": "S3CR3T", "access_key": "AKIA"}))
    assert view["secret_key"] == "********" and view["access_key"] == "AKIA"
    assert not any(key.startswith("_") for key in view)


# -- writing ---------------------------------------------------------------------------


def test_update_profile_writes_0600_and_keeps_other_profiles(home):
    write(home, CONFIG_06, mode=0o644)
    path, new = conf.update_profile("default", {"compression": "gzip", "rotation.days": 3}, unset=["bakmanager_token"])
    assert path == home / ".bakthat.yml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = yaml.safe_load(path.read_text())
    assert data["default"]["compression"] == "gzip" and "bakmanager_token" not in data["default"]
    assert data["default"]["rotation"] == {"days": 3, "weeks": 6, "months": 6, "first_week_day": 5}
    assert data["glacier"]["glacier_vault"] == "myvault" and data["sync"]["auto"] is True
    assert [p.name for p in home.iterdir()] == [".bakthat.yml"]


def test_update_profile_creates_a_missing_file_and_profile(tmp_path):
    target = tmp_path / "new" / "conf.yml"
    conf.update_profile("work", {"local_path": "/x"}, config=str(target))
    assert yaml.safe_load(target.read_text()) == {"work": {"local_path": "/x"}}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_an_invalid_change_writes_nothing(home):
    path = write(home, CONFIG_06)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="unknown key 'compresion'"):
        conf.update_profile("default", {"compresion": "gzip"})
    assert path.read_bytes() == before


def test_an_unparsable_file_is_never_overwritten(home):
    path = write(home, "default: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        conf.update_profile("default", {"compression": "gzip"})
    assert path.read_text() == "default: [unclosed\n"


def test_a_failed_write_leaves_the_old_file_and_no_temp(home, monkeypatch):
    path = write(home, CONFIG_06)
    before = path.read_bytes()

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(ConfigError) as info:
        conf.update_profile("default", {"compression": "gzip"})
    assert str(info.value) == "~/.bakthat.yml: cannot write config: No space left on device; the file was not changed"
    assert path.read_bytes() == before
    assert [p.name for p in home.iterdir()] == [".bakthat.yml"]


def test_a_symlinked_config_stays_a_symlink(home, tmp_path):
    real = write(tmp_path, "default: {}\n", name="dotfiles.yml")
    (home / ".bakthat.yml").symlink_to(real)
    conf.update_profile("default", {"compression": "none"})
    assert (home / ".bakthat.yml").is_symlink()
    assert yaml.safe_load(real.read_text()) == {"default": {"compression": "none"}}


def test_check_config_reports_every_profile(home):
    write(home, "a:\n  compresion: x\nb:\n  default_destination: s3\n")
    assert conf.check_config() == [
        "~/.bakthat.yml: profile 'a': unknown key 'compresion' (did you mean 'compression'?)",
        "~/.bakthat.yml: profile 'b': key 's3_bucket' is required when the destination is s3",
    ]


# -- the schema ----------------------------------------------------------------------


def test_settings_are_collected_from_core_backends_rotation_and_heartbeat():
    modules = conf.settings_by_module()
    assert "bakthat.conf" in modules and "bakthat.heartbeat" in modules
    keys = conf.collect_settings()
    assert {"local_path", "heartbeat_url", "rotation", "s3_bucket", "secret_key"} <= set(keys)


def test_collecting_settings_imports_no_heavy_dependency(tmp_path):
    code = (
        "import sys; from bakthat import conf; conf.collect_settings(); conf.get_profile();"
        "heavy = [m for m in ('boto3', 'botocore', 'zstandard', 'cryptography') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
