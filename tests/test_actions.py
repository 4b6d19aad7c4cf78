"""bakthat.actions: resolving an action's context, finding its row, and the backups of a destination."""

from __future__ import annotations

import pytest

from bakthat import models
from bakthat.actions import backups_of, find_row, resolve
from bakthat.errors import NotFoundError

CONF = {"scrypt_work_factor": 10}


def add(ctx, stored: str, name: str, date: int, *, destination=None, backend_hash=None, profile="default",
        deleted=False, state="ok"):
    """Write one catalog row as a backup of ``ctx``'s store would (nothing is stored)."""
    return models.Backups.create(
        backend=destination or ctx.destination, backend_hash=backend_hash or ctx.backend.backend_hash,
        backup_date=date, filename=name, stored_filename=stored, size=1, last_updated=date,
        profile=profile, is_deleted=deleted, state=state,
    )


@pytest.fixture
def ctx(home):
    return resolve(None, "default", None, CONF)


def names(query) -> list[str]:
    return [row.stored_filename for row in query]


def test_resolve_names_the_default_local_destination_and_binds_the_catalog(ctx, home):
    assert ctx.destination == "local"
    assert ctx.backend.backend_hash
    assert (home / ".bakthat.sqlite").exists()
    assert models.Backups.select().count() == 0


def test_backups_of_a_name_are_its_live_rows_in_this_store_newest_first(ctx):
    add(ctx, "app.1", "app", 100)
    add(ctx, "app.3", "app", 300)
    add(ctx, "app.2", "app", 200)
    add(ctx, "other.1", "other", 250)
    add(ctx, "app.gone", "app", 400, deleted=True, state="deleted")
    add(ctx, "app.s3", "app", 500, destination="s3")
    add(ctx, "app.elsewhere", "app", 600, backend_hash="another store")
    assert names(backups_of(ctx, "app")) == ["app.3", "app.2", "app.1"]
    assert names(backups_of(ctx)) == ["app.3", "other.1", "app.2", "app.1"]


def test_backups_of_a_profile_leave_out_the_other_profiles(ctx):
    add(ctx, "app.1", "app", 100, profile="default")
    add(ctx, "app.2", "app", 200, profile="nightly")
    assert names(backups_of(ctx, "app", profile="nightly")) == ["app.2"]
    assert names(backups_of(ctx, "app")) == ["app.2", "app.1"]


def test_backups_of_with_deleted_rows_include_those_being_deleted(ctx):
    add(ctx, "app.1", "app", 100)
    add(ctx, "app.2", "app", 200, deleted=True, state="deleting")
    assert names(backups_of(ctx, "app")) == ["app.1"]
    assert names(backups_of(ctx, "app", include_deleted=True)) == ["app.2", "app.1"]


def test_find_row_takes_the_newest_of_a_name_then_a_stored_filename(ctx):
    add(ctx, "app.1", "app", 100)
    add(ctx, "app.2", "app", 200)
    assert find_row(ctx, "app").stored_filename == "app.2"
    assert find_row(ctx, "app.1").stored_filename == "app.1"


def test_find_row_of_an_unknown_name_is_not_found_and_names_close_ones(ctx):
    add(ctx, "application.1", "application", 100)
    with pytest.raises(NotFoundError, match=r"no backup named 'appl' in destination local \(similar names: application\)"):
        find_row(ctx, "appl")
