"""docs/scheduling.md and contrib/: the crontab line and the systemd units run as written."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from tests.conftest import ROOT

BIN = Path(sys.executable).parent


@pytest.fixture
def heartbeat():
    """Yield (url, paths requested) of a local heartbeat receiver."""
    seen: list[str] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            seen.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/ping/nightly", seen
    server.shutdown()


def profile(tmp_path: Path, heartbeat_url: str, extra_source: str = "") -> tuple[Path, Path]:
    """Write a scheduled profile (password file, heartbeat, one job); return (config, password file)."""
    (tmp_path / "etc").mkdir(exist_ok=True)
    (tmp_path / "etc" / "hosts.txt").write_text("127.0.0.1 localhost\n")
    password = tmp_path / "password"
    password.write_text("scheduled-secret\n")
    password.chmod(0o600)
    config = tmp_path / "bakthat.yml"
    config.write_text(
        "default:\n"
        f"  local_path: {tmp_path / 'store'}\n"
        f"  database: {tmp_path / 'catalog.sqlite'}\n"
        "  require_encryption: true\n"
        f"  heartbeat_url: {heartbeat_url}\n"
        "  jobs:\n    nightly:\n"
        f"      sources: [{tmp_path / 'etc'}{extra_source}]\n"
        "      rotation: {days: 7, weeks: 4, months: 6}\n"
    )
    return config, password


def environment(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **extra}


def cron_command() -> list[str]:
    text = (ROOT / "docs" / "scheduling.md").read_text()
    block = re.search(r"```cron\n(.*?)```", text, re.S).group(1)
    line = next(line for line in block.splitlines() if line.strip() and not line.startswith("#"))
    return shlex.split(line)[6:]  # m h dom mon dow user command...


def test_the_crontab_line_runs_every_job_and_its_exit_status_and_heartbeat_say_partial(tmp_path, heartbeat):
    url, seen = heartbeat
    command = cron_command()
    assert command[:3] == ["bakthat", "-q", "run"] and "/etc/bakthat.yml" in command
    config, password = profile(tmp_path, url)
    config.write_text(config.read_text().replace("default:\n", f"default:\n  password_file: {password}\n"))
    argv = [str(config) if word == "/etc/bakthat.yml" else word for word in command]
    ok = subprocess.run(argv, capture_output=True, text=True, env=environment(), timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr == ""  # -q: nothing for cron to mail
    assert seen == ["/ping/nightly"]
    stored = [path.name for path in (tmp_path / "store").iterdir() if path.name.startswith("etc.")]
    assert any(name.endswith(".tar.zst.age") for name in stored)  # password_file: encrypted

    config.write_text(config.read_text().replace("]\n", f", {tmp_path / 'gone'}]\n", 1))
    partial = subprocess.run(argv, capture_output=True, text=True, env=environment(), timeout=300)
    assert partial.returncode == 3
    assert "source gone failed" in partial.stderr
    assert seen == ["/ping/nightly", "/ping/nightly/fail"]


def unit_lines(name: str, key: str) -> list[str]:
    text = (ROOT / "contrib" / name).read_text()
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(key + "=")]


def test_the_systemd_service_runs_as_written_with_the_password_file_from_its_environment(tmp_path, heartbeat):
    url, seen = heartbeat
    (exec_start,) = unit_lines("bakthat.service", "ExecStart")
    (variable,) = unit_lines("bakthat.service", "Environment")
    name, value = variable.split("=", 1)
    assert (name, value) == ("BAKTHAT_PASSWORD_FILE", "/etc/bakthat/password")
    config, password = profile(tmp_path, url)
    argv = shlex.split(exec_start)
    assert argv[0] == "/usr/local/bin/bakthat"
    argv = [str(BIN / "bakthat")] + [str(config) if word == "/etc/bakthat.yml" else word for word in argv[1:]]
    result = subprocess.run(argv, capture_output=True, text=True, env=environment(**{name: str(password)}),
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert seen == ["/ping/nightly"]
    assert any(path.name.endswith(".age") for path in (tmp_path / "store").iterdir())
    missing = subprocess.run(argv, capture_output=True, text=True, env=environment(), timeout=300)
    assert missing.returncode == 1  # require_encryption without the password file: every source refused
    assert "require_encryption: true" in missing.stdout + missing.stderr


def test_the_systemd_units_pass_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    text = (ROOT / "contrib" / "bakthat.service").read_text().replace("/usr/local/bin/bakthat", str(BIN / "bakthat"))
    (tmp_path / "bakthat.service").write_text(text)
    shutil.copy(ROOT / "contrib" / "bakthat.timer", tmp_path / "bakthat.timer")
    result = subprocess.run([analyze, "verify", str(tmp_path / "bakthat.service"), str(tmp_path / "bakthat.timer")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    (calendar,) = unit_lines("bakthat.timer", "OnCalendar")
    assert subprocess.run([analyze, "calendar", calendar], capture_output=True).returncode == 0
