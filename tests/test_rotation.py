"""Retention: the policy engine (property-based), rotate_backups and delete_older_than."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import grandfatherson
import pytest
from grandfatherson import filters
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import bakthat
from bakthat import models
from bakthat.errors import ConfigError, LockedError, PartialFailure, StorageError
from bakthat.rotation import (
    UNITS,
    Policy,
    RefusedError,
    bucket_key,
    bucket_label,
    delete_older_than,
    name_lock,
    parse_interval,
    plan_age,
    plan_rotation,
    rotate_backups,
)
from bakthat.utils import _interval_string_to_seconds
from tests.conftest import ROOT

UTC = timezone.utc
DAY = 86400
# 2026-11-22 12:00:00 UTC, a Sunday
NOW = int(datetime(2026, 11, 22, 12, 0, tzinfo=UTC).timestamp())
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Row:
    """A stand-in for a catalog row: what the planner reads."""

    id: int
    backup_date: int
    tags: str = ""

    @property
    def stored_filename(self) -> str:
        return f"web.{self.backup_date}.{self.id}.tar.zst"


def rows_at(dates, tags=None):
    tags = tags or [""] * len(dates)
    return [Row(index + 1, int(when), tag) for index, (when, tag) in enumerate(zip(dates, tags))]


def aware(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def policy(**block) -> Policy:
    return Policy.from_mapping(block)


def kept_by(plan, rule):
    return [d.row for d in plan.decisions if any(r["rule"] == rule for r in d.rules)]


def by_units(plan):
    return {d.row.id for d in plan.decisions if any(r["rule"] in UNITS for r in d.rules)}


# -- strategies -------------------------------------------------------------------

nows = st.integers(min_value=946_684_800, max_value=2_145_916_800)  # 2000 .. 2038
offsets = st.one_of(
    st.integers(min_value=-2 * DAY, max_value=0),  # future (a little)
    st.integers(min_value=0, max_value=3 * 3600),  # minutes apart
    st.integers(min_value=0, max_value=10 * DAY),  # hours apart
    st.integers(min_value=0, max_value=900 * DAY),  # days to years apart
)
tag_choices = st.sampled_from(["", "", "", "daily", "keep", "keep daily", "keeper", "nokeep"])


@st.composite
def policies(draw, keep=None, extras=True):
    block = {unit: draw(st.integers(0, 3 if unit == "years" else 12)) for unit in UNITS}
    block["first_week_day"] = draw(st.integers(0, 6))
    block["keep"] = keep or draw(st.sampled_from(["newest", "oldest"]))
    if extras:
        block["keep_last"] = draw(st.integers(0, 5))
    assume(any(block[unit] for unit in UNITS) or block.get("keep_last"))
    return Policy.from_mapping(block)


@st.composite
def histories(draw, unique=False, pins=True):
    now = draw(nows)
    chosen = draw(st.lists(offsets, max_size=40, unique=unique))
    tags = [draw(tag_choices) if pins else "" for _ in chosen]
    return now, rows_at([now - offset for offset in chosen], tags)


# -- properties -------------------------------------------------------------------


@PROPERTY
@given(histories(), policies(), st.booleans())
def test_every_plan_keeps_the_newest_the_future_and_the_pinned(history, pol, force):
    now, rows = history
    plan = plan_rotation(rows, pol, now, force=force)
    assert sorted(d.row.id for d in plan.decisions) == sorted(r.id for r in rows)
    kept = {r.id for r in plan.to_keep}
    past = [r for r in rows if r.backup_date <= now]
    if past:
        newest = max(past, key=lambda r: (r.backup_date, r.id))
        assert newest.id in kept
    assert {r.id for r in rows if r.backup_date > now} <= kept
    if not force:
        assert {r.id for r in rows if "keep" in r.tags.split()} <= kept
    for decision in plan.decisions:
        assert decision.reasons
        assert (decision.action == "delete") == decision.reasons[0].startswith("deleted")


@PROPERTY
@given(histories(), policies(keep="newest"))
def test_keep_newest_keeps_the_newest_of_each_bucket_in_the_window_and_never_two(history, pol):
    now, rows = history
    plan = plan_rotation(rows, pol, now, force=True)
    past = [r for r in rows if r.backup_date <= now]
    for unit, number in pol.counts:
        kept = [d.row for d in plan.decisions if any(r["rule"] == unit for r in d.rules)]
        keys = [bucket_key(unit, r.backup_date, pol.first_week_day) for r in kept]
        assert len(keys) == len(set(keys)), f"a {unit} bucket keeps two backups"
        last = bucket_key(unit, now, pol.first_week_day)
        expected = {}
        for row in sorted(past, key=lambda r: (r.backup_date, r.id)):
            key = bucket_key(unit, row.backup_date, pol.first_week_day)
            if number and last - number < key <= last:
                expected[key] = row.id
        assert {r.id for r in kept} == set(expected.values())


@PROPERTY
@given(histories(unique=True, pins=False), policies(keep="oldest", extras=False))
def test_keep_oldest_equals_grandfatherson(history, pol):
    now, rows = history
    counts = dict(pol.counts)
    datetimes = {aware(r.backup_date): r for r in rows}
    gfs_keep = grandfatherson.to_keep(datetimes, firstweekday=pol.first_week_day, now=aware(now), **counts)
    gfs_delete = grandfatherson.to_delete(datetimes, firstweekday=pol.first_week_day, now=aware(now), **counts)
    plan = plan_rotation(rows, pol, now, force=True)
    kept_by_rules = by_units(plan) | {r.id for r in kept_by(plan, "future")}
    assert kept_by_rules == {datetimes[d].id for d in gfs_keep}
    # bakthat adds one guarantee on top: the newest backup is never deleted
    newest = kept_by(plan, "newest")
    assert {r.id for r in plan.to_delete} == {datetimes[d].id for d in gfs_delete} - {r.id for r in newest}


@PROPERTY
@given(histories(), policies())
def test_keep_last_keeps_the_most_recent_backups(history, pol):
    now, rows = history
    plan = plan_rotation(rows, pol, now, force=True)
    past = sorted((r for r in rows if r.backup_date <= now), key=lambda r: (r.backup_date, r.id))
    last = past[-pol.keep_last:] if pol.keep_last else []
    assert {r.id for r in kept_by(plan, "keep_last")} == {r.id for r in last}


@PROPERTY
@given(histories(), policies())
def test_a_plan_is_refused_exactly_when_its_rules_keep_nothing_and_it_would_delete(history, pol):
    now, rows = history
    plan = plan_rotation(rows, pol, now)
    by_rules = by_units(plan) | {r.id for r in kept_by(plan, "keep_last")} | {r.id for r in kept_by(plan, "pinned")}
    assert bool(plan.refused) == (not by_rules and bool(plan.to_delete))


@PROPERTY
@given(histories(), st.integers(1, 800 * DAY), st.booleans())
def test_delete_older_than_deletes_exactly_the_old_unprotected_backups(history, seconds, force):
    now, rows = history
    plan = plan_age(rows, seconds, now, force=force)
    cutoff = now - seconds
    past = [r for r in rows if r.backup_date <= now]
    newest = max(past, key=lambda r: (r.backup_date, r.id)).id if past else None
    expected = {
        r.id for r in rows
        if r.backup_date < cutoff and r.id != newest and (force or "keep" not in r.tags.split())
    }
    assert {r.id for r in plan.to_delete} == expected


@PROPERTY
@given(st.integers(-10**10, 10**10), st.integers(0, 6))
def test_week_buckets_match_grandfatherson_weeks(timestamp, first_week_day):
    assume(-62_000_000_000 < timestamp < 253_000_000_000)
    moment = aware(timestamp)
    start = filters.Weeks.mask(moment, firstweekday=first_week_day)
    key = bucket_key("weeks", timestamp, first_week_day)
    assert bucket_label("weeks", key, first_week_day) == start.strftime("%Y-%m-%d")
    assert bucket_key("weeks", int(start.timestamp()), first_week_day) == key
    assert bucket_key("weeks", int(start.timestamp()) - 1, first_week_day) == key - 1


# -- examples -----------------------------------------------------------------------


def test_issue_28_hourly_backups_keep_the_latest_of_each_day_by_default():
    now = int(datetime(2026, 11, 22, 23, 30, tzinfo=UTC).timestamp())
    start = int(datetime(2026, 11, 20, 0, 0, tzinfo=UTC).timestamp())
    rows = rows_at(range(start, now, 3600))
    newest_mode = plan_rotation(rows, policy(days=2), now)
    assert [aware(r.backup_date).strftime("%d %H") for r in newest_mode.to_keep] == ["22 23", "21 23"]
    oldest_mode = plan_rotation(rows, policy(days=2, keep="oldest"), now)
    # 0.6 kept the first of each day and deleted the backup just taken; bakthat keeps it anyway
    assert [aware(r.backup_date).strftime("%d %H") for r in oldest_mode.to_keep] == ["22 23", "22 00", "21 00"]
    assert oldest_mode.decision(oldest_mode.to_keep[0]).reasons == ["kept as newest"]


def test_the_grandfatherson_documentation_example_in_keep_oldest_mode():
    days = [date(1999, 1, 1) + timedelta(days=i) for i in range(365)]
    rows = rows_at([int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) for d in days])
    now = int(datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())
    plan = plan_rotation(rows, policy(days=7, weeks=4, months=3, first_week_day=5, keep="oldest"), now)
    expected = grandfatherson.dates_to_keep(days, days=7, weeks=4, months=3, firstweekday=5, now=date(1999, 12, 31))
    assert {aware(r.backup_date).date() for r in plan.to_keep} == expected
    assert len(expected) == 13


def test_reasons_name_the_unit_and_the_bucket():
    rows = rows_at([NOW - 2 * DAY, NOW - 2 * DAY + 60, NOW - 40 * DAY, NOW - 1000, NOW + 3600], ["", "", "", "keep", ""])
    plan = plan_rotation(rows, policy(days=3, months=1), NOW)
    reasons = {d.row.id: d.reasons for d in plan.decisions}
    assert reasons[2] == ["kept by days bucket 2026-11-20"]
    # In two windows, but another backup was kept in each bucket: the reason says so.
    assert reasons[1] == ["deleted: not the newest of month bucket 2026-11; not the newest of day bucket 2026-11-20"]
    assert reasons[3] == ["deleted: outside every window"]
    assert reasons[4] == [
        "kept by months bucket 2026-11", "kept by days bucket 2026-11-22", "pinned (tag 'keep')", "kept as newest"
    ]
    assert reasons[5] == ["kept: dated in the future (2026-11-22T13:00:00Z is after now)"]
    assert [r.id for r in plan.to_delete] == [3, 1]  # oldest first
    text = plan.explain()
    assert "delete" in text and "kept by days bucket 2026-11-20" in text


def test_a_backup_in_a_window_that_kept_another_one_says_so():
    nov_14 = int(datetime(2026, 11, 14, 3, 0, tzinfo=UTC).timestamp())
    rows = rows_at([nov_14, nov_14 + 3600, nov_14 + 7200, NOW - 60])
    newest = plan_rotation(rows, policy(days=10), NOW)
    reasons = {d.row.id: d.reasons for d in newest.decisions}
    assert reasons[1] == reasons[2] == ["deleted: not the newest of day bucket 2026-11-14"]
    assert reasons[3] == ["kept by days bucket 2026-11-14"]
    oldest = plan_rotation(rows, policy(days=10, keep="oldest"), NOW)
    assert {d.row.id: d.reasons for d in oldest.decisions}[3] == ["deleted: not the oldest of day bucket 2026-11-14"]
    outside = plan_rotation(rows, policy(days=2), NOW)
    assert {d.row.id: d.reasons for d in outside.decisions}[1] == ["deleted: outside every window"]


def test_week_and_time_of_day_bucket_labels():
    sunday = NOW
    assert bucket_label("weeks", bucket_key("weeks", sunday, 5), 5) == "2026-11-21"  # Saturday
    assert bucket_label("weeks", bucket_key("weeks", sunday, 0), 0) == "2026-11-16"  # Monday
    assert bucket_label("weeks", bucket_key("weeks", sunday, 6), 6) == "2026-11-22"  # Sunday
    assert bucket_label("hours", bucket_key("hours", sunday + 59 * 60)) == "2026-11-22T12:00Z"
    assert bucket_label("minutes", bucket_key("minutes", sunday + 61)) == "2026-11-22T12:01Z"
    assert bucket_label("seconds", bucket_key("seconds", sunday + 61)) == "2026-11-22T12:01:01Z"
    assert bucket_label("years", bucket_key("years", sunday)) == "2026"


def test_force_overrides_pins_but_never_the_newest():
    rows = rows_at([NOW - 100 * DAY, NOW - 90 * DAY], ["keep", "keep"])
    assert plan_rotation(rows, policy(days=1), NOW).to_delete == []
    forced = plan_rotation(rows, policy(days=1), NOW, force=True)
    assert [r.id for r in forced.to_delete] == [1]
    assert forced.decision(rows[0]).reasons == ["deleted: outside every window", "pin tag 'keep' overridden by force"]


def test_a_policy_that_keeps_nothing_is_refused_unless_forced():
    rows = rows_at([NOW - 100 * DAY, NOW - 90 * DAY, NOW - 80 * DAY])
    plan = plan_rotation(rows, policy(days=7), NOW)
    assert plan.refused and "no backup of" in plan.refused and "days=7" in plan.refused
    forced = plan_rotation(rows, policy(days=7), NOW, force=True)
    assert not forced.refused and [r.id for r in forced.to_delete] == [1, 2]


def test_a_lone_backup_is_never_refused_or_deleted():
    plan = plan_rotation(rows_at([NOW - 100 * DAY]), policy(days=1), NOW)
    assert not plan.refused and plan.to_delete == [] and plan.to_keep[0].id == 1


def test_pin_tag_is_configurable_and_matches_whole_tags():
    rows = rows_at([NOW - 100 * DAY, NOW - 99 * DAY, NOW - 98 * DAY, NOW], ["forever", "keeper", "keep", ""])
    plan = plan_rotation(rows, policy(days=1, pin_tag="forever"), NOW)
    assert [r.id for r in plan.to_delete] == [2, 3]
    plan = plan_rotation(rows, policy(days=1), NOW)
    assert [r.id for r in plan.to_delete] == [1, 2]
    assert [r.id for r in plan_rotation(rows, policy(days=1, pin_tag=None), NOW).to_delete] == [1, 2, 3]


def test_now_must_be_aware_and_may_be_a_datetime_or_seconds():
    rows = rows_at([NOW - 5 * DAY, NOW - DAY])
    with pytest.raises(ConfigError, match="timezone-aware"):
        plan_rotation(rows, policy(days=2), datetime(2026, 11, 22, 12))
    assert plan_rotation(rows, policy(days=2), aware(NOW)).to_dict() == plan_rotation(rows, policy(days=2), NOW).to_dict()
    in_paris = aware(NOW).astimezone(timezone(timedelta(hours=1)))
    assert plan_rotation(rows, policy(days=2), in_paris).now == NOW


def test_the_plan_json_is_stable():
    plan = plan_rotation(rows_at([NOW - DAY, NOW]), policy(days=7), NOW)
    data = plan.to_dict()
    assert list(data) == [
        "action", "name", "destination", "profile", "now", "now_utc", "dry_run", "force", "policy",
        "refused", "backups", "summary", "deleted", "failed",
    ]
    assert data["policy"] == {
        "years": 0, "months": 0, "weeks": 0, "days": 7, "hours": 0, "minutes": 0, "seconds": 0,
        "first_week_day": 5, "keep": "newest", "keep_last": 0, "pin_tag": "keep",
    }
    assert list(data["backups"][0]) == [
        "stored_filename", "backup_date", "backup_date_utc", "tags", "decision", "reasons", "rules"
    ]
    assert data["backups"][0]["rules"] == [{"rule": "days", "bucket": "2026-11-22"}, {"rule": "newest"}]


# -- policies and intervals -----------------------------------------------------------


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


# -- the API on a real catalog and store ------------------------------------------------


def make_history(name, dates, tags=None, objects=True, profile="default", conf=None, destination=None):
    """Create catalog rows (and small stored objects) for ``name`` at the given dates."""
    from bakthat.core import _context
    from bakthat.manifest import SUFFIX as MANIFEST_SUFFIX
    from bakthat.utils import utc_stamp

    ctx = _context(destination, profile, None, conf)
    rows = []
    for index, when in enumerate(dates):
        stored = f"{name}.{utc_stamp(int(when))}.tar.zst"
        if objects:
            ctx.backend.put(stored, b"archive of " + stored.encode())
            ctx.backend.put(stored + MANIFEST_SUFFIX, b"{}")
        rows.append(models.Backups.create(
            backend=ctx.destination, backend_hash=ctx.backend.backend_hash, filename=name,
            stored_filename=stored, backup_date=int(when), last_updated=int(when), size=10,
            tags=(tags[index] if tags else ""), profile=profile, metadata={},
        ))
    return rows


def state(home):
    """Everything a rotation may change: the store's files and every catalog row."""
    store = sorted(p.relative_to(home).as_posix() for p in (home / ".bakthat_store").rglob("*"))
    catalog = [row.to_dict() for row in models.Backups.select().order_by(models.Backups.id)]
    return store, catalog


