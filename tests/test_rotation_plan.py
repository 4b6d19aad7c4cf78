"""Retention planning (bakthat.rotation_plan): plans of rotate and delete-older-than,
property-based against grandfatherson, their reasons and JSON.  Nothing here touches a
catalog or a store; the policies and buckets are tested in tests/test_rotation_policy.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import grandfatherson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bakthat.errors import ConfigError
from bakthat.rotation_plan import RefusedError, plan_age, plan_rotation
from bakthat.rotation_policy import UNITS, Policy, bucket_key

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


def test_a_refused_plan_is_a_config_error_that_carries_the_plan():
    plan = plan_rotation(rows_at([NOW - 100 * DAY, NOW - 90 * DAY, NOW - 80 * DAY]), policy(days=7), NOW)
    error = RefusedError(plan.refused, plan)
    assert isinstance(error, ConfigError) and error.exit_code == 2 and error.plan is plan


@pytest.mark.parametrize("now", ["2026-11-22", True, None.__class__])
def test_now_that_is_not_a_time_is_a_config_error_naming_it(now):
    with pytest.raises(ConfigError, match="now= must be a Unix time or an aware datetime"):
        plan_rotation(rows_at([NOW]), policy(days=2), now)
