"""Tests for bakthat.levels: chains, the level of ``level: auto``, dates for ``--at`` and
what retention keeps for chains (property-based over random histories with levels)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bakthat.errors import ConfigError, IntegrityError, NotFoundError
from bakthat.levels import BrokenChainError, History, Link, keep_bases, parse_at
from bakthat.rotation import plan_age, plan_rotation
from tests.conftest import run_cli
from tests.test_rotation_plan import DAY, NOW, PROPERTY, UTC, policies


@dataclass
class Row:
    """A stand-in for a catalog row with a level and a base."""

    id: int
    backup_date: int
    level: str = "full"
    base: str | None = None
    tags: str = ""
    metadata: dict = field(default_factory=dict)

    @property
    def stored_filename(self) -> str:
        return f"www.{self.id:03d}.tar.zst"


def history_of(*levels: str, start: int = NOW - 10 * DAY, step: int = DAY) -> list[Row]:
    """Rows ``www.001 ...`` one ``step`` apart with the given levels, bases set as
    bakthat sets them (a differential on the last full, an incremental on the last)."""
    rows: list[Row] = []
    for number, level in enumerate(levels, start=1):
        base = None
        if level == "diff":
            base = next(row for row in reversed(rows) if row.level == "full").stored_filename
        elif level == "incr":
            base = rows[-1].stored_filename
        rows.append(Row(number, start + (number - 1) * step, level, base))
    return rows


def names(links) -> list[str]:
    return [link.stored_filename for link in links]


# -- links and chains ----------------------------------------------------------------------


def test_a_row_without_a_level_is_a_full_backup_and_metadata_can_carry_the_level():
    assert Link.of(Row(1, 5)) == Link("www.001.tar.zst", 5, "full", None)
    row = Row(2, 6, level=None, metadata={"level": "incr", "base": "www.001.tar.zst"})  # type: ignore[arg-type]
    assert Link.of(row) == Link("www.002.tar.zst", 6, "incr", "www.001.tar.zst")


def test_the_chain_of_each_backup_follows_bases_down_to_a_full():
    history = History(history_of("full", "incr", "incr", "diff", "incr", "full", "incr"))
    assert names(history.chain("www.003.tar.zst")) == ["www.001.tar.zst", "www.002.tar.zst", "www.003.tar.zst"]
    assert names(history.chain("www.004.tar.zst")) == ["www.001.tar.zst", "www.004.tar.zst"]
    assert names(history.chain("www.005.tar.zst")) == ["www.001.tar.zst", "www.004.tar.zst", "www.005.tar.zst"]
    assert names(history.chain("www.007.tar.zst")) == ["www.006.tar.zst", "www.007.tar.zst"]
    assert names(history.chain("www.001.tar.zst")) == ["www.001.tar.zst"]


def test_a_chain_with_a_missing_link_is_refused_naming_the_missing_backup():
    rows = history_of("full", "incr", "incr", "incr")
    history = History(row for row in rows if row.id != 2)
    with pytest.raises(BrokenChainError) as caught:
        history.chain("www.004.tar.zst")
    error = caught.value
    assert error.missing == "www.002.tar.zst" and error.backup == "www.004.tar.zst"
    assert "needs www.002.tar.zst (the base of incremental www.003.tar.zst" in str(error)
    assert "which is missing" in str(error) and isinstance(error, IntegrityError) and error.exit_code == 6


def test_a_chain_with_a_damaged_link_is_refused_naming_it():
    history = History(history_of("full", "diff", "incr"))
    with pytest.raises(BrokenChainError, match="holds differential www.002.tar.zst .* damaged \\(SHA-256") as caught:
        history.chain("www.003.tar.zst", damaged={"www.002.tar.zst": "SHA-256 mismatch"})
    assert caught.value.missing == "www.002.tar.zst"
    assert names(history.chain("www.001.tar.zst", damaged={"www.002.tar.zst": "x"})) == ["www.001.tar.zst"]


@pytest.mark.parametrize(
    "rows, why",
    [
        ([Row(1, 1), Row(3, 3, "incr", "www.001.tar.zst"), Row(2, 4, "diff", "www.003.tar.zst")],
         "base of differential www.002.tar.zst .* is incremental www.003.tar.zst .*, not a full backup"),
        ([Row(1, 1, "incr", "www.002.tar.zst"), Row(2, 2, "incr", "www.001.tar.zst")], "form a loop"),
        ([Row(1, 9), Row(2, 2, "incr", "www.001.tar.zst")], "its base full www.001.tar.zst .* is newer than"),
        ([Row(2, 2, "incr", None)], "records no base"),
        ([Row(2, 2, "weekly", None)], "unknown level 'weekly'"),
    ],
)
def test_a_malformed_chain_is_refused(rows, why):
    with pytest.raises(BrokenChainError, match=why):
        History(rows).chain(rows[-1].stored_filename)


def test_asking_for_a_backup_that_is_not_live_is_not_found():
    with pytest.raises(NotFoundError):
        History(history_of("full")).chain("www.009.tar.zst")
    with pytest.raises(ValueError, match="appears twice"):
        History([Row(1, 1), Row(1, 2)])


# -- --at ------------------------------------------------------------------------------------


def test_at_picks_the_newest_backup_at_or_before_the_date():
    rows = history_of("full", "incr", "incr", start=int(datetime(2026, 11, 20, 2, tzinfo=UTC).timestamp()))
    history = History(rows)
    assert history.at("2026-11-20").stored_filename == "www.001.tar.zst"  # the whole day
    assert history.at("2026-11-21T01:59:59Z").stored_filename == "www.001.tar.zst"
    assert history.at("2026-11-21T02:00:00Z").stored_filename == "www.002.tar.zst"  # at: included
    assert history.at("2026-11-21 03:00+01:00").stored_filename == "www.002.tar.zst"
    assert history.at("2026-11-21T02:00:00.999").stored_filename == "www.002.tar.zst"
    assert history.at(rows[2].backup_date).stored_filename == "www.003.tar.zst"
    assert history.at(str(rows[2].backup_date - 1)).stored_filename == "www.002.tar.zst"
    assert history.at(datetime(2030, 1, 1, tzinfo=UTC)).stored_filename == "www.003.tar.zst"
    with pytest.raises(NotFoundError, match="no backup at or before 2026-11-19T23:59:59Z \\(the oldest is of"):
        history.at("2026-11-19")


def test_a_date_without_an_offset_is_read_in_the_zone_given():
    plus_two = timezone(timedelta(hours=2))
    assert parse_at("2026-11-20T12:00", tz=plus_two) == parse_at("2026-11-20T10:00:00Z")
    assert parse_at("2026-11-20", tz=plus_two) == parse_at("2026-11-20T21:59:59Z")


@pytest.mark.parametrize(
    "value, why",
    [
        ("yesterday", "bad date 'yesterday': use ISO 8601"),
        ("2026-13-01", "bad date"),
        ("20261120", "ambiguous date '20261120': write it as ISO 8601 \\(2026-11-20\\)"),
        ("20261120134512", "ambiguous date .*2026-11-20T13:45:12Z"),
        (True, "bad date True"),
        (datetime(2026, 11, 20), "timezone-aware"),
        ([2026], "bad date"),
    ],
)
def test_a_bad_or_ambiguous_date_is_refused(value, why):
    with pytest.raises(ConfigError, match=why):
        parse_at(value)


def test_at_accepts_exactly_the_backup_date_that_show_json_prints(tmp_path):
    source = tmp_path / "www"
    source.mkdir()
    (source / "a").write_text("a")
    done = run_cli("backup", str(source), "--prompt", "no")
    assert done.returncode == 0, done.stderr
    shown = run_cli("show", "--json")
    assert shown.returncode == 0, shown.stderr
    [row] = json.loads(shown.stdout)
    printed = row["backup_date"]
    link = Link(row["stored_filename"], parse_at(printed))
    assert History([link]).at(printed) == link
    assert History([link]).at(json.dumps(printed)) == link  # as typed on a command line


# -- level: auto -----------------------------------------------------------------------------


def test_the_first_backup_of_a_name_is_a_full_whatever_was_asked():
    for requested in ("auto", "diff", "incr"):
        choice = History([]).choose_level(requested, now=NOW)
        assert (choice.level, choice.base) == ("full", None)
    assert "asked for, but there is no full backup" in History([]).choose_level("incr", now=NOW).reason


def test_auto_makes_incrementals_on_the_newest_backup_until_full_every_or_max_chain():
    rows = history_of("full", "incr", "incr", start=NOW - 3 * DAY)
    history = History(rows)
    choice = history.choose_level("auto", now=NOW, full_every="7D", max_chain=6)
    assert (choice.level, choice.base.stored_filename) == ("incr", "www.003.tar.zst")
    assert "incremental on top of incremental www.003.tar.zst" in choice.reason
    old = history.choose_level("auto", now=NOW + 4 * DAY, full_every="7D")
    assert old.level == "full" and "is 7D old or older" in old.reason
    long = history.choose_level("auto", now=NOW, max_chain=2)
    assert long.level == "full" and "already has 2 backup(s) after its full (max_chain: 2)" in long.reason
    assert history.choose_level("auto", now=NOW, max_chain=3).level == "incr"
    assert history.choose_level("auto", now=NOW, max_chain=0).level == "full"
    assert history.choose_level("auto", now=NOW, full_every=3 * DAY + 1).level == "incr"


def test_explicit_levels_pick_their_bases():
    history = History(history_of("full", "incr", "diff", "incr"))
    assert history.choose_level("full", now=NOW).base is None
    assert history.choose_level("diff", now=NOW).base.stored_filename == "www.001.tar.zst"
    assert history.choose_level("incr", now=NOW).base.stored_filename == "www.004.tar.zst"


def test_a_broken_chain_makes_the_next_backup_a_full_never_something_weaker():
    rows = [row for row in history_of("full", "incr", "incr") if row.id != 2]
    choice = History(rows).choose_level("incr", now=NOW)
    assert choice.level == "full" and "the chain of www.003.tar.zst is broken" in choice.reason
    damaged = History(history_of("full", "incr")).choose_level("diff", now=NOW, damaged={"www.001.tar.zst": "x"})
    assert damaged.level == "full"


@pytest.mark.parametrize(
    "keywords, why",
    [({"requested": "weekly"}, "level must be one of auto, full, diff, incr"),
     ({"full_every": "1z"}, "full_every: bad interval '1z'"),
     ({"max_chain": -1}, "max_chain must be a whole number"),
     ({"max_chain": "7"}, "max_chain must be a whole number")],
)
def test_bad_level_settings_are_configuration_errors(keywords, why):
    requested = keywords.pop("requested", "auto")
    with pytest.raises(ConfigError, match=why):
        History(history_of("full")).choose_level(requested, now=NOW, **keywords)


# -- retention ---------------------------------------------------------------------------------


def test_protection_keeps_every_base_of_a_kept_backup_with_the_reason():
    history = History(history_of("full", "incr", "incr", "diff", "incr"))
    protection = history.protect(["www.003.tar.zst", "www.005.tar.zst"])
    assert sorted(protection.reasons) == ["www.001.tar.zst", "www.002.tar.zst", "www.004.tar.zst"]
    [(text, rule)] = protection.reasons["www.004.tar.zst"]
    assert text == "kept: base of incremental of 2026-11-16T12:00:00Z"
    assert rule == {"rule": "base", "of": "www.005.tar.zst", "dependents": 1}
    [(text, _)] = protection.reasons["www.001.tar.zst"]
    assert text == "kept: in the chain of incremental of 2026-11-16T12:00:00Z (and 1 more kept backup(s))"
    assert protection.broken == {}


def test_dependents_are_what_deleting_a_backup_would_break():
    history = History(history_of("full", "incr", "diff", "incr", "full"))
    assert names(history.dependents("www.001.tar.zst")) == ["www.002.tar.zst", "www.003.tar.zst", "www.004.tar.zst"]
    assert names(history.dependents("www.002.tar.zst")) == []
    assert names(history.dependents("www.003.tar.zst")) == ["www.004.tar.zst"]


def test_rotation_keeps_the_bases_of_the_backups_its_policy_keeps():
    rows = history_of("full", "incr", "incr", "incr", "incr", "incr", "incr", start=NOW - 6 * DAY - 3600)
    plan = plan_rotation(rows, policies_block(days=2), NOW, name="www")
    assert [d.action for d in reversed(plan.decisions)] == ["delete"] * 5 + ["keep"] * 2
    protection = keep_bases(plan)
    assert [d.action for d in plan.decisions] == ["keep"] * 7
    full = plan.decision(rows[0])
    assert full.reasons == ["kept: in the chain of incremental of 2026-11-22T11:00:00Z (and 1 more kept backup(s))"]
    assert full.rules == [{"rule": "base", "of": "www.007.tar.zst", "dependents": 2}]
    assert plan.decision(rows[5]).reasons == ["kept by days bucket 2026-11-21"]  # its own rule
    assert plan.decision(rows[4]).reasons == [
        "kept: base of incremental of 2026-11-21T11:00:00Z (and 1 more kept backup(s))"
    ]
    assert protection.broken == {}


def test_rotation_deletes_a_whole_old_chain_that_nothing_kept_needs():
    rows = history_of("full", "incr", "incr", "full", "incr", start=NOW - 5 * DAY - 3600)
    plan = plan_age(rows, "2D", NOW, name="www")
    keep_bases(plan)
    assert {d.row.id: d.action for d in plan.decisions} == {1: "delete", 2: "delete", 3: "delete", 4: "keep", 5: "keep"}
    assert plan.decision(rows[3]).reasons == ["kept: base of incremental of 2026-11-21T11:00:00Z"]


def test_a_kept_backup_whose_chain_is_already_broken_is_reported():
    rows = [row for row in history_of("full", "incr", "incr") if row.id != 2]
    plan = plan_rotation(rows, policies_block(days=30), NOW, name="www")
    protection = keep_bases(plan)
    assert "www.002.tar.zst" in protection.broken["www.003.tar.zst"]


def policies_block(**block):
    from bakthat.rotation import Policy

    return Policy.from_mapping(block)


# -- properties ----------------------------------------------------------------------------------


@st.composite
def level_histories(draw, max_size=30):
    """Random histories with levels, as bakthat writes them (bases by the level rules),
    some links then lost (deleted outside retention, or never synced)."""
    levels = draw(st.lists(st.sampled_from(["full", "diff", "incr", "incr"]), min_size=1, max_size=max_size))
    gaps = draw(st.lists(st.integers(1, 3 * DAY), min_size=len(levels), max_size=len(levels)))
    rows: list[Row] = []
    when = NOW - 60 * DAY
    for number, (level, gap) in enumerate(zip(levels, gaps), start=1):
        when += gap
        fulls = [row for row in rows if row.level == "full"]
        if not fulls:
            level = "full"
        base = None if level == "full" else (fulls[-1] if level == "diff" else rows[-1]).stored_filename
        rows.append(Row(number, when, level, base))
    lost = draw(st.sets(st.sampled_from([row.id for row in rows]), max_size=3)) if draw(st.booleans()) else set()
    return [row for row in rows if row.id not in lost]


@st.composite
def protected_histories(draw):
    """A random history with levels, a random set of backups retention keeps, and the
    Protection of that set."""
    history = History(draw(level_histories()))
    keep = draw(st.sets(st.sampled_from(names(history.links)))) if history.links else set()
    return history, keep, history.protect(keep)


@PROPERTY
@given(protected_histories())
def test_the_kept_and_protected_backups_are_closed_under_depends_on(case):
    history, keep, protection = case
    closure = set(keep) | set(protection.reasons)
    for name in closure:
        try:
            chain = history.chain(name)
        except BrokenChainError:
            assert name in protection.broken and name in keep
            continue
        assert set(names(chain)) <= closure
    for name in protection.reasons:
        assert any(name in names(history.chain(kept)) for kept in keep if kept not in protection.broken)


@PROPERTY
@given(protected_histories())
def test_deleting_anything_outside_the_closure_never_breaks_a_kept_chain(case):
    history, keep, protection = case
    survivors = History(link for link in history.links
                        if link.stored_filename in keep or protection.keeps(link.stored_filename))
    for name in keep:
        if name in protection.broken:
            continue
        assert names(survivors.chain(name)) == names(history.chain(name))


@PROPERTY
@given(level_histories(), policies(), st.booleans())
def test_after_rotation_every_kept_backup_is_still_restorable(rows, policy, age):
    plan = plan_age(rows, "9D", NOW, name="www") if age else plan_rotation(rows, policy, NOW, name="www")
    protection = keep_bases(plan)
    kept = History(decision.row for decision in plan.decisions if decision.action == "keep")
    for decision in plan.decisions:
        if decision.action == "keep" and decision.row.stored_filename not in protection.broken:
            kept.chain(decision.row.stored_filename)  # raises if a base was deleted
    newest = max(rows, key=lambda row: (row.backup_date, row.id), default=None)
    if newest is not None:
        assert plan.decision(newest).action == "keep"


@PROPERTY
@given(level_histories(max_size=20), st.integers(0, 5), st.sampled_from([None, "2D", "5D"]))
def test_auto_never_bases_a_backup_on_a_broken_chain_and_respects_max_chain(rows, max_chain, full_every):
    history = History(rows)
    choice = history.choose_level("auto", now=NOW, full_every=full_every, max_chain=max_chain)
    if choice.level == "incr":
        chain = history.chain(choice.base)
        assert len(chain) <= max_chain
        assert choice.base == history.newest()
    else:
        assert choice.base is None
