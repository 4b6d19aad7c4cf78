"""A moto server on 127.0.0.1, shared by every test that talks to S3 or Glacier.

``moto_server`` (session scope) starts moto's server mode as a real HTTP server on a
free port, once per test process.  ``aws`` (function scope) resets its state, points
boto3 at it through the standard environment variables (``AWS_ENDPOINT_URL``, keys,
region), and shields the test from the developer's own AWS files; it returns the
server's URL.  Tests outside this directory import both fixtures from here::

    from tests.backends.conftest import aws, moto_server  # noqa: F401
"""

from __future__ import annotations

import logging
import socket
import urllib.request

import pytest

from bakthat import models

_server: dict[str, object] = {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_url() -> str:
    """Start the moto server once for this process (if needed) and return its URL."""
    if "url" not in _server:
        from moto.server import ThreadedMotoServer

        from tests.backends import moto_glacier

        moto_glacier.install()  # multipart uploads and ranged job output for the vault tests

        logging.getLogger("werkzeug").setLevel(logging.ERROR)

        port = _free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        _server["server"] = server
        _server["url"] = f"http://127.0.0.1:{port}"
    return str(_server["url"])


def reset_server() -> None:
    """Forget every bucket, object, vault and job held by the moto server."""
    request = urllib.request.Request(server_url() + "/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


@pytest.fixture
def catalog(tmp_path):
    """A catalog of the test's own, bound for the test (vault archive ids and retrievals live there)."""
    models.bind(str(tmp_path / "catalog.sqlite"))
    yield
    models.unbind()


@pytest.fixture(scope="session")
def moto_server() -> str:
    return server_url()


@pytest.fixture
def aws(moto_server, monkeypatch, tmp_path) -> str:
    """Reset moto and make the default AWS credential chain and endpoint point at it."""
    reset_server()
    for variable in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_GLACIER",
        "AWS_REQUEST_CHECKSUM_CALCULATION",
        "AWS_RESPONSE_CHECKSUM_VALIDATION",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-access-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return moto_server


def s3_client(region: str = "us-east-1"):
    """Return a plain boto3 S3 client on the moto server (for assertions in tests)."""
    import boto3

    return boto3.client("s3", region_name=region, endpoint_url=server_url())


@pytest.fixture
def cli_main():
    """Return ``bakthat.cli.main`` for in-process runs, undoing its logging set-up afterwards."""
    from bakthat.cli import main

    logger = logging.getLogger("bakthat")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield main
    logger.handlers[:] = saved[0]
    logger.propagate = saved[1]
    logger.setLevel(saved[2])
