"""The resolved settings of a profile (bakthat.settings): a read-only mapping that knows its
profile, its source, the profile as written and the destination used by default."""

from __future__ import annotations

import pytest

from bakthat.conf import get_profile
from bakthat.settings import DEFAULT_DESTINATION, Settings, profile_of, source_of


def test_settings_read_as_a_plain_mapping():
    settings = Settings({"compression": "zstd", "s3_bucket": None})
    assert settings["compression"] == "zstd" and settings.get("s3_bucket") is None
    assert settings.get("missing", "fallback") == "fallback"
    assert dict(settings) == {"compression": "zstd", "s3_bucket": None} and len(settings) == 2
    assert "compression" in settings and "s3_region" not in settings
    with pytest.raises(KeyError):
        settings["missing"]


def test_settings_cannot_be_changed_in_place_and_do_not_follow_the_dict_they_came_from():
    values = {"compression": "zstd"}
    settings = Settings(values)
    with pytest.raises(TypeError):
        settings["compression"] = "gzip"  # type: ignore[index]
    with pytest.raises(AttributeError):
        settings.other = 1  # type: ignore[attr-defined]
    values["compression"] = "gzip"
    assert settings["compression"] == "zstd"


def test_without_a_source_the_settings_are_the_default_profile_from_conf_written_as_given():
    settings = Settings({"compression": "zstd"})
    assert (settings.profile, settings.source, settings.raw) == ("default", "conf=", {"compression": "zstd"})


def test_the_destination_is_default_destination_else_local():
    assert Settings({}).destination == DEFAULT_DESTINATION == "local"
    assert Settings({"default_destination": None}).destination == "local"
    assert Settings({"default_destination": "s3"}).destination == "s3"


def test_the_repr_names_profile_and_source_and_never_a_value():
    settings = Settings({"password": "s3cr3t-value", "secret_key": "AKIA-SECRET"}, profile="prod", source="~/.bakthat.yml")
    text = repr(settings)
    assert text == "<Settings of profile 'prod' from ~/.bakthat.yml: 2 keys>"
    assert "s3cr3t" not in text and "AKIA" not in text


def test_replace_changes_values_and_keeps_profile_source_and_the_raw_profile():
    settings = Settings({"compression": "zstd", "tags": ""}, profile="prod", source="f.yml", raw={"compression": "zstd"})
    changed = settings.replace(compression="gzip")
    assert changed["compression"] == "gzip" and changed["tags"] == ""
    assert (changed.profile, changed.source, changed.raw) == ("prod", "f.yml", {"compression": "zstd"})
    assert settings["compression"] == "zstd"  # the original is unchanged


def test_profile_of_and_source_of_fall_back_for_a_plain_mapping():
    settings = Settings({}, profile="prod", source="f.yml")
    assert (profile_of(settings), source_of(settings)) == ("prod", "f.yml")
    assert (profile_of({"profile": "not-this"}), source_of({})) == ("default", "the config file")
    assert (profile_of({}, "other"), source_of({}, "here")) == ("other", "here")


def test_get_profile_returns_settings_that_know_their_file_and_raw_profile(home):
    (home / ".bakthat.yml").write_text("default:\n  compression: gzip\nprod:\n  default_destination: s3\n  s3_bucket: b\n")
    settings = get_profile("prod")
    assert isinstance(settings, Settings)
    assert settings.profile == "prod" and settings.source == "~/.bakthat.yml"
    assert settings.raw == {"default_destination": "s3", "s3_bucket": "b"}
    assert settings.destination == "s3" and settings["compression"] == "zstd"  # a default, not the other profile's


def test_get_profile_from_a_conf_dict_names_conf_as_its_source():
    settings = get_profile(conf={"compression": "none"})
    assert settings.source == "conf=" and settings.raw == {"compression": "none"} and settings["compression"] == "none"


# -- Setting: one key's declaration ---------------------------------------------------------


def test_a_setting_is_read_only_compared_by_value_and_replaced_as_a_copy():
    from bakthat.settings import Setting

    setting = Setting(int, 5, "attempts", choices=(1, 5), required_for=("s3",))
    assert setting == Setting(int, 5, "attempts", (1, 5), False, ("s3",)) and hash(setting) == hash(Setting(int, 5, "attempts", (1, 5), False, ("s3",)))
    with pytest.raises(AttributeError, match="read-only"):
        setting.default = 6
    secret = setting.replace(secret=True)
    assert secret.secret and not setting.secret and secret.choices == (1, 5) and secret != setting
    with pytest.raises(TypeError, match="no field secrett"):
        setting.replace(secrett=True)


def test_importing_the_declarations_does_not_import_dataclasses_or_inspect():
    import json
    import subprocess
    import sys

    code = "import json, sys; import bakthat.settings, bakthat.profile_keys; print(json.dumps(['dataclasses' in sys.modules, 'inspect' in sys.modules]))"
    assert json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout) == [False, False]