def live_names(name=None):
    return sorted(r.stored_filename for r in models.Backups.search(name=name))


@pytest.fixture
def messages():
    """Collect the ``bakthat`` logger's messages whatever its propagation (the CLI turns it off)."""
    import logging

    collected = []

    class Collect(logging.Handler):
        def emit(self, record):
            collected.append(record.getMessage())

    handler = Collect(logging.DEBUG)
    logger = logging.getLogger("bakthat")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield collected
    logger.removeHandler(handler)
    logger.setLevel(level)


def write_config(home, text):
    (home / ".bakthat.yml").write_text(textwrap.dedent(text))


DAILY = [NOW - k * DAY for k in range(20)]


def test_rotate_backups_deletes_what_the_plan_says_and_returns_the_rows(home):
    write_config(home, "default:\n  rotation: {days: 3, weeks: 2}\n")
    rows = make_history("web", DAILY)
    deleted = rotate_backups("web", now=NOW)
    plan = deleted.plan
    assert [r.id for r in deleted] == [r.id for r in plan.to_delete]
    assert isinstance(deleted, list) and all(isinstance(r, models.Backups) for r in deleted)
    # days: Nov 22, 21, 20; weeks (from Saturday): Nov 21 week -> Nov 22 (newest), Nov 14 week -> Nov 20
    kept = sorted(aware(r.backup_date).strftime("%m-%d") for r in models.Backups.search(name="web"))
    assert kept == ["11-20", "11-21", "11-22"]
    for row in deleted:
        stored = models.Backups.get_by_id(row.id)
        assert stored.is_deleted and stored.state == "deleted"
        assert not (home / ".bakthat_store" / row.stored_filename).exists()
        assert not (home / ".bakthat_store" / (row.stored_filename + ".manifest.json")).exists()
    assert len(deleted) == len(rows) - 3


