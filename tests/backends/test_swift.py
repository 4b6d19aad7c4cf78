"""The Swift backend against a real one-node Swift (.ci/swift-start): conformance, deletes,
faults through backup and restore, configuration, Keystone, logs.

Its upload half is tested in test_swift_upload.py, its reads in test_swift_read.py, its
HTTP statuses and errors in test_swift_http.py.  Faults are injected at our own layer
(tests/backends/swift_faults.py): the real Swift neither fails nor corrupts on demand.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import bakthat
from bakthat import models
from bakthat.backends import get_backend, swift
from bakthat.errors import ConfigError, IntegrityError, StorageError
from bakthat.testing.conformance import BackendConformance
from tests.conftest import run_cli, snapshot
from tests.backends.swift_faults import install_faulty, objects_of, random_tree, segments_of, small_segments
from tests.services import swift_connection, unavailable

MiB = 1 << 20


@pytest.fixture
def backend(swift_conf):
    return get_backend("swift", swift_conf)


class TestSwiftConformance(BackendConformance):
    pass


# --------------------------------------------------------------------------- deletes


def test_deleting_a_large_object_deletes_its_segments(swift_conf):
    store = get_backend("swift", small_segments(swift_conf))
    store.put("big", os.urandom(3 * MiB))
    assert len(segments_of(swift_conf)) == 3
    store.delete("big")
    assert objects_of(swift_conf) == [] and segments_of(swift_conf) == []


# --------------------------------------------------------------------------- faults


def test_a_segment_failing_midway_aborts_and_leaves_no_object_no_segment_and_no_row(swift_conf, monkeypatch, tmp_path):
    faults = install_faulty(monkeypatch, fail_segment=3)
    source = random_tree(tmp_path / "src" / "data", 6 * MiB)
    with pytest.raises(StorageError, match="503"):
        bakthat.backup(str(source), destination="swift", conf=small_segments(swift_conf, swift_retries=2), prompt="no")
    assert any(name.endswith("/00000003") for name in faults.segment_puts)
    assert objects_of(swift_conf) == []
    assert segments_of(swift_conf) == []
    assert list(models.Backups.select()) == []


def test_a_transient_error_on_a_segment_is_retried(swift_conf, monkeypatch, tmp_path):
    faults = install_faulty(monkeypatch, fail_segment=2, fail_times=1)
    source = random_tree(tmp_path / "src" / "data", 4 * MiB)
    row = bakthat.backup(str(source), destination="swift", conf=small_segments(swift_conf), prompt="no")
    assert sum(1 for name in faults.segment_puts if name.endswith("/00000002")) == 2
    bakthat.restore("data", destination="swift", conf=small_segments(swift_conf), target=tmp_path / "out")
    assert snapshot(tmp_path / "out" / "data") == snapshot(source)
    assert row.size > 4 * MiB


def test_a_corrupted_download_is_an_integrity_error_and_nothing_is_written(swift_conf, monkeypatch, tmp_path):
    source = random_tree(tmp_path / "src" / "data", 3 * MiB)
    bakthat.backup(str(source), destination="swift", conf=small_segments(swift_conf), prompt="no")
    install_faulty(monkeypatch, corrupt_get=True)
    target = tmp_path / "restored"
    target.mkdir()
    with pytest.raises(IntegrityError):
        bakthat.restore("data", destination="swift", conf=small_segments(swift_conf), target=str(target), prompt="no")
    assert list(target.iterdir()) == []


def test_a_store_that_reports_another_size_fails_the_backup_removes_the_object_and_writes_no_row(swift_conf, monkeypatch, tmp_path):
    install_faulty(monkeypatch, lie_about_size=True)
    source = random_tree(tmp_path / "src" / "data", 3 * MiB)
    with pytest.raises(IntegrityError, match="were sent; removed"):
        bakthat.backup(str(source), destination="swift", conf=small_segments(swift_conf), prompt="no")
    assert objects_of(swift_conf) == [] and segments_of(swift_conf) == []
    assert list(models.Backups.select()) == []


# --------------------------------------------------------------------------- configuration


def test_a_06_style_profile_backs_up_and_restores_through_the_cli(swift_server, swift_conf, tree, tmp_path):
    container = swift_conf["swift_container"]
    config = tmp_path / "bakthat.yml"
    config.write_text(
        "default:\n"
        "  default_destination: swift\n"
        f"  auth_url: {swift_server['auth_url']}\n"
        "  auth_version: '1'\n"
        f"  access_key: {swift_server['access_key']}\n"
        f"  secret_key: {swift_server['secret_key']}\n"
        f"  s3_bucket: {container}\n"
        "  glacier_vault: ''\n"
        "  region_name: us-east-1\n"
    )
    os.chmod(config, 0o600)
    env = {"BAKTHAT_PASSWORD": "pw", "BAKTHAT_SCRYPT_WORK_FACTOR": "10"}
    done = run_cli("backup", str(tree), "-c", str(config), env=env)
    assert done.returncode == 0, done.stderr
    assert any(name.startswith("mydir.") and name.endswith(".tar.zst.age") for name in objects_of(swift_conf))
    shown = run_cli("show", "--json", "-c", str(config))
    assert json.loads(shown.stdout)[0]["backend"] == "swift"
    back = run_cli("restore", "mydir", "--target", str(tmp_path / "out"), "-c", str(config), env=env)
    assert back.returncode == 0, back.stderr
    assert snapshot(tmp_path / "out" / "mydir") == snapshot(tree)
    gone = run_cli("delete", "mydir", "-c", str(config))
    assert gone.returncode == 0, gone.stderr
    assert objects_of(swift_conf) == []


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"auth_version": "4"}, "auth_version must be 1, 2 or 3"),
        ({"swift_container": None, "s3_bucket": None}, "swift_container"),
        ({"access_key": None}, "access_key"),
        ({"swift_segment_size": "100KiB"}, "swift_segment_size"),
        ({"swift_concurrency": 0}, "swift_concurrency"),
        ({"swift_retries": 0}, "swift_retries"),
        ({"swift_timeout": 0}, "swift_timeout"),
    ],
)
def test_bad_settings_are_config_errors(settings, message):
    conf = {"auth_url": "http://127.0.0.1:1/auth/v1.0", "access_key": "a:u", "secret_key": "k", "swift_container": "c", **settings}
    with pytest.raises(ConfigError, match=message):
        get_backend("swift", conf)


def test_the_typed_config_takes_the_declared_defaults_and_shows_no_secret():
    store = get_backend("swift", {"auth_url": "http://127.0.0.1:1/auth/v1.0", "access_key": "a:u", "secret_key": "s3cr3t-key", "s3_bucket": "c"})
    config = store.config
    assert config.segment_size == 32 * MiB and str(swift.SETTINGS["swift_segment_size"].default) == "32MiB"
    assert (config.concurrency, config.retries, config.timeout) == (
        swift.SETTINGS["swift_concurrency"].default, swift.SETTINGS["swift_retries"].default, swift.SETTINGS["swift_timeout"].default
    )
    assert "s3cr3t-key" not in repr(config)


def test_the_container_comes_from_s3_bucket_as_in_06_unless_swift_container_is_set():
    base_conf = {"auth_url": "http://127.0.0.1:1/auth/v1.0", "access_key": "a:u", "secret_key": "k"}
    assert get_backend("swift", {**base_conf, "s3_bucket": "legacy"}).container_name == "legacy"
    store = get_backend("swift", {**base_conf, "s3_bucket": "legacy", "swift_container": "own"})
    assert (store.container_name, store.segment_container) == ("own", "own_segments")


def test_keystone_v3_settings_reach_swiftclient():
    store = get_backend(
        "swift",
        {
            "auth_url": "https://keystone.example/v3",
            "auth_version": 3,
            "access_key": "alice",
            "secret_key": "k",
            "swift_container": "c",
            "swift_project_name": "backups",
            "swift_project_domain_name": "Default",
            "swift_user_domain_name": "Default",
            "swift_region_name": "RegionTwo",
            "swift_endpoint_type": "internalURL",
            "swift_cacert": "/etc/ssl/certs/ca-certificates.crt",
        },
    )
    connection = store.make_connection()
    assert connection.auth_version == "3"
    assert connection.os_options == {
        "project_name": "backups",
        "project_domain_name": "Default",
        "user_domain_name": "Default",
        "region_name": "RegionTwo",
        "endpoint_type": "internalURL",
    }
    assert connection.cacert == "/etc/ssl/certs/ca-certificates.crt" and connection.insecure is False


class FakeKeystone(BaseHTTPRequestHandler):
    """A Keystone v2.0/v3 stand-in: checks the credentials bakthat sends, and answers with a
    real tempauth token of the test Swift and its storage URL as the object-store endpoint."""

    requests: list = []
    swift: dict = {}

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append((self.path, body))
        request = urllib.request.Request(
            self.swift["auth_url"], headers={"X-Auth-User": self.swift["access_key"], "X-Auth-Key": self.swift["secret_key"]}
        )
        with urllib.request.urlopen(request) as answer:
            token, storage_url = answer.headers["X-Auth-Token"], answer.headers["X-Storage-Url"]
        expires = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        if self.path == "/v3/auth/tokens":
            endpoint = {"id": "e", "interface": "internal", "region": "RegionTwo", "region_id": "RegionTwo", "url": storage_url}
            payload = {"token": {
                "methods": ["password"], "expires_at": expires, "issued_at": expires,
                "user": {"id": "u", "name": "alice", "domain": {"id": "default", "name": "Default"}},
                "project": {"id": "p", "name": "backups", "domain": {"id": "default", "name": "Default"}},
                "roles": [{"id": "r", "name": "member"}],
                "catalog": [{"type": "object-store", "name": "swift", "id": "s", "endpoints": [endpoint]}],
            }}
            headers = {"X-Subject-Token": token}
        else:
            payload = {"access": {
                "token": {"id": token, "expires": expires, "tenant": {"id": "t", "name": "backups"}},
                "user": {"id": "u", "name": "alice", "roles": []},
                "serviceCatalog": [{"type": "object-store", "name": "swift", "endpoints": [
                    {"region": "RegionOne", "publicURL": storage_url, "internalURL": storage_url, "adminURL": storage_url}]}],
            }}
            headers = {}
        data = json.dumps(payload).encode()
        self.send_response(201 if headers else 200)
        for name, value in {**headers, "Content-Type": "application/json", "Content-Length": str(len(data))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def keystone(swift_server):
    try:
        import keystoneclient  # noqa: F401
    except ImportError:
        unavailable("python-keystoneclient (in the test extra) is not installed")
    FakeKeystone.requests = []
    FakeKeystone.swift = swift_server
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeKeystone)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_keystone_v3_authentication_with_domains_and_project_reaches_swift(keystone, swift_conf):
    store = get_backend("swift", {
        "auth_url": f"{keystone}/v3", "auth_version": 3, "access_key": "alice", "secret_key": "alice-password",
        "swift_container": swift_conf["swift_container"], "swift_project_name": "backups",
        "swift_user_domain_name": "Default", "swift_project_domain_name": "Default",
        "swift_region_name": "RegionTwo", "swift_endpoint_type": "internal",
    })
    store.put("through-keystone", b"hello")
    assert swift_connection().get_object(swift_conf["swift_container"], "through-keystone")[1] == b"hello"
    path, body = FakeKeystone.requests[0]
    assert path == "/v3/auth/tokens"
    assert body["auth"]["identity"]["password"]["user"] == {"name": "alice", "password": "alice-password", "domain": {"name": "Default"}}
    assert body["auth"]["scope"] == {"project": {"name": "backups", "domain": {"name": "Default"}}}


def test_keystone_v2_takes_the_tenant_from_access_key_as_06_did(keystone, swift_conf):
    store = get_backend("swift", {
        "auth_url": f"{keystone}/v2.0", "auth_version": "2", "access_key": "backups:alice", "secret_key": "alice-password",
        "swift_container": swift_conf["swift_container"],
    })
    store.put("through-keystone-v2", b"hello")
    with store.open_read("through-keystone-v2") as stream:
        assert stream.read() == b"hello"
    path, body = FakeKeystone.requests[0]
    assert path == "/v2.0/tokens"
    assert body["auth"] == {"tenantName": "backups", "passwordCredentials": {"username": "alice", "password": "alice-password"}}


def test_no_secret_reaches_any_log_record_at_debug(swift_conf, tree, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("swiftclient", "urllib3", "bakthat"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    conf = {**swift_conf, "scrypt_work_factor": 10}
    bakthat.backup(str(tree), destination="swift", conf=conf, password="the-password")
    bakthat.restore("mydir", destination="swift", conf=conf, password="the-password", target=tmp_path / "out")
    token = get_backend("swift", conf).connection()
    token.head_account()
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "swift" in text.lower()
    for secret in (swift_conf["secret_key"], "the-password", token.token):
        assert secret not in text


def test_importing_the_swift_backend_imports_no_swiftclient():
    import subprocess
    import sys

    code = "import sys, bakthat.backends.swift, bakthat.conf; bakthat.conf.collect_settings(); print('swiftclient' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
