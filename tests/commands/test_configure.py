"""``bakthat configure``: flags, questions, -c, safety (configure_backups_rotation: its own module)."""

from __future__ import annotations

import json
import stat

import yaml

from tests.conftest import cli_ok, run_cli
from tests.test_conf import CONFIG_06


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def expect(result, code: int, text: str = "") -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert text in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_without_flags_and_without_a_terminal_nothing_is_written(home):
    expect(run_cli("configure"), 2, "nothing to change")
    assert not (home / ".bakthat.yml").exists()


def test_set_writes_typed_values_0600(home):
    result = run_cli("configure", "--set", "local_path=/x", "--set", "compression=gzip", "--set", "compression_level=9",
                     "--set", "plugins=a.B,c.D", "--set", "compress=false")
    expect(result, 0, "Wrote ~/.bakthat.yml (profile 'default'): set compress, compression, compression_level, local_path, plugins")
    path = home / ".bakthat.yml"
    assert mode(path) == 0o600
    assert yaml.safe_load(path.read_text()) == {"default": {
        "local_path": "/x", "compression": "gzip", "compression_level": 9, "plugins": ["a.B", "c.D"], "compress": False,
    }}


def test_explicit_flags_and_unset(home):
    expect(run_cli("configure", "-p", "work", "--default-destination", "s3", "--s3-bucket", "bk", "--region-name", "eu-west-1"), 0)
    expect(run_cli("configure", "-p", "work", "--unset", "region_name"), 0, "removed region_name")
    assert yaml.safe_load((home / ".bakthat.yml").read_text()) == {"work": {"default_destination": "s3", "s3_bucket": "bk"}}


def test_c_selects_the_file_that_is_written(home, tmp_path):
    target = tmp_path / "etc" / "bakthat.yml"
    expect(run_cli("configure", "-c", str(target), "--set", "compression=none"), 0, str(target))
    assert target.exists() and mode(target) == 0o600
    assert not (home / ".bakthat.yml").exists()


def test_bakthat_config_selects_the_file_too(home, tmp_path):
    target = tmp_path / "env.yml"
    expect(run_cli("configure", "--set", "compression=none", env={"BAKTHAT_CONFIG": str(target)}), 0)
    assert yaml.safe_load(target.read_text()) == {"default": {"compression": "none"}}


def test_a_06_config_is_edited_without_losing_anything(home):
    path = home / ".bakthat.yml"
    path.write_text(CONFIG_06)
    path.chmod(0o644)
    before = yaml.safe_load(CONFIG_06)
    expect(run_cli("configure", "-p", "glacier", "--set", "compression=gzip"), 0)
    after = yaml.safe_load(path.read_text())
    before["glacier"]["compression"] = "gzip"
    assert after == before
    assert mode(path) == 0o600


def test_an_invalid_value_writes_nothing_and_names_the_key(home):
    path = home / ".bakthat.yml"
    path.write_text(CONFIG_06)
    before = path.read_bytes()
    expect(run_cli("configure", "--set", "compresion=gzip"), 2,
           "bakthat: error: ~/.bakthat.yml: profile 'default': unknown key 'compresion' (did you mean 'compression'?)")
    expect(run_cli("configure", "--set", "compression=lz4"), 2, "key 'compression' must be one of zstd, gzip, none, not 'lz4'")
    expect(run_cli("configure", "--set", "compression_level=high"), 2, "key 'compression_level' must be an integer")
    expect(run_cli("configure", "--set", "novalue"), 2, "--set 'novalue': write KEY=VALUE")
    assert path.read_bytes() == before


def test_a_broken_file_is_never_overwritten(home):
    path = home / ".bakthat.yml"
    path.write_text("default: [unclosed\n")
    expect(run_cli("configure", "--set", "compression=gzip"), 2, "invalid YAML")
    assert path.read_text() == "default: [unclosed\n"


def test_secrets_are_refused_on_the_command_line_and_read_from_stdin(home):
    result = run_cli("configure", "--set", "secret_key=hunter2hunter2")
    expect(result, 2, "secret_key is a secret: give it with --set-from-stdin secret_key")
    assert "hunter2" not in result.stderr + result.stdout
    assert not (home / ".bakthat.yml").exists()
    result = run_cli("configure", "--access-key", "AKIA", "--set-from-stdin", "secret_key", input="hunter2hunter2\n")
    expect(result, 0)
    assert "hunter2" not in result.stderr + result.stdout
    assert yaml.safe_load((home / ".bakthat.yml").read_text())["default"] == {"access_key": "AKIA", "secret_key": "hunter2hunter2"}
    assert mode(home / ".bakthat.yml") == 0o600


def test_a_database_url_without_a_password_may_be_given_as_a_flag(home):
    expect(run_cli("configure", "--set", "database_url=postgresql://db.example/bakthat"), 0)
    result = run_cli("configure", "--set", "database_url=postgresql://me:pw@db.example/bakthat")
    expect(result, 2, "database_url is a secret")
    assert "pw@" not in result.stderr


