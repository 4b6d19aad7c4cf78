"""bakthat.backends._redact: credentials never reach a log record, whoever logs them."""

from __future__ import annotations

import logging

from bakthat.backends._redact import FILTER, MASK, RedactingFilter, protect


def record(message, *args, name="botocore.endpoint"):
    return logging.LogRecord(name, logging.DEBUG, __file__, 1, message, args, None)


def test_registered_secrets_are_masked_in_the_formatted_message_longest_first():
    redacting = RedactingFilter()
    redacting.add("AKIASECRETKEY", "AKIASECRETKEY-LONGER", None, "abc")  # None and short ones are ignored
    entry = record("key %s then %s and abc", "AKIASECRETKEY-LONGER", "AKIASECRETKEY")
    assert redacting.filter(entry) is True
    assert entry.getMessage() == f"key {MASK} then {MASK} and abc"
    assert entry.args is None


def test_credential_bearing_headers_and_query_strings_are_masked_without_registration():
    redacting = RedactingFilter()
    text = redacting.redact(
        "{'Authorization': 'AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20240101/us-east-1/s3/aws4_request, "
        "Signature=0123456789abcdef0123', 'X-Amz-Security-Token': 'FwoGZXIvYXdzEXAMPLETOKEN'} "
        "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAOTHER%2F2024&X-Amz-Signature=fedcba9876543210fedc"
    )
    for secret in ("AKIAEXAMPLE", "0123456789abcdef0123", "FwoGZXIvYXdzEXAMPLETOKEN", "AKIAOTHER", "fedcba9876543210fedc"):
        assert secret not in text, secret
    assert "X-Amz-Credential=" + MASK in text


def test_a_record_without_secrets_is_left_as_it_was():
    redacting = RedactingFilter()
    redacting.add("hunter2-secret")
    entry = record("uploading part %d", 3)
    assert redacting.filter(entry) is True
    assert entry.args == (3,) and entry.msg == "uploading part %d"


def test_a_broken_record_is_passed_on_unchanged():
    entry = record("%d parts", "not a number")
    assert RedactingFilter().filter(entry) is True
    assert entry.msg == "%d parts"


def test_protect_reaches_loggers_of_the_watched_libraries_created_before_it(caplog):
    early = logging.getLogger("urllib3.connectionpool.h11t-test")
    other = logging.getLogger("someone.else.h11t-test")
    protect("sekrit-token-value")
    assert FILTER in early.filters and FILTER in logging.getLogger("botocore").filters
    assert FILTER not in other.filters
    with caplog.at_level(logging.DEBUG, logger="urllib3.connectionpool.h11t-test"):
        early.debug("header X-Token: %s", "sekrit-token-value")
    assert "sekrit-token-value" not in caplog.text and MASK in caplog.text
