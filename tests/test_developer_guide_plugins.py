"""The developer guide's samples about events, plugins, monkey patching and BakHelper, as written.

The only changes are Python 3's ``print(...)`` and the guide's placeholder paths
(``/home/thomas/mydir``), which are made real under a temporary directory.  The
plugin files of the guide are ``plugins_example/test_plugin.py`` and
``plugins_example/change_model_plugin.py``; the tests check that they contain the
guide's code verbatim.  The MySQL example runs against the MariaDB server of this
machine with a throwaway user (it skips, saying why, when there is none).
"""

from __future__ import annotations

import logging
import logging as std_logging
import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from bakthat.plugin import unload_plugins
from tests.conftest import ROOT, make_tree, run_cli, snapshot
from tests.services import unavailable

EXAMPLES = ROOT / "plugins_example"

GUIDE_TIMER_PLUGIN = '''\
import time
from bakthat.plugin import Plugin

class TestPlugin(Plugin):
    def activate(self):
        self.start = {}
        self.stop = {}
        self.before_backup += self.before_backup_callback
        self.on_backup += self.on_backup_callback

    def before_backup_callback(self, session_id):
        self.start[session_id] = time.time()
        self.log.info("before_backup {0}".format(session_id))

    def on_backup_callback(self, session_id, backup):
        self.stop[session_id] = time.time()
        self.log.info("on_backup {0} {1}".format(session_id, backup))
        self.log.info("Job duration: {0}s".format(self.stop[session_id] - self.start[session_id]))
'''

GUIDE_CHANGE_MODEL_PLUGIN = '''\
from bakthat.plugin import Plugin
from bakthat.models import Backups


class MyBackups(Backups):
    @classmethod
    def my_custom_method(self):
        return True


class ChangeModelPlugin(Plugin):
    """ A basic plugin implementation. """
    def activate(self):
        global Backups
        self.log.info("Replace Backups")
        Backups = MyBackups
'''

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


@pytest.fixture(autouse=True)
def clean_logging():
    """The samples call logging.basicConfig: undo it afterwards (the shared isolated
    fixture unloads the plugins they load)."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield
    root.handlers[:], root.level = saved[0], saved[1]


@pytest.fixture
def mydir(tmp_path) -> Path:
    return make_tree(tmp_path / "home" / "thomas" / "mydir")


def test_the_example_plugin_files_hold_the_guides_code():
    assert (EXAMPLES / "test_plugin.py").read_text().count(GUIDE_TIMER_PLUGIN) == 1
    assert (EXAMPLES / "change_model_plugin.py").read_text().count(GUIDE_CHANGE_MODEL_PLUGIN) == 1


# -- Event Hooks ---------------------------------------------------------------------------------------


def test_event_hooks(mydir, capsys):
    import bakthat  # from the guide's low-level API block, which this one follows

    # --- the guide -------------------------------------------------------------------------------
    from bakthat import backup, events

    def before_backup_callback(session_id):
        print(session_id, "before_backup")

    def on_backup_callback(session_id, backup):
        print(session_id, "on_backup", backup)

    events.before_backup += before_backup_callback
    events.on_backup += on_backup_callback

    bakthat.backup(str(mydir))
    # --- what it did ------------------------------------------------------------------------------------
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(f"({UUID}) before_backup", out[0])
    session_id = out[0].split()[0]
    assert re.fullmatch(rf"{session_id} on_backup <Backup: mydir\.\d{{14}}\.tar\.zst>", out[1])


# -- Plugins: configuration, the first plugin --------------------------------------------------------


def install_guide_plugins(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLES / "test_plugin.py", directory / "test_plugin.py")
    (directory / "filename.py").write_text(textwrap.dedent("""\
        from bakthat.plugin import Plugin

        class MyPlugin(Plugin):
            def activate(self):
                self.log.info("hello")
    """))


def test_plugins_dir_and_plugins_settings(home, tmp_path, mydir):
    # The default plugins_dir, ~/.bakthat_plugins
    install_guide_plugins(home / ".bakthat_plugins")
    (home / ".bakthat.yml").write_text("""\
default:
  plugins: [test_plugin.TestPlugin, filename.MyPlugin]