def test_the_questions_in_order_with_blank_answers_keeping_values(home, tmp_path):
    answers = "\n".join(["ftp", "s3", "my-bucket", "", "AKIA", "the-secret", "gzip", "https://hc.example/ping/abc"]) + "\n"
    result = run_cli("configure", "--interactive", input=answers)
    expect(result, 0)
    assert "unknown destination 'ftp'" in result.stderr
    assert "the-secret" not in result.stderr
    assert yaml.safe_load((home / ".bakthat.yml").read_text())["default"] == {
        "default_destination": "s3", "s3_bucket": "my-bucket", "region_name": "us-east-1", "access_key": "AKIA",
        "secret_key": "the-secret", "compression": "gzip", "heartbeat_url": "https://hc.example/ping/abc",
    }
    again = run_cli("configure", "--interactive", input="\n" * 8)
    expect(again, 0)
    assert "[set, blank keeps it]" in again.stderr and "[my-bucket]" in again.stderr


def test_the_swift_questions_are_06s(home):
    answers = "\n".join(["swift", "https://swift.example/auth/v1.0", "1", "backups", "acct:me", "the-key", "", ""]) + "\n"
    result = run_cli("configure", "--interactive", input=answers)
    expect(result, 0)
    assert "the-key" not in result.stderr
    assert yaml.safe_load((home / ".bakthat.yml").read_text())["default"] == {
        "default_destination": "swift", "auth_url": "https://swift.example/auth/v1.0", "auth_version": 1,
        "swift_container": "backups", "access_key": "acct:me", "secret_key": "the-key", "compression": "zstd",
    }


def test_questions_cancelled_by_end_of_input_write_nothing(home):
    expect(run_cli("configure", "--interactive", input="local\n"), 130, "interrupted")
    assert not (home / ".bakthat.yml").exists()


def test_show_masks_secrets_and_reports_the_effective_values(home):
    path = home / ".bakthat.yml"
    path.write_text(CONFIG_06)
    path.chmod(0o600)
    shown = json.loads(cli_ok("configure", "--show", "--json", env={"BAKTHAT_COMPRESSION": "gzip"}).stdout)
    assert shown["secret_key"] == "********" and shown["bakmanager_token"] == "********"
    assert shown["s3_bucket"] == "mybucket" and shown["compression"] == "gzip"
    human = cli_ok("configure", "--show")
    assert "wJalrXUtnFEMI" not in human.stdout and "mybucket" in human.stdout


def test_check_validates_every_profile(home):
    path = home / ".bakthat.yml"
    path.write_text(CONFIG_06)
    path.chmod(0o600)
    expect(run_cli("configure", "--check"), 0)
    assert cli_ok("configure", "--check").stdout == "~/.bakthat.yml: 3 profile(s) valid\n"
    path.write_text("a:\n  compresion: zstd\n")
    result = run_cli("configure", "--check")
    expect(result, 2, "bakthat: error: ~/.bakthat.yml: profile 'a': unknown key 'compresion' (did you mean 'compression'?)")
    checked = run_cli("configure", "--check", "--json")
    assert checked.returncode == 2, checked.stderr
    report = json.loads(checked.stdout)
    assert report["valid"] is False and len(report["problems"]) == 1


def test_a_06_config_loads_from_the_command_line(home, tmp_path):
    path = home / ".bakthat.yml"
    path.write_text(CONFIG_06.replace("default_destination: s3", "default_destination: local").replace(
        "  plugins: [myplugins.TestPlugin, other.Plugin]\n", ""))
    path.chmod(0o600)
    for profile in ("default", "swift"):
        result = run_cli("show", "-p", profile)
        assert result.returncode == 0, result.stderr


def test_a_readable_06_config_warns_without_printing_secrets(home):
    path = home / ".bakthat.yml"
    path.write_text(CONFIG_06)
    path.chmod(0o644)
    result = run_cli("configure", "--check")
    expect(result, 0, "warning: ~/.bakthat.yml holds secrets (default.secret_key")
    assert "wJalrXUtnFEMI" not in result.stderr


def test_list_keys_names_every_collected_key(home):
    from bakthat.conf import collect_settings

    entries = json.loads(cli_ok("configure", "--list-keys", "--json").stdout)
    assert sorted(e["key"] for e in entries) == sorted(collect_settings())
    compression = next(e for e in entries if e["key"] == "compression")
    assert compression["choices"] == ["zstd", "gzip", "none"] and compression["environment"] == "BAKTHAT_COMPRESSION"


def test_show_redacts_the_heartbeat_url_as_periodic_backups_does(home):
    url = "https://hc-ping.com/5c0f4f2e-secret-check-uuid"
    (home / ".bakthat.yml").write_text(f"default:\n  heartbeat_url: {url}\n")
    shown = cli_ok("configure", "--show", "--json")
    assert json.loads(shown.stdout)["heartbeat_url"] == "https://hc-ping.com/…"
    human = cli_ok("configure", "--show")
    periodic = cli_ok("periodic_backups")
    for output in (shown.stdout, human.stdout, periodic.stdout):
        assert "secret-check-uuid" not in output
    assert "https://hc-ping.com/…" in human.stdout
