"""bakthat/catalog.py: search and show (``bakthat.search``, ``bakthat show``): every filter,
the newest-first order, the profile's catalog, and an empty or missing catalog."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest

import bakthat
from bakthat import catalog, models
from bakthat.errors import ConfigError
from bakthat.utils import human_size, local_time


@pytest.fixture
def rows(tmp_path):
    """Three backups of one tree in the default profile: ``mydir`` tagged ``daily db``,
    ``mydir`` again tagged ``weekly`` (newer), and ``other`` in the memory store; return
    them by label."""
    tree = tmp_path / "data" / "mydir"
    tree.mkdir(parents=True)
    (tree / "f.txt").write_text("x\n")
    daily = bakthat.backup(str(tree), password="", tags="daily db")
    weekly = bakthat.backup(str(tree), password="", tags=["weekly"])
    other = bakthat.backup(str(tree), password="", custom_filename="other", destination="memory")
    return {"daily": daily, "weekly": weekly, "other": other}


def ids(found) -> list[int]:
    return [row.id for row in found]


def test_every_live_backup_is_listed_newest_by_backup_date_first_then_latest_row_first(rows):
    assert ids(catalog.search()) == [rows["other"].id, rows["weekly"].id, rows["daily"].id]
    daily = rows["daily"]
    daily.backup_date = rows["other"].backup_date + 60
    daily.save()
    assert ids(catalog.search()) == [daily.id, rows["other"].id, rows["weekly"].id]


def test_a_query_matches_part_of_the_name_or_of_the_stored_filename_and_a_name_matches_exactly(rows):
    assert ids(catalog.search("ydi")) == [rows["weekly"].id, rows["daily"].id]
    assert len(catalog.search(".tar.")) == 3  # in every stored filename, in no name
    assert catalog.search("nothing-like-it") == []
    assert ids(catalog.search(name="other")) == [rows["other"].id]
    assert catalog.search(name="othe") == []


def test_every_tag_given_must_be_one_of_the_backup_s_tags(rows):
    cases = [("daily", ["daily"]), ("daily db", ["daily"]), (["db", "daily"], ["daily"]), ("weekly", ["weekly"]),
             ("daily weekly", []), ("dai", []), ("", ["other", "weekly", "daily"])]
    for tags, expected in cases:
        assert ids(catalog.search(tags=tags)) == [rows[label].id for label in expected], tags


def test_a_destination_restricts_to_one_store_and_the_filters_combine(rows):
    assert ids(catalog.search(destination="memory")) == [rows["other"].id]
    assert ids(catalog.search(destination="local")) == [rows["weekly"].id, rows["daily"].id]
    assert catalog.search(destination="s3") == []
    assert ids(catalog.search("my", tags="weekly", destination="local", name="mydir")) == [rows["weekly"].id]
    assert catalog.search("my", tags="weekly", destination="memory") == []


def test_since_and_until_bound_the_backup_date_inclusively_in_seconds_or_datetimes(rows):
    daily, weekly = rows["daily"], rows["weekly"]
    daily.backup_date = weekly.backup_date - 3600
    daily.save()
    assert ids(catalog.search(until=daily.backup_date)) == [daily.id]
    assert ids(catalog.search(until=daily.backup_date - 1)) == []
    assert daily.id not in ids(catalog.search(since=daily.backup_date + 1))
    assert daily.id in ids(catalog.search(since=daily.backup_date))
    as_datetime = datetime.fromtimestamp(daily.backup_date, timezone.utc)
    assert ids(catalog.search(until=as_datetime)) == [daily.id]


def test_deleted_backups_are_listed_only_when_asked(rows):
    bakthat.delete("other", destination="memory")
    assert rows["other"].id not in ids(catalog.search())
    assert ids(catalog.search(name="other", include_deleted=True)) == [rows["other"].id]


def test_a_profile_lists_the_backups_of_its_own_catalog(home, tmp_path):
    (home / ".bakthat.yml").write_text(f"other:\n  database: {tmp_path / 'other.sqlite'}\n")
    assert catalog.search(profile="other") == []
    tree = tmp_path / "mydir"
    tree.mkdir()
    elsewhere = bakthat.backup(str(tree), password="", profile="other", tags="elsewhere")
    assert ids(catalog.search(profile="other")) == [elsewhere.id]
    assert catalog.search(tags="elsewhere") == []  # not in the default profile's catalog
    assert ids(catalog.search(tags="elsewhere", conf={"database": str(tmp_path / "other.sqlite")})) == [elsewhere.id]


def test_an_unknown_profile_is_a_config_error(home):
    (home / ".bakthat.yml").write_text("default: {}\n")
    with pytest.raises(ConfigError, match="nosuch"):
        catalog.search(profile="nosuch")


def test_an_empty_catalog_lists_nothing_and_a_missing_one_is_created_empty(home, tmp_path, caplog):
    database = tmp_path / "new" / "catalog.sqlite"
    with caplog.at_level(logging.INFO, logger="bakthat"):
        assert catalog.show(conf={"database": str(database)}) == []
    assert database.exists() and models.Backups.select().count() == 0
    assert not [record for record in caplog.records if record.name == "bakthat" and "\t" in record.getMessage()]
    assert catalog.search() == []  # the default catalog, never written to


def test_an_unknown_keyword_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="tag"):
        catalog.search(tag="daily")


def test_show_logs_one_line_per_backup_and_returns_the_rows(rows, caplog):
    with caplog.at_level(logging.INFO, logger="bakthat"):
        shown = catalog.show(destination="local")
    assert ids(shown) == [rows["weekly"].id, rows["daily"].id]
    lines = [record.getMessage() for record in caplog.records if record.name == "bakthat"]
    daily = rows["daily"]
    assert lines[-1] == (
        f"{local_time(daily.backup_date)}\tlocal\t{human_size(daily.size)}\t{daily.stored_filename}\t"
        f"{daily.source_path}\t(daily db)"
    )
    assert len(lines) == 2


def test_bakthat_search_show_and_ls_are_these_functions():
    assert bakthat.search is catalog.search and bakthat.show is catalog.show and bakthat.ls is catalog.show
