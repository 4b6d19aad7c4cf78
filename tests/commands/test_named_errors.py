"""No "unexpected error" for expected failures: each is a named error, a documented exit code,
and a message naming the key, file, path or URL.  Every case runs a real ``bakthat`` process;
full disks are real small filesystems (tmpfs in a private mount namespace)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from bakthat.errors import EXIT_CODES
from tests.commands.test_exit_codes import run_harness
from tests.conftest import ROOT, cli_ok, make_tree, run_cli
from tests.services import unavailable


def expect(result, code: int, *texts: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    for text in texts:
        assert text in result.stderr, result.stderr
    assert "unexpected error" not in result.stderr and "Traceback" not in result.stderr
    assert code in EXIT_CODES


def write_config(home, text: str) -> None:
    (home / ".bakthat.yml").write_text(text)
    os.chmod(home / ".bakthat.yml", 0o600)


@pytest.fixture
def data(tmp_path):
    return make_tree(tmp_path / "data" / "mydir")


def stored(home) -> list[str]:
    store = home / ".bakthat_store"
    return sorted(p.name for p in store.iterdir() if p.is_file()) if store.exists() else []


@pytest.mark.parametrize(
    "setting, message",
    [
        ("compression_level: 50", "key 'compression_level' must be from -7 to 22"),
        ("{compression: gzip, compression_level: 12}", "key 'compression_level' must be from 0 to 9 with compression gzip"),
        ("scrypt_work_factor: 2", "key 'scrypt_work_factor' must be from 10 to 22"),
        ("scrypt_work_factor: 100000000000000000000000", "key 'scrypt_work_factor' must be from 10 to 22"),
        ("database_url: mysql://root@127.0.0.1/bakthat", "key 'database_url' unsupported scheme 'mysql'"),
    ],
)
def test_bad_values_are_refused_when_the_config_is_read_and_by_configure_check(home, data, setting, message):
    if setting.startswith("{"):
        body = "".join(f"  {part.strip()}\n" for part in setting.strip("{}").replace(": ", ": ").split(","))
    else:
        body = f"  {setting}\n"
    write_config(home, "default:\n" + body)
    expect(run_cli("backup", str(data), "--prompt", "no"), 2, "~/.bakthat.yml: profile 'default': " + message)
    expect(run_cli("configure", "--check"), 2, message)
    assert stored(home) == []


def test_a_compression_level_that_does_not_fit_the_chosen_compression_is_refused_before_storing(home, data):
    write_config(home, "default:\n  compression_level: 19\n")
    expect(run_cli("backup", str(data), "--prompt", "no", "--compression", "gzip"), 2, "compression_level", "gzip")
    assert stored(home) == []


def test_the_work_factor_range_is_the_one_encryption_enforces():
    from bakthat import conf, crypto

    assert conf.WORK_FACTORS == (crypto.MIN_WORK_FACTOR, crypto.MAX_WORK_FACTOR)


def test_a_corrupt_sqlite_catalog_is_named(home):
    (home / ".bakthat.sqlite").write_bytes(b"this is not a database" * 100)
    expect(run_cli("show"), 13, "the catalog ~/.bakthat.sqlite is damaged or not a SQLite database", "bakthat sync")


def test_a_catalog_path_that_is_a_directory_is_named(tmp_path):
    (tmp_path / "dir").mkdir()
    expect(run_cli("show", env={"BAKTHAT_DATABASE": str(tmp_path / "dir")}), 13, f"the catalog {tmp_path / 'dir'} is a directory")


def test_an_unreachable_postgresql_catalog_is_named_without_its_password(home):
    url = "postgresql://postgres:hunter2@127.0.0.1:1/bakthat"
    result = run_cli("show", env={"BAKTHAT_DATABASE_URL": url})
    expect(result, 13, "postgresql://postgres:***@127.0.0.1:1/bakthat")
    assert "hunter2" not in result.stderr


def test_plugins_dir_pointing_to_a_missing_directory_is_named(home, tmp_path):
    write_config(home, f"default:\n  plugins_dir: {tmp_path / 'nowhere'}\n  plugins: [timer.TimerPlugin]\n")
    expect(run_cli("show"), 2, "plugins_dir", str(tmp_path / "nowhere"), "does not exist")


# -- full disks --------------------------------------------------------------------------


def in_small_filesystem(mount_point, size: str, script: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a shell script with a tmpfs of ``size`` mounted at ``mount_point``, in a private mount namespace.

    ``$BAKTHAT`` in the script runs ``python -m bakthat``.  The filesystem disappears
    with the process: the script prints whatever the test needs to see in it.
    """
    if shutil.which("unshare") is None:
        unavailable("unshare (util-linux) is not installed")
    mount_point.mkdir(parents=True, exist_ok=True)
    prefix = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    probe = subprocess.run(["unshare", *prefix, "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        unavailable(f"cannot create a mount namespace here: {probe.stderr.strip()}")
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "BAKTHAT": f"{sys.executable} -m bakthat", **(env or {})}
    body = f"mount -t tmpfs -o size={size} tmpfs '{mount_point}' || exit 99\n{script}"
    return subprocess.run(
        ["unshare", *prefix, "--mount", "sh", "-c", body], capture_output=True, text=True, env=environment, timeout=300
    )


FILL = f"""{sys.executable} -c "
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT)
try:
    while os.write(fd, bytes(4096)):
        pass
except OSError:
    pass
" """


def test_a_full_catalog_disk_fails_the_backup_before_any_upload(home, data, tmp_path):
    catalog_dir = tmp_path / "catalog-disk"
    catalog = catalog_dir / "catalog.sqlite"
    result = in_small_filesystem(
        catalog_dir, "512k",
        f"$BAKTHAT show >/dev/null && {FILL} '{catalog_dir}/filler' && $BAKTHAT backup '{data}' --prompt no; echo \"exit=$?\"",
        env={"BAKTHAT_DATABASE": str(catalog)},
    )
    assert "exit=13" in result.stdout, (result.stdout, result.stderr)
    assert f"the catalog {catalog} cannot be written: no space left on its disk" in result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
    assert stored(home) == [], "nothing is uploaded when the catalog cannot be written"


@pytest.mark.parametrize("levels", [("full",), ("full", "incr")], ids=["one archive", "incremental chain"])
def test_a_full_restore_target_is_named_and_left_clean(home, tmp_path, levels):
    big = tmp_path / "big"
    big.mkdir()
    for index in range(3):
        (big / f"part{index}").write_bytes(os.urandom(1 << 20))
    for level in levels[:-1]:  # the chain's base, before the last part is added
        assert run_cli("backup", str(big), "--prompt", "no", "--compression", "none", "--level", level).returncode == 0
    (big / "part3").write_bytes(os.urandom(1 << 20))
    last = run_cli("backup", str(big), "--prompt", "no", "--compression", "none", "--level", levels[-1])
    assert last.returncode == 0, last.stderr
    target = tmp_path / "small-disk"
    result = in_small_filesystem(
        target, "2m",
        f"mkdir '{target}/mine' && echo keep > '{target}/mine/file'; "
        f"$BAKTHAT restore big --target '{target}'; echo \"exit=$?\"; find '{target}' | sort",
    )
    assert "exit=9" in result.stdout, (result.stdout, result.stderr)
    assert f"no space left on the disk of {target} while restoring big." in result.stderr
    assert "the target is as it was" in result.stderr and "Traceback" not in result.stderr
    listing = [line for line in result.stdout.splitlines() if line.startswith(str(target))]
    assert listing == [str(target), f"{target}/mine", f"{target}/mine/file"]


# -- the catalog fails after the store has the archive ------------------------------------------


CATALOG_FAILS_AT_THE_ROW = """
import peewee
from bakthat import models
def refuse(**fields):
    raise models.catalog_error(models.display(), peewee.OperationalError("database or disk is full"))
models.Backups.create = refuse
"""


def test_a_catalog_failure_after_the_store_committed_removes_what_was_stored(home, data, tmp_path):
    result = run_harness(tmp_path, CATALOG_FAILS_AT_THE_ROW, "backup", str(data), "--prompt", "no")
    expect(result, 13, "the catalog ~/.bakthat.sqlite cannot be written: no space left", "the backup was not recorded, so mydir.")
    assert "was removed from local" in result.stderr
    assert stored(home) == []
    assert json.loads(cli_ok("show", "--json").stdout) == []


# -- Ctrl-C in an on_backup handler ------------------------------------------------------------


SLOW_HANDLER = """
MARKER = Path(sys.argv.pop())
def slow(session_id, backup):
    MARKER.write_text(backup.stored_filename)
    time.sleep(60)
events.on_backup += slow
"""


def test_ctrl_c_in_an_on_backup_handler_after_the_backup_was_stored_says_it_is_kept(home, data, tmp_path):
    marker = tmp_path / "marker"
    process = run_harness(tmp_path, SLOW_HANDLER, "backup", str(data), "--prompt", "no", str(marker), wait=False)
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), process.communicate()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    stored_name = marker.read_text()
    assert process.returncode == 130, stderr
    assert f"{stored_name} is stored, catalogued and kept" in stderr
    assert "nothing" not in stderr.lower().replace("nothing was", "")  # never "nothing kept"
    assert "Traceback" not in stderr
    assert stored_name in stored(home)
    assert [row["stored_filename"] for row in json.loads(cli_ok("show", "--json").stdout)] == [stored_name]