def test_rotate_backups_matches_the_exact_name_in_one_destination_and_profile(home, tmp_path):
    write_config(home, f"""\
        default:
          rotation: {{keep_last: 1}}
        other:
          rotation: {{keep_last: 1}}
        elsewhere:
          local_path: {tmp_path / 'elsewhere'}
          rotation: {{keep_last: 1}}
        """)
    make_history("web", DAILY[:3])
    make_history("webapp", DAILY[:3])
    make_history("we", DAILY[:3])
    from bakthat.utils import utc_stamp

    other = make_history("web", [d - 1 for d in DAILY[:3]], profile="other")
    make_history("web", [d - 2 for d in DAILY[:3]], profile="elsewhere")
    deleted = rotate_backups("web", now=NOW)
    assert len(deleted) == 2 and {r.filename for r in deleted} == {"web"} and {r.profile for r in deleted} == {"default"}
    assert len(models.Backups.search(name="webapp")) == 3 and len(models.Backups.search(name="we")) == 3
    assert len(models.Backups.search(name="web")) == 7
    assert rotate_backups("web", profile="other", now=NOW)[0].id == other[-1].id
    assert len(rotate_backups("web", profile="elsewhere", now=NOW)) == 2
    assert [name.split(".")[1] for name in live_names("web")] == [utc_stamp(DAILY[0] - k) for k in (2, 1, 0)]


