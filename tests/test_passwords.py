"""Unattended runs are encrypted when the user meant them to be: password_file, password_command,
require_encryption, the warning for unchosen plaintext, and the prompt before the progress bar."""

from __future__ import annotations

import json
import logging
import os
import pty
import select
import sys
import time

import pytest

import bakthat
from bakthat import models
from bakthat.errors import ConfigError, EncryptionRequiredError
from bakthat.helper import BakHelper
from tests.backends.conftest import aws, moto_server  # noqa: F401 - fixtures
from tests.conftest import ROOT, cli_ok, run_cli, snapshot

SECRET = "correct horse battery staple"
FAST = {"scrypt_work_factor": 10}


@pytest.fixture
def password_file(tmp_path):
    path = tmp_path / "backup.pass"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return path


def stored(home) -> list[str]:
    store = home / ".bakthat_store"
    return sorted(p.name for p in store.iterdir() if p.is_file()) if store.exists() else []


def test_password_file_encrypts_backups_and_opens_them_for_restore(tree, tmp_path, password_file):
    conf = {**FAST, "password_file": str(password_file)}
    row = bakthat.backup(str(tree), conf=conf)
    assert row.encryption == "age-scrypt" and row.stored_filename.endswith(".age")
    bakthat.restore("mydir", target=tmp_path / "out", conf=conf)
    assert snapshot(tmp_path / "out" / "mydir") == snapshot(tree)
    # The trailing newline of the file is not part of the password.
    bakthat.restore("mydir", target=tmp_path / "again", password=SECRET, conf=FAST)


def test_bakthat_password_file_works_from_cron(tree, tmp_path, password_file, home):
    environment = {"BAKTHAT_PASSWORD_FILE": str(password_file), "BAKTHAT_SCRYPT_WORK_FACTOR": "10"}
    backup = run_cli("backup", str(tree), "--json", env=environment)  # stdin is not a terminal: no prompt
    assert backup.returncode == 0, backup.stderr
    assert json.loads(backup.stdout)["encryption"] == "age-scrypt"
    assert "unencrypted" not in backup.stderr
    restore = run_cli("restore", "mydir", "--target", str(tmp_path / "out"), env=environment)
    assert restore.returncode == 0, restore.stderr
    assert snapshot(tmp_path / "out" / "mydir") == snapshot(tree)
    assert SECRET not in backup.stderr + backup.stdout + restore.stderr + restore.stdout


@pytest.mark.parametrize("form", ["list", "string"])
def test_password_command_runs_without_a_shell_and_its_stdout_is_the_password(tree, tmp_path, form, caplog):
    script = tmp_path / "print password.py"  # a space in the path: a shell would split it
    script.write_text(f"import sys\nprint({SECRET!r} + sys.argv[1])\n")
    argv = [sys.executable, str(script), "$HOME"]
    command = argv if form == "list" else f"{sys.executable} '{script}' '$HOME'"
    conf = {**FAST, "password_command": command}
    with caplog.at_level(logging.DEBUG):
        row = bakthat.backup(str(tree), conf=conf)
        bakthat.restore("mydir", target=tmp_path / "out", conf=conf)
    # "$HOME" reached the program as is: no shell expanded it.
    bakthat.restore("mydir", target=tmp_path / "again", password=SECRET + "$HOME", conf=FAST)
    assert row.encryption == "age-scrypt"
    assert SECRET not in caplog.text


def test_an_empty_bakthat_password_never_turns_off_a_configured_password_file(tree, tmp_path, password_file, monkeypatch):
    monkeypatch.setenv("BAKTHAT_PASSWORD", "")  # export BAKTHAT_PASSWORD=$UNSET_VARIABLE
    assert bakthat.backup(str(tree), conf={**FAST, "password_file": str(password_file)}).encryption == "age-scrypt"
    assert bakthat.backup(str(tree), conf=FAST, custom_filename="plain").encryption == "none"  # 0.6: empty is none


def test_a_failing_password_command_names_the_program_not_its_output(tree, tmp_path, home):
    script = tmp_path / "fails.py"
    script.write_text("import sys\nprint('leaked-secret-output')\nsys.exit(3)\n")
    conf = {"password_command": [sys.executable, str(script)]}
    with pytest.raises(ConfigError) as caught:
        bakthat.backup(str(tree), conf=conf)
    message = str(caught.value)
    assert repr(sys.executable) in message and "exit status 3" in message
    assert "leaked-secret-output" not in message
    assert stored(home) == []
    with pytest.raises(ConfigError, match="program 'no-such-program-xyz' not found"):
        bakthat.backup(str(tree), conf={"password_command": "no-such-program-xyz --flag"})