""")
    listed = run_cli("plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    import json

    enabled = {item["name"]: item for item in json.loads(listed.stdout)["plugins"] if item["enabled"]}
    assert enabled["test_plugin.TestPlugin"]["status"] == "active" and enabled["test_plugin.TestPlugin"]["enabled"] == 1
    assert enabled["filename.MyPlugin"]["status"] == "active" and enabled["filename.MyPlugin"]["enabled"] == 2
    result = run_cli("backup", str(mydir), "--prompt", "no")
    assert result.returncode == 0 and "hello" in result.stderr, result.stderr
    # Another plugins_dir (the guide's /home/thomas/.bakthat_plugins, made real)
    elsewhere = tmp_path / "home" / "thomas" / ".bakthat_plugins"
    install_guide_plugins(elsewhere)
    shutil.rmtree(home / ".bakthat_plugins")
    (home / ".bakthat.yml").write_text(f"""\
default:
  plugins_dir: {elsewhere}
  plugins: [test_plugin.TestPlugin, filename.MyPlugin]
""")
    result = run_cli("backup", str(mydir), "--prompt", "no")
    assert result.returncode == 0 and "hello" in result.stderr, result.stderr


def test_your_first_plugin_on_the_command_line(home, mydir):
    install_guide_plugins(home / ".bakthat_plugins")
    (home / ".bakthat.yml").write_text("""\
default:
  plugins: [test_plugin.TestPlugin]
""")
    result = run_cli("backup", str(mydir))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    first = re.fullmatch(f"before_backup ({UUID})", lines[0])
    assert first, lines
    session_id = first.group(1)
    assert lines[1] == f"Backing up {mydir}"
    on_backup = next(line for line in lines if line.startswith("on_backup"))
    assert re.fullmatch(rf"on_backup {session_id} <Backup: mydir\.\d{{14}}\.tar\.zst>", on_backup)
    assert re.fullmatch(r"Job duration: \d+\.\d+(e-\d+)?s", lines[-1])


def test_your_first_plugin_from_python(mydir, caplog):
    import bakthat

    conf = {"plugins_dir": str(EXAMPLES), "plugins": ["test_plugin.TestPlugin"]}
    with caplog.at_level(logging.INFO, logger="bakthat"):
        row = bakthat.backup(str(mydir), conf=conf, prompt="no")
    messages = [r.getMessage() for r in caplog.records if r.name == "bakthat.plugins.TestPlugin"]
    assert messages[0] == f"before_backup {row.session_id}"
    assert messages[1] == f"on_backup {row.session_id} {row!r}"
    assert messages[2].startswith("Job duration: ")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # no KeyError in on_backup


# -- Monkey patching -------------------------------------------------------------------------------------


def test_monkey_patching_replaces_the_backups_model(home, mydir):
    import bakthat
    from bakthat import models

    conf = {"plugins_dir": str(EXAMPLES), "plugins": ["change_model_plugin.ChangeModelPlugin"]}
    row = bakthat.backup(str(mydir), conf=conf, prompt="no")
    import change_model_plugin

    assert type(row) is change_model_plugin.MyBackups and models.Backups is change_model_plugin.MyBackups
    assert models.Backups.my_custom_method() is True
    assert [type(found) for found in bakthat.search(conf=conf)] == [change_model_plugin.MyBackups]
    unload_plugins()
    assert models.Backups.__name__ == "Backups"


def test_monkey_patching_on_the_command_line(home, mydir):
    (home / ".bakthat.yml").write_text(f"""\
default:
  plugins_dir: {EXAMPLES}
  plugins: [change_model_plugin.ChangeModelPlugin]
