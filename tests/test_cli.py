"""The bakthat command, run as a real subprocess: round trip, messages, input errors.

The exit-code table is tested code by code in tests/commands/test_exit_codes.py.
"""

from __future__ import annotations

import json

import pytest

from bakthat.errors import EXIT_CODES
from tests.conftest import cli_ok, make_tree, run_cli, snapshot


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
    assert cli_ok("show", "--json").stdout.strip() == "[]"


def test_password_from_the_environment_encrypts_and_decrypts(data, tmp_path):
    env = {"BAKTHAT_PASSWORD": "s3cret"}
    (tmp_path / "empty.yml").write_text("")  # an empty config: the embedded defaults
    assert run_cli("backup", str(data), "-c", str(tmp_path / "empty.yml"), env=env).returncode == 0
    result = run_cli("restore", "mydir", "--target", str(tmp_path / "out"), env=env)
    assert result.returncode == 0, result.stderr
    assert snapshot(tmp_path / "out" / "mydir") == snapshot(data)


def test_a_config_named_with_c_that_does_not_exist_is_refused_before_any_backup(data, tmp_path):
    missing = tmp_path / "typo.yml"
    result = run_cli("backup", str(data), "-c", str(missing))
    assert result.returncode == 2
    assert result.stderr.strip() == f"bakthat: error: {missing}: config file not found"
    assert cli_ok("show", "--json").stdout.strip() == "[]"  # nothing went to the default store


def test_version_flag_prints_the_version():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("bakthat ")


def expect(result, code: int, text: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert text in result.stderr
    assert "Traceback" not in result.stderr
    assert code in EXIT_CODES


def test_a_broken_config_file_exits_2_naming_the_file(data, tmp_path):
    config = tmp_path / "bad.yml"
    config.write_text("default: [unclosed\n")
    expect(run_cli("backup", str(data), "--prompt", "no", "-c", str(config)), 2, str(config))


@pytest.mark.parametrize(
    "args",
    [
        ("-p", "work", "backup", "{data}", "--prompt", "no"),
        ("-c", "{config}", "-p", "work", "backup", "{data}", "--prompt", "no"),
        ("--profile=work", "-d", "local", "backup", "{data}", "--prompt", "no"),
        ("backup", "{data}", "-p", "work", "--prompt", "no"),
    ],
)
def test_profile_config_and_destination_are_accepted_before_the_command(data, home, tmp_path, args):
    config = tmp_path / "other.yml"
    config.write_text(f"work:\n  local_path: {tmp_path / 'work-store'}\n")
    (home / ".bakthat.yml").write_text(f"work:\n  local_path: {tmp_path / 'work-store'}\n")
    result = run_cli(*(arg.format(data=data, config=config) for arg in args))
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "work-store").iterdir() if p.name.startswith("mydir.")]
    assert not (home / ".bakthat_store").exists()
    shown = cli_ok("-p", "work", "show", "--json")
    assert [row["filename"] for row in json.loads(shown.stdout)] == ["mydir"]


def test_a_destination_before_a_command_that_has_none_is_refused():
    result = run_cli("-d", "s3", "configure", "--show")
    assert result.returncode == 2 and "configure does not take -d/--destination" in result.stderr


# -- start-up (issue 15: --help and show stay fast) ---------------------------------------

#: Libraries that no command needs to start, and that --help, --version and show must not
#: import: each costs milliseconds to tens of milliseconds before any work.
NEVER_AT_START_UP = ("boto3", "botocore", "s3transfer", "swiftclient", "keystoneclient", "cryptography", "psycopg2",
                     "zstandard", "requests", "tqdm")
#: What --help and --version do not need either: the catalog and the config parser.
NOT_FOR_HELP = ("peewee", "yaml", "sqlite3", "bakthat.models", "bakthat.core")

START_UP = """
import contextlib, io, json, sys
from bakthat.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
print(json.dumps([code, sorted(sys.modules)]))
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["show"], ["show", "--json"]], ids=" ".join)
def test_help_version_and_show_start_without_importing_what_they_do_not_use(home, args):
    import subprocess
    import sys

    (home / ".bakthat.yml").write_text("default:\n  compression: zstd\n  exclude: ['*.tmp']\n")
    result = subprocess.run([sys.executable, "-c", START_UP, *args], capture_output=True, text=True, cwd=home)
    assert result.returncode == 0, result.stderr
    code, modules = json.loads(result.stdout)
    assert code == 0, result.stderr
    unexpected = NEVER_AT_START_UP + (NOT_FOR_HELP if args[0].startswith("--") else ())
    assert [name for name in unexpected if name in modules] == []
    assert ("peewee" in modules) == (args[0] == "show")  # the check itself sees the catalog opened


def test_the_command_table_says_what_each_command_module_says():
    from bakthat.commands import COMMANDS, command_modules

    assert {module.NAME: (module.HELP, tuple(getattr(module, "ALIASES", ()))) for module in command_modules()} == COMMANDS


def test_the_parser_imports_the_module_of_the_command_it_parses_and_no_other():
    import subprocess
    import sys

    code = (
        "import json, sys; from bakthat.cli import build_parser; build_parser(complete=False).parse_args(['delete-older-than', 'x', '1d']);"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('bakthat.commands.'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # delete_older_than shares its options with rotate_backups
    assert json.loads(result.stdout) == ["bakthat.commands._common", "bakthat.commands.delete_older_than", "bakthat.commands.rotate_backups"]
