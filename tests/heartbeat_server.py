"""A heartbeat monitor for tests: a local HTTP server recording the paths pinged.

``monitor`` (a fixture) yields the running server: ``paths`` holds every GET's path in
order, ``status`` is the HTTP status it answers (200 unless a test sets it).  Test
modules import the fixture::

    from tests.heartbeat_server import monitor  # noqa: F401 - fixture
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest


class Recorder(http.server.BaseHTTPRequestHandler):
    """Record the path of each GET and answer the server's ``status``."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.server.paths.append(self.path)
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def monitor() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.paths = []
    server.status = 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def url(server: http.server.ThreadingHTTPServer, path: str = "/ping/s3cr3t-uuid") -> str:
    """Return the URL of ``path`` on the monitor."""
    return f"http://127.0.0.1:{server.server_address[1]}{path}"