def test_no_rotation_block_is_a_config_error_that_says_what_to_add(home):
    make_history("web", DAILY[:3])
    with pytest.raises(ConfigError, match=r"no rotation policy in profile 'default' .*add a 'rotation:' block"):
        rotate_backups("web")
    assert len(live_names("web")) == 3


def test_the_rotation_keyword_replaces_the_profile_policy(home):
    make_history("web", DAILY[:5])
    assert len(rotate_backups("web", rotation={"keep_last": 2}, now=NOW)) == 3


def test_the_0_6_day_keywords_are_ignored_with_a_warning(home, messages):
    write_config(home, "default:\n  rotation: {keep_last: 4}\n")
    make_history("web", DAILY[:5])
    assert len(rotate_backups("web", days=1, now=NOW)) == 1
    assert any("ignores days=" in message for message in messages)


def test_a_dry_run_changes_neither_storage_nor_catalog_and_its_events_say_it_is_one(home):
    from bakthat.eventing import current_session

    write_config(home, "default:\n  rotation: {days: 2}\n")
    make_history("web", DAILY)
    fired = []
    bakthat.events.before_rotate_backups += lambda session_id: fired.append(("before", current_session().dry_run))
    bakthat.events.on_rotate_backups += lambda session_id, result: fired.append(("on", result.dry_run))
    bakthat.events.before_delete_older_than += lambda session_id: fired.append(("before", current_session().dry_run))
    before = state(home)
    would = rotate_backups("web", dry_run=True, now=NOW)
    assert len(would) == len(DAILY) - 2 and would.plan.dry_run
    assert state(home) == before
    would_age = delete_older_than("web", "3D", dry_run=True, now=NOW)
    assert len(would_age) == len(DAILY) - 4
    assert state(home) == before
    assert fired == [("before", True), ("on", True), ("before", True)]
    assert [r.id for r in rotate_backups("web", now=NOW)] == [r.id for r in would]
    assert fired[-2:] == [("before", False), ("on", False)]


