"""bakthat.backends._retry: which errors are retried, how often, how long it waits."""

from __future__ import annotations

import logging
import random

import pytest

from bakthat.backends._retry import RetryPolicy, TransientError, call_with_retries, error_code, http_status, is_transient


class ClientError(Exception):
    """Shaped like botocore's ClientError: a ``response`` with an error code and status."""

    def __init__(self, code: str, status: int):
        super().__init__(code)
        self.response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}


class EndpointConnectionError(Exception):
    """Named like botocore's: the class name is what marks it transient."""


class Flaky:
    """An operation failing with the given errors, then returning ``done``."""

    def __init__(self, *errors: BaseException):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def test_the_code_and_status_are_read_from_a_client_error_and_absent_otherwise():
    assert (error_code(ClientError("SlowDown", 503)), http_status(ClientError("SlowDown", 503))) == ("SlowDown", 503)
    assert (error_code(ValueError("x")), http_status(ValueError("x"))) == ("", 0)


@pytest.mark.parametrize(
    "exc",
    [ClientError("SlowDown", 503), ClientError("BadDigest", 400), ClientError("Whatever", 500),
     EndpointConnectionError(), ConnectionResetError(), TimeoutError(), TransientError("x")],
)
def test_throttling_server_errors_and_broken_connections_are_transient(exc):
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [ClientError("AccessDenied", 403), ClientError("NoSuchKey", 404), ValueError("bad"), KeyboardInterrupt(), SystemExit(1)],
)
def test_refusals_bugs_and_interruptions_are_not_transient(exc):
    assert not is_transient(exc)


def test_a_transient_failure_is_retried_after_a_wait_until_it_succeeds(caplog):
    operation = Flaky(ClientError("SlowDown", 503), EndpointConnectionError())
    waits = []
    with caplog.at_level(logging.DEBUG, logger="bakthat.backends"):
        assert call_with_retries(operation, "upload part 3", sleep=waits.append) == "done"
    assert operation.calls == 3
    assert len(waits) == 2 and all(wait >= 0 for wait in waits)
    assert "upload part 3 failed (ClientError: SlowDown); retry 1/4" in caplog.text


def test_a_permanent_failure_is_raised_at_once():
    denied = ClientError("AccessDenied", 403)
    operation = Flaky(denied)
    with pytest.raises(ClientError) as raised:
        call_with_retries(operation, "get", sleep=lambda _: pytest.fail("must not wait"))
    assert raised.value is denied and operation.calls == 1


def test_the_last_error_is_raised_when_the_attempts_run_out():
    errors = [TransientError(f"try {n}") for n in range(5)]
    operation = Flaky(*errors, TransientError("never reached"))
    with pytest.raises(TransientError, match="try 2"):
        call_with_retries(operation, "get", policy=RetryPolicy(attempts=3), sleep=lambda _: None)
    assert operation.calls == 3


def test_stop_ends_the_retries_with_the_error_at_hand():
    operation = Flaky(TransientError("first"), TransientError("second"))
    with pytest.raises(TransientError, match="first"):
        call_with_retries(operation, "part", sleep=lambda _: pytest.fail("must not wait"), stop=lambda: True)
    assert operation.calls == 1


def test_a_custom_retryable_decides_what_is_retried():
    operation = Flaky(ValueError("odd"))
    assert call_with_retries(operation, "x", retryable=lambda exc: isinstance(exc, ValueError), sleep=lambda _: None) == "done"


def test_the_wait_is_full_jitter_below_a_doubling_cap():
    policy = RetryPolicy(attempts=10, base_delay=0.5, max_delay=4.0)
    random.seed(11)
    for attempt, cap in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (8, 4.0)]:
        waits = [policy.delay(attempt) for _ in range(200)]
        assert all(0 <= wait <= cap for wait in waits)
        assert max(waits) > cap * 0.8  # jitter spans the range, not a fixed wait
