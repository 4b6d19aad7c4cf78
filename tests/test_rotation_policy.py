"""Retention policies and their calendar (bakthat.rotation_policy): a rotation block
parsed and checked, UTC buckets (weeks as grandfatherson counts them), intervals, day
names.  The plans made with them are tested in tests/test_rotation_plan.py."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from grandfatherson import filters
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bakthat.errors import ConfigError
from bakthat.rotation_policy import (
    Policy,
    bucket_key,
    bucket_label,
    parse_interval,
    utc_iso,
    week_day_named,
)
from bakthat.utils import _interval_string_to_seconds

UTC = timezone.utc
# 2026-11-22 12:00:00 UTC, a Sunday
NOW = int(datetime(2026, 11, 22, 12, 0, tzinfo=UTC).timestamp())


def aware(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


# -- buckets ----------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.integers(-10**10, 10**10), st.integers(0, 6))
def test_week_buckets_match_grandfatherson_weeks(timestamp, first_week_day):
    assume(-62_000_000_000 < timestamp < 253_000_000_000)
    moment = aware(timestamp)
    start = filters.Weeks.mask(moment, firstweekday=first_week_day)
    key = bucket_key("weeks", timestamp, first_week_day)
    assert bucket_label("weeks", key, first_week_day) == start.strftime("%Y-%m-%d")
    assert bucket_key("weeks", int(start.timestamp()), first_week_day) == key
    assert bucket_key("weeks", int(start.timestamp()) - 1, first_week_day) == key - 1


def test_week_and_time_of_day_bucket_labels():
    sunday = NOW
    assert bucket_label("weeks", bucket_key("weeks", sunday, 5), 5) == "2026-11-21"  # Saturday
    assert bucket_label("weeks", bucket_key("weeks", sunday, 0), 0) == "2026-11-16"  # Monday
    assert bucket_label("weeks", bucket_key("weeks", sunday, 6), 6) == "2026-11-22"  # Sunday
    assert bucket_label("hours", bucket_key("hours", sunday + 59 * 60)) == "2026-11-22T12:00Z"
    assert bucket_label("minutes", bucket_key("minutes", sunday + 61)) == "2026-11-22T12:01Z"
    assert bucket_label("seconds", bucket_key("seconds", sunday + 61)) == "2026-11-22T12:01:01Z"
    assert bucket_label("years", bucket_key("years", sunday)) == "2026"


# -- policies, intervals, names ----------------------------------------------------------


def test_the_0_6_interval_strings():
    assert _interval_string_to_seconds("2D1h") == 2 * 86400 + 3600
    assert _interval_string_to_seconds("3M") == 3 * 30 * 86400
    assert _interval_string_to_seconds("3M2D8h20m5s") == 3 * 30 * 86400 + 2 * 86400 + 8 * 3600 + 20 * 60 + 5
    assert _interval_string_to_seconds("1Y1W") == 365 * 86400 + 7 * 86400
    with pytest.raises(ValueError):
        _interval_string_to_seconds("1z")
    assert parse_interval("2D1h") == 2 * 86400 + 3600


@pytest.mark.parametrize("bad", ["1z", "", "0D", "D", "3d", "1.5D", "-1D", "2D 1h", None])
def test_a_malformed_interval_is_a_config_error_naming_it(bad):
    with pytest.raises(ConfigError, match="bad interval") as raised:
        parse_interval(bad)
    assert repr(bad) in str(raised.value)


def test_policy_keys_as_0_6_reads_them():
    block = {"days": "7", "weeks": 4, "months": 3, "years": 1, "hours": 0, "minutes": 0, "seconds": 0, "first_week_day": 0}
    pol = Policy.from_mapping(block)
    assert dict(pol.counts) == {"years": 1, "months": 3, "weeks": 4, "days": 7, "hours": 0, "minutes": 0, "seconds": 0}
    assert pol.first_week_day == 0 and pol.keep == "newest" and pol.pin_tag == "keep"
    assert Policy.from_mapping({"days": 1}).first_week_day == 5
    assert Policy.from_mapping({"days": 1, "first_week_day": "Sunday"}).first_week_day == 6


@pytest.mark.parametrize(
    "block, message",
    [
        ({"days": -1}, "days must be a whole number"),
        ({"days": True}, "days must be a whole number"),
        ({"days": 1.5}, "days must be a whole number"),
        ({"dayz": 7}, "unknown key(s) dayz"),
        ({"days": 7, "first_week_day": 7}, "first_week_day must be 0"),
        ({"days": 7, "first_week_day": "someday"}, "first_week_day must be 0"),
        ({"days": 7, "keep": "middle"}, "keep must be 'newest' or 'oldest'"),
        ({"days": 7, "pin_tag": "two words"}, "pin_tag must be one tag"),
        ({"days": 0, "weeks": 0, "months": 0}, "keeps nothing"),
        ({}, "keeps nothing"),
        ([7, 4, 3], "must be a mapping"),
    ],
)
def test_a_bad_policy_is_a_config_error(block, message):
    with pytest.raises(ConfigError) as raised:
        Policy.from_mapping(block)
    assert message in str(raised.value)


def test_week_days_are_named_by_three_letters_or_more():
    assert [week_day_named(day) for day in ("Monday", "sat", " SUNDAY ", "thu", "tues")] == [0, 5, 6, 3, 1]
    assert [week_day_named(day) for day in ("mo", "s", "", "someday", "frid4y")] == [None] * 5


def test_utc_iso_formats_a_unix_time_and_shows_the_number_when_out_of_range():
    assert utc_iso(NOW) == "2026-11-22T12:00:00Z"
    assert utc_iso(10**20) == str(10**20)


def test_a_policy_as_a_dict_and_as_one_line():
    pol = Policy.from_mapping({"days": 7, "weeks": 4, "keep_last": 2, "first_week_day": "monday", "pin_tag": None})
    assert pol.to_dict() == {"years": 0, "months": 0, "weeks": 4, "days": 7, "hours": 0, "minutes": 0, "seconds": 0,
                             "first_week_day": 0, "keep": "newest", "keep_last": 2, "pin_tag": None}
    assert pol.describe() == "weeks=4 days=7 (weeks start on Monday) keep_last=2 keep=newest no pin tag"
    assert Policy.from_mapping({"days": 1}).describe() == "days=1 keep=newest pin_tag=keep"
    assert pol.count("weeks") == 4 and pol.count("years") == 0


@pytest.mark.parametrize("interval, seconds", [(3600, 3600), (90.9, 90), (" 1W ", 7 * 86400)])
def test_an_interval_may_be_seconds_or_a_0_6_string(interval, seconds):
    assert parse_interval(interval) == seconds


@pytest.mark.parametrize("interval", [0, -5, True, [1]])
def test_an_interval_that_is_no_positive_duration_is_refused(interval):
    with pytest.raises(ConfigError, match="bad interval"):
        parse_interval(interval)