def test_events_get_the_session_and_the_deleted_rows(home):
    write_config(home, "default:\n  rotation: {keep_last: 2}\n")
    make_history("web", DAILY[:5])
    seen = []
    bakthat.events.before_rotate_backups += lambda session_id: seen.append(("before_rotate", session_id))
    bakthat.events.on_rotate_backups += lambda session_id, result: seen.append(("on_rotate", session_id, list(result)))
    bakthat.events.before_delete_older_than += lambda session_id: seen.append(("before_dot", session_id))
    bakthat.events.on_delete_older_than += lambda session_id, result: seen.append(("on_dot", session_id, list(result)))
    deleted = rotate_backups("web", now=NOW)
    assert seen[0][0] == "before_rotate" and seen[1][:2] == ("on_rotate", seen[0][1])
    assert [r.id for r in seen[1][2]] == [r.id for r in deleted] and len(deleted) == 3
    older = delete_older_than("web", "12h", now=NOW)
    assert seen[2][0] == "before_dot" and seen[3][:2] == ("on_dot", seen[2][1])
    assert [r.id for r in seen[3][2]] == [r.id for r in older] and len(older) == 1


def test_a_failure_fires_on_failure_not_on(home):
    make_history("web", DAILY[:3])
    failures = []
    bakthat.events.on_failure += lambda session_id, action, exc: failures.append((action, type(exc)))
    bakthat.events.on_rotate_backups += lambda session_id, result: failures.append("on")
    with pytest.raises(ConfigError):
        rotate_backups("web")
    assert failures == [("rotate_backups", ConfigError)]