def test_a_missing_or_empty_password_file_is_an_error_naming_it(tree, tmp_path, home):
    with pytest.raises(ConfigError, match=f"password_file {tmp_path / 'absent'}: No such file"):
        bakthat.backup(str(tree), conf={"password_file": str(tmp_path / "absent")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="holds no password"):
        bakthat.backup(str(tree), conf={"password_file": str(tmp_path / "empty")})
    assert stored(home) == []


def test_keyvalue_uses_password_file(aws, password_file):
    from bakthat.helper import KeyValue

    conf = {**FAST, "s3_bucket": "kv-bucket", "password_file": str(password_file)}
    store = KeyValue(conf=conf)
    row = store.set_key("settings", {"a": 1})
    assert row.encryption == "age-scrypt"
    assert KeyValue(conf=conf).get_key("settings") == {"a": 1}
    assert KeyValue(conf={**FAST, "s3_bucket": "kv-bucket"}).get_key("settings", password=SECRET) == {"a": 1}


def test_require_encryption_refuses_to_store_plaintext(tree, home):
    conf = {"require_encryption": True}
    for attempt in ({}, {"password": ""}, {"prompt": "no"}):
        with pytest.raises(EncryptionRequiredError, match="require_encryption: true"):
            bakthat.backup(str(tree), conf=conf, **attempt)
    assert stored(home) == []
    models.bind(str(home / ".bakthat.sqlite"))
    assert models.Backups.select().count() == 0 and models.Reservations.select().count() == 0
    assert bakthat.backup(str(tree), password="pw", conf={**conf, **FAST}).encryption == "age-scrypt"


def test_require_encryption_from_the_command_line_exits_2_and_stores_nothing(tree, home):
    (home / ".bakthat.yml").write_text("default:\n  require_encryption: true\n")
    result = run_cli("backup", str(tree), "--prompt", "no")
    assert result.returncode == 2, result.stderr
    assert "require_encryption: true" in result.stderr and "nothing was stored" in result.stderr
    assert stored(home) == []
    assert json.loads(cli_ok("show", "--json").stdout) == []


def test_require_encryption_applies_to_keyvalue(aws):
    from bakthat.helper import KeyValue

    with pytest.raises(EncryptionRequiredError):
        KeyValue(conf={"s3_bucket": "kv", "require_encryption": True}).set_key("k", 1)


def test_plaintext_nobody_chose_is_stored_with_a_warning_saying_how_to_encrypt(tree, home):
    result = run_cli("backup", str(tree))  # from cron: no terminal, no password
    assert result.returncode == 0, result.stderr
    assert "is stored unencrypted" in result.stderr and "password_file" in result.stderr


@pytest.mark.parametrize(
    "how",
    [("--prompt", "no"), ("env", "BAKTHAT_PASSWORD", ""), ("config", "require_encryption: false")],
)
def test_no_warning_when_plaintext_was_chosen(tree, home, how):
    args, env = ["backup", str(tree)], {}
    if how[0] == "--prompt":
        args += list(how)
    elif how[0] == "env":
        env[how[1]] = how[2]
    else:
        (home / ".bakthat.yml").write_text(f"default:\n  {how[1]}\n")
    result = run_cli(*args, env=env)
    assert result.returncode == 0, result.stderr
    assert "unencrypted" not in result.stderr


def test_python_api_and_bakhelper_warn_only_when_nobody_chose(tree, home, caplog):
    with caplog.at_level(logging.WARNING, logger="bakthat"):
        bakthat.backup(str(tree), password="", custom_filename="chosen")
        BakHelper("helper-chosen", password="").backup(str(tree))
    assert "unencrypted" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="bakthat"):
        BakHelper("helper").backup(str(tree))
    assert "helper." in caplog.text and "is stored unencrypted" in caplog.text


def test_the_password_prompt_comes_before_any_progress_bar(tree, home):
    """In a terminal, the questions are asked first and the bar is drawn only after them."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: bakthat in a pseudo-terminal (stdin, stdout and stderr)
        os.environ["PYTHONPATH"] = str(ROOT)
        os.environ["BAKTHAT_SCRYPT_WORK_FACTOR"] = "10"
        os.execv(sys.executable, [sys.executable, "-m", "bakthat", "backup", str(tree), "--progress"])
    screen = b""

    def read_until(marker: bytes, timeout: float = 60) -> None:
        nonlocal screen
        deadline = time.monotonic() + timeout
        while marker not in screen and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    screen += os.read(fd, 4096)
                except OSError:
                    break
        assert marker in screen, screen

    read_until(b"Password (blank to disable encryption): ")
    before_answer = screen
    os.write(fd, b"pw\n")
    read_until(b"Password confirmation: ")
    before_confirmation = screen
    os.write(fd, b"pw\n")
    read_until(b"Stored ")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, screen
    for text in (before_answer, before_confirmation):
        assert b"B/s" not in text and b"%|" not in text and b"|" not in text.split(b"Password")[0], text
    after = screen[len(before_confirmation):]
    assert b"B/s" in after or b"iB" in after, after
