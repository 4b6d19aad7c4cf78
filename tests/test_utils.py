"""bakthat.utils: intervals, sizes, stamps, local times and strict keywords."""

from __future__ import annotations

import logging
import time

import pytest

from bakthat.utils import (
    _interval_string_to_seconds,
    human_size,
    local_time,
    strict_keywords,
    unexpected_keyword,
    utc_stamp,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("", 0),
        ("5s", 5),
        ("20m", 1200),
        ("8h", 8 * 3600),
        ("2D", 2 * 86400),
        ("1W", 7 * 86400),
        ("3M", 90 * 86400),
        ("1Y", 365 * 86400),
        ("3M2D8h20m5s", 90 * 86400 + 2 * 86400 + 8 * 3600 + 20 * 60 + 5),
        ("1h1h", 7200),
    ],
)
def test_an_interval_is_the_sum_of_its_tokens(text, seconds):
    assert _interval_string_to_seconds(text) == seconds


@pytest.mark.parametrize("text", ["3", "3d", "M", "0D", "3M 2D", "-1D", "2D!", "1.5h", " 1D"])
def test_a_malformed_interval_is_a_value_error_naming_it(text):
    with pytest.raises(ValueError, match="Bad interval format for " + repr(text).replace("\\", "\\\\").replace(".", r"\.")):
        _interval_string_to_seconds(text)


@pytest.mark.parametrize(
    ("size", "shown"),
    [(None, "-"), (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
     (5 << 20, "5.0 MiB"), (3 << 30, "3.0 GiB"), (2 << 40, "2.0 TiB"), (4096 << 40, "4096.0 TiB")],
)
def test_a_size_is_shown_in_binary_units(size, shown):
    assert human_size(size) == shown


def test_the_utc_stamp_is_the_stored_name_shape_in_utc(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert utc_stamp(1_600_000_000) == "20200913122640"
        assert utc_stamp(0) == "19700101000000"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_a_local_time_shows_the_zone_and_a_time_no_calendar_can_show_is_the_number(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert local_time(1_600_000_000) == "2020-09-13 12:26:40 UTC"
        assert local_time(10**15) == str(10**15)  # year 31 million: a damaged row
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_strict_keywords_refuse_a_typo_before_the_function_runs_and_suggest_the_name():
    calls = []

    @strict_keywords()
    def backup(source, password=None, destination=None):
        calls.append((source, password, destination))

    with pytest.raises(TypeError, match=r"backup\(\) got an unexpected keyword argument 'passwrod' \(did you mean 'password'\?\)"):
        backup("x", passwrod="pw")
    with pytest.raises(TypeError, match="'zzz'$"):
        backup("x", zzz=1)
    assert calls == []
    backup("x", password="pw")
    assert calls == [("x", "pw", None)]


def test_strict_keywords_drop_an_ignored_0_6_keyword_with_a_warning(caplog):
    @strict_keywords({"s3_kwargs": "boto2 options have no meaning now", "key": "boto2 options have no meaning now"})
    def restore(name, target=None):
        return (name, target)

    with caplog.at_level(logging.WARNING, logger="bakthat"):
        assert restore("x", s3_kwargs={}, key="k", target="t") == ("x", "t")
    assert caplog.messages == ["restore ignores key=, s3_kwargs= (as bakthat 0.6 did): boto2 options have no meaning now"]
    assert restore.__bakthat_ignored__ == {"s3_kwargs": "boto2 options have no meaning now", "key": "boto2 options have no meaning now"}


def test_the_unexpected_keyword_message_leaves_out_self_and_far_names():
    assert unexpected_keyword("f", "slf", ["self", "shelf"]) == "f() got an unexpected keyword argument 'slf' (did you mean 'shelf'?)"
    assert unexpected_keyword("f", "qqqq", ["alpha"]) == "f() got an unexpected keyword argument 'qqqq'"