def test_a_refused_policy_deletes_nothing_and_force_keeps_only_the_newest(home):
    write_config(home, "default:\n  rotation: {days: 7}\n")
    make_history("web", [NOW - 100 * DAY, NOW - 90 * DAY, NOW - 80 * DAY])
    before = state(home)
    with pytest.raises(RefusedError, match="would delete all 3 backups but the newest") as raised:
        rotate_backups("web", now=NOW)
    assert isinstance(raised.value, ConfigError) and raised.value.exit_code == 2
    assert raised.value.plan.refused
    assert state(home) == before
    assert len(rotate_backups("web", now=NOW, force=True)) == 2
    assert len(live_names("web")) == 1


def test_pinned_backups_survive_rotation_and_age_unless_forced(home):
    write_config(home, "default:\n  rotation: {keep_last: 1}\n")
    make_history("web", DAILY[:4], tags=["", "keep daily", "", "keep"])
    assert {r.backup_date for r in rotate_backups("web", now=NOW)} == {DAILY[2]}
    assert delete_older_than("web", "1h", now=NOW) == []
    assert len(delete_older_than("web", "1h", now=NOW, force=True)) == 2
    assert live_names("web") == [models.Backups.get(models.Backups.backup_date == DAILY[0]).stored_filename]


def test_delete_older_than_keeps_the_newest_and_the_recent(home):
    write_config(home, "default: {}\n")
    make_history("web", DAILY[:10])
    make_history("webapp", DAILY[:10])
    assert delete_older_than("web", "1Y", now=NOW) == []
    deleted = delete_older_than("web", "3D", now=NOW)
    assert sorted(r.backup_date for r in deleted) == sorted(DAILY[4:10])
    assert len(live_names("web")) == 4 and len(live_names("webapp")) == 10
    with pytest.raises(RefusedError, match="every backup of 'webapp' is older than 1h"):
        delete_older_than("webapp", "1h", now=NOW + DAY)
    assert len(delete_older_than("webapp", "1h", now=NOW + DAY, force=True)) == 9