""")
    result = run_cli("backup", str(mydir), "--prompt", "no")
    assert result.returncode == 0, result.stderr
    assert "Replace Backups" in result.stderr
    assert result.stderr.count("bakthat.models.Backups is now MyBackups") == 1


# -- BakHelper ---------------------------------------------------------------------------------------------


@pytest.fixture
def configured(home):
    """The ~/.bakthat.yml of a user who ran bakthat configure and configure_backups_rotation."""
    (home / ".bakthat.yml").write_text(
        "default:\n  scrypt_work_factor: 10\n"
        "  rotation: {days: 7, first_week_day: 5, months: 6, weeks: 6}\n"
    )
    return home


def test_bakhelper_minimal_example(configured, caplog, tmp_path):
    start = os.getcwd()
    caplog.set_level(std_logging.INFO)
    # --- the guide --------------------------------------------------------------------------------
    import logging
    logging.basicConfig(level=logging.INFO)

    from bakthat.helper import BakHelper

    with BakHelper("mybackup", tags=["mybackup"]) as bh:

        with open("myfile.txt", "w") as f:
            f.write("mydata")

        bh.backup()
        bh.rotate()
    # --- what it did ------------------------------------------------------------------------------------
    import bakthat

    assert os.getcwd() == start and not os.path.exists(bh.dir or "/nonexistent")
    backing_up = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("Backing up "))
    assert re.fullmatch(r"Backing up .*/mybackup_\w+", backing_up)
    (row,) = bakthat.search("mybackup")
    assert row.filename == "mybackup" and row.tags == "mybackup"
    bakthat.restore("mybackup", target=str(tmp_path / "out"))
    assert (tmp_path / "out" / "mybackup" / "myfile.txt").read_text() == "mydata"


def test_bakhelper_like_a_normal_class(home, tmp_path):
    # --- the guide --------------------------------------------------------------------------------
    import logging
    import sh  # noqa: F401 - imported by the guide, unused there too
    logging.basicConfig(level=logging.INFO)

    from bakthat.helper import BakHelper

    bakthat_conf = {'access_key': 'YOURACCESSKEY',
                    'secret_key': 'YOURSECRETKEY',
                    'glacier_vault': 'yourvault',
                    's3_bucket': 'yours3bucket',
                    'region_name': 'eu-west-1',
                    'rotation': {'days': 7,
                                'first_week_day': 5,
                                'months': 6,
                                'weeks': 6}}

    bh = BakHelper(conf=bakthat_conf)
    with open("myfile.txt", "w") as f:
        f.write("mydata")
    bh.backup("myfile.txt")
    bh.rotate("myfile.txt")
    # --- what it did ------------------------------------------------------------------------------------
    import bakthat

    (row,) = bakthat.search("myfile.txt", conf=bakthat_conf)
    assert row.filename == "myfile.txt" and row.backend == "local"
    bakthat.restore("myfile.txt", conf=bakthat_conf, target=str(tmp_path / "out"))
    assert (tmp_path / "out" / "myfile.txt").read_text() == "mydata"


# -- the MySQL backup script --------------------------------------------------------------------------------

MYSQL_TEST_USER = "bakthat_test"
MYSQL_TEST_DB = "bakthat_guide_test"


def _client() -> str | None:
    return shutil.which("mariadb") or shutil.which("mysql")


def _sql(statements: str) -> subprocess.CompletedProcess:
    """Run SQL as the server's root (unix socket, no password), statements on stdin."""
    return subprocess.run([_client(), "-u", "root"], input=statements, capture_output=True, text=True, timeout=60)


@pytest.fixture
def mysql_user():
    """A throwaway MariaDB user (password 'mypassword') and a database with one table."""
    if not shutil.which("mysqldump"):
        unavailable("no mysqldump binary on this machine (apt-get install mariadb-client)")
    if _client() is None:
        unavailable("no mariadb/mysql client to set up the test user (apt-get install mariadb-client)")
    probe = _sql("SELECT 1;")
    if probe.returncode != 0:
        unavailable(f"no MariaDB/MySQL server reachable as root on the local socket: {probe.stderr.strip()}")
    setup = _sql(f"""
        DROP USER IF EXISTS '{MYSQL_TEST_USER}'@'localhost';
        CREATE USER '{MYSQL_TEST_USER}'@'localhost' IDENTIFIED BY 'mypassword';
        GRANT SELECT, LOCK TABLES, SHOW VIEW, EVENT, TRIGGER ON *.* TO '{MYSQL_TEST_USER}'@'localhost';
        DROP DATABASE IF EXISTS {MYSQL_TEST_DB};
        CREATE DATABASE {MYSQL_TEST_DB};
        CREATE TABLE {MYSQL_TEST_DB}.guide_table (id INT PRIMARY KEY, label VARCHAR(40));
        INSERT INTO {MYSQL_TEST_DB}.guide_table VALUES (1, 'restored from bakthat');
    """)
    assert setup.returncode == 0, setup.stderr
    try:
        yield MYSQL_TEST_USER
    finally:
        _sql(f"DROP USER IF EXISTS '{MYSQL_TEST_USER}'@'localhost'; DROP DATABASE IF EXISTS {MYSQL_TEST_DB};")


