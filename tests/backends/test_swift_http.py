"""Swift's HTTP side (bakthat/backends/_swift_http.py): which failures are worth another
attempt, and the bakthat error each becomes, naming the object and never a secret.

swiftclient's own ClientException is used; authentication failures and timeouts are
produced for real (the real Swift with a wrong key, and a local socket that accepts a
connection and never answers).
"""

from __future__ import annotations

import socket
import threading

import pytest
from swiftclient.exceptions import ClientException

from bakthat.backends import get_backend
from bakthat.backends._swift_http import Cancelled, listing_time, status_of, timestamp, transient, translate_error
from bakthat.errors import AlreadyExistsError, ConfigError, IntegrityError, NotFoundError, StorageError
from tests.services import SWIFT_AUTH_URL, SWIFT_USER

WHAT = "swift://container/key"


def http_error(status: int) -> ClientException:
    return ClientException(f"Object GET failed: {status}", http_status=status)


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never answers (a hung proxy)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []

    def accept():
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/auth/v1.0"
    listener.close()
    for connection in accepted:
        connection.close()


# --------------------------------------------------------------------------- statuses


def test_the_status_is_read_from_a_client_exception_else_zero():
    assert status_of(http_error(404)) == 404
    assert status_of(ClientException("no status")) == 0
    assert status_of(ValueError("x")) == 0


@pytest.mark.parametrize("status", [408, 422, 429, 498, 500, 503, 507])
def test_timeouts_throttling_damage_in_transit_and_server_errors_are_retried(status):
    assert transient(http_error(status))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 412])
def test_refusals_are_not_retried(status):
    assert not transient(http_error(status))


def test_a_timed_out_client_exception_and_broken_connections_are_retried():
    assert transient(ClientException("Request timed out"))
    assert not transient(ClientException("Unauthorized"))
    assert transient(ConnectionResetError("reset"))
    assert transient(TimeoutError())


def test_a_cancelled_request_and_a_plain_error_are_not_retried():
    assert not transient(Cancelled())
    assert not transient(ValueError("bad"))


# --------------------------------------------------------------------------- translation


@pytest.mark.parametrize(
    ("error", "expected", "message"),
    [
        (http_error(404), NotFoundError, f"reading {WHAT}: not found (404)"),
        (http_error(412), AlreadyExistsError, f"reading {WHAT}: the object exists (412); nothing was replaced"),
        (http_error(401), StorageError, f"reading {WHAT}: access denied (401); check auth_url, access_key and secret_key"),
        (http_error(403), StorageError, f"reading {WHAT}: access denied (403)"),
        (http_error(422), IntegrityError, f"reading {WHAT}: Swift found the data damaged in transit (422), even after retries"),
        (http_error(503), StorageError, f"reading {WHAT} failed (HTTP 503)"),
        (ConnectionRefusedError("refused"), StorageError, f"reading {WHAT} failed (ConnectionRefusedError); cannot reach Swift?"),
        (ClientException("No module named keystoneclient"), ConfigError,
         "auth_version 2 and 3 need python-keystoneclient: pip install python-keystoneclient"),
    ],
)
def test_each_failure_becomes_the_bakthat_error_naming_the_object(error, expected, message):
    translated = translate_error(error, "reading", WHAT)
    assert type(translated) is expected
    assert message in str(translated)


def test_a_bakthat_error_passes_through_unchanged():
    original = NotFoundError("already ours")
    assert translate_error(original, "reading", WHAT) is original


def test_a_wrong_key_against_the_real_swift_is_access_denied_naming_no_secret(swift_server):
    from swiftclient.client import Connection

    connection = Connection(SWIFT_AUTH_URL, SWIFT_USER, "wrong-key-4567", retries=0)
    with pytest.raises(ClientException) as raised:
        connection.head_account()
    assert status_of(raised.value) == 401 and not transient(raised.value)
    error = translate_error(raised.value, "listing", WHAT)
    assert isinstance(error, StorageError) and "access denied (401)" in str(error)
    assert "wrong-key-4567" not in str(error)


def test_wrong_credentials_are_a_storage_error_naming_no_secret(swift_conf):
    store = get_backend("swift", {**swift_conf, "secret_key": "not-the-key-123"})
    with pytest.raises(StorageError, match="access denied") as caught:
        store.put("x", b"x")
    assert "not-the-key-123" not in str(caught.value)


def test_a_proxy_that_never_answers_times_out_and_says_it_cannot_reach_swift(silent_server):
    store = get_backend(
        "swift",
        {"auth_url": silent_server, "access_key": "a:u", "secret_key": "k", "swift_container": "c",
         "swift_timeout": 0.3, "swift_retries": 1},
    )
    with pytest.raises(StorageError) as caught:
        store.put("x", b"x")
    assert str(caught.value) == "looking up swift://c/x failed (ReadTimeout); cannot reach Swift?"


# --------------------------------------------------------------------------- times


def test_an_objects_timestamp_is_read_from_its_headers():
    assert timestamp({"x-timestamp": "1717528255.12345"}) == 1717528255.12345
    assert timestamp({}) is None and timestamp({"x-timestamp": "soon"}) is None


def test_a_listing_time_is_utc_without_a_zone():
    assert listing_time("2024-06-04T19:10:55.000000") == 1717528255.0
    assert listing_time(None) is None and listing_time("") is None and listing_time("yesterday") is None