def test_delete_older_than_with_a_malformed_interval_deletes_nothing(home):
    make_history("web", DAILY[:3])
    with pytest.raises(ConfigError, match="bad interval '1z'"):
        delete_older_than("web", "1z")
    assert len(live_names("web")) == 3


def test_an_archive_already_gone_is_a_warning(home, messages):
    write_config(home, "default:\n  rotation: {keep_last: 1}\n")
    rows = make_history("web", DAILY[:2])
    (home / ".bakthat_store" / rows[1].stored_filename).unlink()
    assert [r.id for r in rotate_backups("web", now=NOW)] == [rows[1].id]
    assert any("already gone" in message for message in messages)


def test_failed_deletions_continue_then_raise_partial_failure_and_are_retried(home, monkeypatch):
    from bakthat.backends import local

    write_config(home, "default:\n  rotation: {keep_last: 1}\n")
    rows = make_history("web", DAILY[:5])
    broken = rows[2].stored_filename
    original = local.Backend.delete

    def flaky(self, key):
        if key == broken:
            raise StorageError("disk on fire")
        return original(self, key)

    monkeypatch.setattr(local.Backend, "delete", flaky)
    with pytest.raises(PartialFailure, match="disk on fire") as raised:
        rotate_backups("web", now=NOW)
    assert raised.value.exit_code == 3
    assert broken in str(raised.value)
    assert sorted(r.id for r in raised.value.deleted) == sorted(r.id for r in rows[1:5] if r.stored_filename != broken)
    stuck = models.Backups.get_by_id(rows[2].id)
    assert stuck.is_deleted and stuck.state == "deleting"
    assert (home / ".bakthat_store" / broken).exists()
    monkeypatch.setattr(local.Backend, "delete", original)
    rehearsal = rotate_backups("web", now=NOW, dry_run=True)
    assert [r.id for r in rehearsal] == [rows[2].id] and rehearsal.plan.to_retry[0].id == rows[2].id
    assert models.Backups.get_by_id(rows[2].id).state == "deleting"
    retried = rotate_backups("web", now=NOW)
    assert [r.id for r in retried] == [rows[2].id]
    assert retried.plan.decision(retried[0]).action == "retry"
    assert models.Backups.get_by_id(rows[2].id).state == "deleted"
    assert not (home / ".bakthat_store" / broken).exists()


HOLDER = """
import sys, time
from bakthat.core import _context, delete_row
from bakthat import models
from bakthat.rotation import name_lock
ctx = _context(None, "default", None, None)
with name_lock(ctx.settings, ctx.backend.backend_hash, sys.argv[1], 5):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    for stored in sys.argv[3:]:
        delete_row(ctx, models.Backups.get(models.Backups.stored_filename == stored))
print("released", flush=True)
"""