def check_dump_restores(tmp_path: Path, backup_password: str) -> str:
    import bakthat

    (row,) = bakthat.search("myhost_mysql")
    assert row.filename == "myhost_mysql" and row.tags == "mysql" and row.is_encrypted()
    bakthat.restore("myhost_mysql", password=backup_password, target=str(tmp_path / "restored"))
    # all databases of a shared server: not necessarily UTF-8 text
    dump = (tmp_path / "restored" / "myhost_mysql" / "dump.sql").read_bytes().decode("utf-8", "replace")
    assert f"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `{MYSQL_TEST_DB}`" in dump
    assert "CREATE TABLE `guide_table`" in dump and "restored from bakthat" in dump
    return dump


def test_the_mysql_backup_script(mysql_user, configured, tmp_path, caplog):
    caplog.set_level(std_logging.DEBUG)
    # --- the guide, with the throwaway user instead of root ------------------------------------
    import logging
    import sh
    logging.basicConfig(level=logging.INFO)

    from bakthat.helper import BakHelper

    BACKUP_NAME = "myhost_mysql"
    BACKUP_PASSWORD = "mypassword"
    MYSQL_USER = mysql_user
    MYSQL_PASSWORD = "mypassword"

    with BakHelper(BACKUP_NAME, password=BACKUP_PASSWORD, tags=["mysql"]) as bh:
        sh.mysqldump("-p{0}".format(MYSQL_PASSWORD),
                    u=MYSQL_USER,
                    all_databases=True,
                    _out="dump.sql")
        bh.backup()
        bh.rotate()
    # --- what it did ------------------------------------------------------------------------------------
    check_dump_restores(tmp_path, BACKUP_PASSWORD)
    # The password in mysqldump's argv is the sample's, logged by sh; bakthat logs no secret.
    assert not [r for r in caplog.records if r.name.startswith("bakthat") and "mypassword" in r.getMessage()]


def test_the_safer_mysql_script_of_docs_plugins_md(mysql_user, configured, tmp_path, caplog):
    caplog.set_level(std_logging.DEBUG)
    # --- docs/plugins.md ----------------------------------------------------------------------------
    import logging
    import os
    import sh

    from bakthat.helper import BakHelper

    logging.basicConfig(level=logging.INFO)
    logging.getLogger("sh").setLevel(logging.WARNING)

    MYSQL_USER = mysql_user
    MYSQL_PASSWORD = "mypassword"           # better: read it from a file or a secret store
    BACKUP_PASSWORD = "mypassword"

    with BakHelper("myhost_mysql", password=BACKUP_PASSWORD, tags=["mysql"]) as bh:
        sh.mysqldump(u=MYSQL_USER, all_databases=True, single_transaction=True,
                     _out="dump.sql", _env={**os.environ, "MYSQL_PWD": MYSQL_PASSWORD})
        bh.backup()
        bh.rotate()
    # --- what it did ------------------------------------------------------------------------------------
    check_dump_restores(tmp_path, BACKUP_PASSWORD)
    assert not [r for r in caplog.records if "mypassword" in r.getMessage()]


def test_the_option_file_form_of_docs_plugins_md(mysql_user, configured, tmp_path):
    import os
    import sh

    from bakthat.helper import BakHelper

    MYSQL_USER = mysql_user
    MYSQL_PASSWORD = "mypassword"

    with BakHelper("myhost_mysql", password="mypassword", tags=["mysql"]) as bh:
        fd = os.open("client.cnf", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as option_file:
            option_file.write(f"[client]\nuser={MYSQL_USER}\npassword={MYSQL_PASSWORD}\n")
        sh.mysqldump("--defaults-extra-file=client.cnf", all_databases=True, _out="dump.sql")
        os.remove("client.cnf")  # the password must not go into the backup
        bh.backup()
    dump = check_dump_restores(tmp_path, "mypassword")
    assert "mypassword" not in dump
    assert snapshot(tmp_path / "restored" / "myhost_mysql").keys() == {".", "dump.sql"}
