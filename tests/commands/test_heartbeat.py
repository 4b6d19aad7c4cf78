"""heartbeat_url: pinged by ``bakthat backup`` on success and failure, never failing it."""

from __future__ import annotations

import json
import socket

import pytest

from bakthat import heartbeat
from tests.conftest import cli_ok, run_cli
from tests.heartbeat_server import monitor, url  # noqa: F401 - fixture


def configure(home, value: str) -> None:
    (home / ".bakthat.yml").write_text(f"default:\n  heartbeat_url: '{value}'\n")


def test_a_successful_backup_pings_the_url(home, monitor, tree):
    configure(home, url(monitor))
    result = run_cli("backup", str(tree), "--prompt", "no")
    assert result.returncode == 0, result.stderr
    assert monitor.paths == ["/ping/s3cr3t-uuid"]
    state = json.loads(cli_ok("periodic_backups", "--json").stdout)
    assert state["heartbeat_url"] == f"http://127.0.0.1:{monitor.server_address[1]}/…"
    assert state["last_ping"]["status"] == "success" and state["last_ping"]["delivered"] is True


def test_a_failed_backup_pings_fail_and_keeps_its_exit_code(home, monitor, tmp_path):
    configure(home, url(monitor))
    result = run_cli("backup", str(tmp_path / "missing"), "--prompt", "no")
    assert result.returncode == 2
    assert monitor.paths == ["/ping/s3cr3t-uuid/fail"]


def test_status_and_key_placeholders(home, monitor, tree):
    configure(home, url(monitor, "/push?status={status}&check={key}"))
    assert run_cli("backup", str(tree), "--prompt", "no").returncode == 0
    assert monitor.paths == []
    assert run_cli("backup", str(tree), "--prompt", "no", "-k", "db nightly").returncode == 0
    assert monitor.paths == ["/push?status=success&check=db%20nightly"]


def test_an_unreachable_monitor_is_a_warning_naming_only_the_host(home, tree):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    configure(home, f"http://127.0.0.1:{port}/ping/s3cr3t-uuid")
    result = run_cli("backup", str(tree), "--prompt", "no")
    assert result.returncode == 0, result.stderr
    assert f"warning: heartbeat ping (success) to http://127.0.0.1:{port}/… failed" in result.stderr
    assert "s3cr3t" not in result.stderr
    state = json.loads(cli_ok("periodic_backups", "--json").stdout)
    assert state["last_ping"]["delivered"] is False
    assert "NOT delivered" in cli_ok("periodic_backups").stdout


def test_an_http_error_is_a_warning(home, monitor, tree):
    monitor.status = 500
    configure(home, url(monitor))
    result = run_cli("backup", str(tree), "--prompt", "no")
    assert result.returncode == 0
    assert "failed: HTTP 500" in result.stderr and "s3cr3t" not in result.stderr


def test_url_for():
    assert heartbeat.url_for("https://hc/x", "success") == "https://hc/x"
    assert heartbeat.url_for("https://hc/x/", "fail") == "https://hc/x/fail"
    assert heartbeat.url_for("https://hc/x?a=1", "fail") == "https://hc/x/fail?a=1"
    assert heartbeat.url_for("https://hc/{key}", "success") is None
    assert heartbeat.url_for("https://hc/{key}/{status}", "fail", "a/b") == "https://hc/a%2Fb/fail"
    with pytest.raises(ValueError):
        heartbeat.url_for("https://hc", "maybe")


def test_ping_refuses_other_schemes(tmp_path, caplog):
    assert heartbeat.ping(f"file://{tmp_path}/x", "success") is False
    assert "not an http or https URL" in caplog.text
    assert heartbeat.redact("https://user:pw@hc-ping.com:8443/abc?x=1") == "https://hc-ping.com:8443/…"