def hold_lock(name, seconds, *delete):
    """Start a process that holds the lock of ``name``, deletes ``delete`` rows, then releases it."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, name, str(seconds), *delete],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout.readline().strip() == "locked"
    return process


def test_a_second_run_waits_for_the_lock_then_raises_locked(home):
    write_config(home, "default:\n  rotation: {keep_last: 1}\n")
    make_history("web", DAILY[:3])
    make_history("db", DAILY[:3])
    holder = hold_lock("web", 3)
    try:
        started = time.monotonic()
        with pytest.raises(LockedError, match="another bakthat process is deleting backups of 'web'") as raised:
            rotate_backups("web", now=NOW, lock_timeout=0.5)
        assert 0.4 < time.monotonic() - started < 2.5
        assert raised.value.exit_code == 12 and "pid" in str(raised.value)
        assert len(rotate_backups("db", now=NOW, lock_timeout=0.5)) == 2  # another name is not blocked
    finally:
        holder.wait(timeout=30)
    assert len(live_names("web")) == 3
    assert len(rotate_backups("web", now=NOW, lock_timeout=0.5)) == 2


def test_rows_are_read_after_the_lock_so_a_concurrent_deletion_is_seen(home):
    write_config(home, "default:\n  rotation: {keep_last: 3}\n")
    rows = make_history("web", DAILY[:10])
    # While it holds the lock, another process deletes the 2nd and 3rd newest backups.
    holder = hold_lock("web", 0.5, rows[1].stored_filename, rows[2].stored_filename)
    try:
        deleted = rotate_backups("web", now=NOW, lock_timeout=30)
    finally:
        holder.wait(timeout=30)
    assert {rows[1].id, rows[2].id}.isdisjoint(r.id for r in deleted)
    assert len(live_names("web")) == 3  # the policy's three, not one
    assert len(deleted) == 5


def test_an_unwritable_lock_directory_is_a_clear_error(tmp_path):
    from bakthat.errors import BakthatError

    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(BakthatError, match="cannot open the lock file"):
        with name_lock({"database": str(tmp_path / "file" / "c.sqlite")}, "h", "web", 0):
            pass


def test_the_lock_file_lives_beside_the_catalog(home, tmp_path):
    from bakthat.rotation import lock_directory

    assert lock_directory({"database": "~/.bakthat.sqlite"}) == home / ".bakthat.locks"
    assert lock_directory({"database": str(tmp_path / "x" / "c.sqlite")}) == tmp_path / "x" / ".bakthat.locks"
    assert lock_directory({"database_url": "postgresql://h/db"}) == home / ".bakthat.locks"
    with name_lock({"database": str(tmp_path / "c.sqlite")}, "h", "web", 1) as path:
        assert path.parent == tmp_path / ".bakthat.locks" and "pid" in path.read_text()
        with pytest.raises(LockedError):
            with name_lock({"database": str(tmp_path / "c.sqlite")}, "h", "web", 0):
                pass
        with name_lock({"database": str(tmp_path / "c.sqlite")}, "h", "db", 0):
            pass


# -- chains: the bases of kept backups are kept ---------------------------------------------


def test_delete_older_than_keeps_the_chain_of_the_backup_it_keeps_and_deletes_an_older_chain(tree, tmp_path):
    rows = [bakthat.backup(str(tree), password="", level="full")]
    (tree / "one.txt").write_text("1")
    rows.append(bakthat.backup(str(tree), password="", level="incr"))
    rows.append(bakthat.backup(str(tree), password="", level="full"))
    (tree / "two.txt").write_text("2")
    rows.append(bakthat.backup(str(tree), password="", level="incr"))
    (tree / "three.txt").write_text("3")
    rows.append(bakthat.backup(str(tree), password="", level="incr"))
    # Everything is older than the interval (force: the newest alone is kept), and the
    # newest's chain with it.
    deleted = bakthat.delete_older_than("mydir", "5s", now=rows[-1].backup_date + 10, force=True)
    assert sorted(row.stored_filename for row in deleted) == sorted(row.stored_filename for row in rows[:2])
    plan = deleted.plan
    from bakthat.levels import utc_iso

    assert plan.decision(rows[3]).reasons == ["kept: base of incremental of " + utc_iso(rows[4].backup_date)]
    assert plan.decision(rows[2]).rules == [{"rule": "base", "of": rows[4].stored_filename, "dependents": 1}]
    bakthat.restore("mydir", target=tmp_path / "out", password="")
    assert (tmp_path / "out" / "mydir" / "three.txt").read_text() == "3"
    assert (tmp_path / "out" / "mydir" / "two.txt").read_text() == "2"


def test_a_rotation_whose_only_deletions_are_bases_is_not_refused(tree):
    rows = [bakthat.backup(str(tree), password="", level="full")]
    (tree / "one.txt").write_text("1")
    rows.append(bakthat.backup(str(tree), password="", level="incr"))
    kept = bakthat.delete_older_than("mydir", "1s", now=rows[-1].backup_date + 3600)
    assert kept == [] and [d.action for d in kept.plan.decisions] == ["keep", "keep"]
