"""The bakthat command, run as a real subprocess: round trip, messages, exit codes."""

from __future__ import annotations

import json
import socket

import pytest

from bakthat.errors import EXIT_CODES
from tests.conftest import make_tree, run_cli, snapshot


@pytest.fixture
def data(tmp_path):
    return make_tree(tmp_path / "data" / "mydir")


def test_backup_show_restore_delete_round_trip(data, tmp_path):
    backup = run_cli("backup", str(data), "--prompt", "no", "-t", "daily db")
    assert backup.returncode == 0, backup.stderr
    assert f"Backing up {data}" in backup.stderr
    show = run_cli("show", "mydir")
    assert show.returncode == 0
    assert "mydir." in show.stdout and "(daily db)" in show.stdout and "local" in show.stdout
    restore = run_cli("restore", "mydir", "--target", str(tmp_path / "out"))
    assert restore.returncode == 0, restore.stderr
    assert snapshot(tmp_path / "out" / "mydir") == snapshot(data)
    delete = run_cli("delete", "mydir")
    assert delete.returncode == 0, delete.stderr
    assert run_cli("show", "--json").stdout.strip() == "[]"


def test_show_json_is_a_list_of_rows(data):
    run_cli("backup", str(data), "--prompt", "no", "-t", "x")
    rows = json.loads(run_cli("show", "--json").stdout)
    assert len(rows) == 1
    assert rows[0]["filename"] == "mydir" and rows[0]["tags"] == "x" and rows[0]["backend"] == "local"


def test_password_from_the_environment_encrypts_and_decrypts(data, tmp_path):
    env = {"BAKTHAT_PASSWORD": "s3cret"}
    assert run_cli("backup", str(data), "-c", str(tmp_path / "none.yml"), env=env).returncode == 0
    result = run_cli("restore", "mydir", "--target", str(tmp_path / "out"), env=env)
    assert result.returncode == 0, result.stderr
    assert snapshot(tmp_path / "out" / "mydir") == snapshot(data)


def test_version_flag_prints_the_version():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("bakthat ")


def expect(result, code: int, text: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert text in result.stderr
    assert "Traceback" not in result.stderr
    assert code in EXIT_CODES


def test_restoring_an_unknown_name_exits_4():
    expect(run_cli("restore", "nothing"), 4, "no backup named 'nothing'")


def test_a_wrong_password_exits_5_and_is_not_echoed(data, tmp_path):
    run_cli("backup", str(data), env={"BAKTHAT_PASSWORD": "right-one"})
    result = run_cli("restore", "mydir", "--target", str(tmp_path / "out"), env={"BAKTHAT_PASSWORD": "not-it-at-all"})
    expect(result, 5, "wrong password")
    assert "not-it-at-all" not in result.stderr + result.stdout
    assert not (tmp_path / "out" / "mydir").exists()


def test_an_encrypted_backup_restored_without_a_password_exits_5(data, tmp_path):
    run_cli("backup", str(data), env={"BAKTHAT_PASSWORD": "pw"})
    expect(run_cli("restore", "mydir", "--prompt", "no", "--target", str(tmp_path)), 5, "is encrypted")


def test_a_damaged_archive_exits_6(data, home, tmp_path):
    run_cli("backup", str(data), "--prompt", "no")
    archive = next((home / ".bakthat_store").glob("mydir.*.tar.zst"))
    raw = bytearray(archive.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    archive.write_bytes(bytes(raw))
    expect(run_cli("restore", "mydir", "--target", str(tmp_path / "out")), 6, "SHA-256")


def test_an_existing_target_exits_8_and_keeps_the_files(data, tmp_path):
    run_cli("backup", str(data), "--prompt", "no")
    (tmp_path / "out" / "mydir").mkdir(parents=True)
    (tmp_path / "out" / "mydir" / "mine").write_text("keep")
    expect(run_cli("restore", "mydir", "--target", str(tmp_path / "out")), 8, "mydir")
    assert (tmp_path / "out" / "mydir" / "mine").read_text() == "keep"


def test_backing_up_a_missing_path_exits_2(tmp_path):
    expect(run_cli("backup", str(tmp_path / "missing"), "--prompt", "no"), 2, "does not exist")


def test_a_broken_config_file_exits_2_naming_the_file(data, tmp_path):
    config = tmp_path / "bad.yml"
    config.write_text("default: [unclosed\n")
    expect(run_cli("backup", str(data), "--prompt", "no", "-c", str(config)), 2, str(config))


def test_an_unknown_destination_exits_2():
    expect(run_cli("backup", ".", "--prompt", "no", "-d", "ftp"), 2, "unknown destination 'ftp'")


def test_an_unknown_option_is_a_usage_error_exiting_2():
    result = run_cli("backup", "--no-such-flag")
    assert result.returncode == 2 and "usage:" in result.stderr


def test_an_unreadable_entry_makes_the_backup_partial_exit_3(data, tmp_path):
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(data / "daemon.sock"))
    try:
        result = run_cli("backup", str(data), "--prompt", "no")
    finally:
        sock.close()
    expect(result, 3, "could not be read")
    assert json.loads(run_cli("show", "--json").stdout)[0]["filename"] == "mydir"


def test_a_hostile_archive_exits_7_and_writes_nothing(home, tmp_path):
    import io
    import tarfile

    import bakthat
    from bakthat import models

    good = tmp_path / "good"
    good.mkdir()
    (good / "f").write_text("x")
    row = bakthat.backup(str(good), password="", compression="none")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("good/ok.txt", b"fine"), ("../evil", b"pwned")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    hostile = buffer.getvalue()
    (home / ".bakthat_store" / row.stored_filename).write_bytes(hostile)
    import hashlib

    row.sha256 = hashlib.sha256(hostile).hexdigest()
    row.size = len(hostile)
    row.save()
    models.unbind()
    target = tmp_path / "target"
    target.mkdir()
    expect(run_cli("restore", "good", "--target", str(target)), 7, "../evil")
    assert list(target.iterdir()) == []
    assert not (tmp_path / "evil").exists()
