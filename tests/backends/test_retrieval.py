"""Retrievals of archived objects (bakthat/backends/retrieval.py): their settings, the
``retrievals`` table, the message for a running one, and the one wait loop."""

from __future__ import annotations

import time

import pytest

from bakthat.backends import get_backend, retrieval
from bakthat.backends.retrieval import RetrievalConfig, Retrievals, pending_message, record_retrieval, wait_for
from bakthat.errors import ConfigError, RetrievalPendingError, StorageError


@pytest.fixture
def store():
    return get_backend("memory", {})


# --------------------------------------------------------------------------- config


def test_the_config_takes_the_declared_defaults():
    config = RetrievalConfig.from_settings({})
    declared = {name: setting.default for name, setting in retrieval.SETTINGS.items()}
    assert (config.tier, config.days, config.wait, config.poll_interval, config.timeout) == (
        declared["retrieval_tier"], declared["retrieval_days"], declared["retrieval_wait"],
        declared["retrieval_poll_interval"], declared["retrieval_wait_timeout"],
    )


def test_a_tier_is_read_in_any_case():
    assert RetrievalConfig.from_settings({"retrieval_tier": "bulk"}).tier == "Bulk"
    assert RetrievalConfig.from_settings({"retrieval_tier": "EXPEDITED"}).tier == "Expedited"


def test_an_unknown_tier_is_a_config_error_listing_the_tiers():
    with pytest.raises(ConfigError, match="retrieval_tier must be one of Expedited, Standard, Bulk"):
        RetrievalConfig.from_settings({"retrieval_tier": "Instant"})


@pytest.mark.parametrize("days", [0, -1])
def test_days_below_one_are_a_config_error_naming_the_key(days):
    with pytest.raises(ConfigError, match=f"retrieval_days must be at least 1, not {days}"):
        RetrievalConfig.from_settings({"retrieval_days": days})


# --------------------------------------------------------------------------- the wait loop


def test_waiting_polls_at_the_interval_until_the_retrieval_is_ready():
    answers = iter([("pending", None), ("pending", None), ("ready", None)])
    slept = []
    wait_for("k", lambda: next(answers), RetrievalConfig(poll_interval=7), sleep=slept.append)
    assert slept == [7, 7, 7]


@pytest.mark.parametrize("status", ["failed", "expired"])
def test_a_retrieval_that_failed_or_expired_ends_the_wait_with_a_storage_error_naming_it(status):
    answers = iter([("pending", None), (status, "the job said no")])
    with pytest.raises(StorageError) as caught:
        wait_for("mydir.tar.zst", lambda: next(answers), RetrievalConfig(poll_interval=0), sleep=lambda s: None)
    assert str(caught.value) == f"mydir.tar.zst: the retrieval {status}: the job said no"


def test_waiting_gives_up_after_the_timeout_and_says_what_to_run_again():
    checks = []

    def check():
        checks.append(time.monotonic())
        return "pending", None

    config = RetrievalConfig(poll_interval=0.005, timeout=0.02)
    with pytest.raises(RetrievalPendingError) as caught:
        wait_for("mydir.tar.zst", check, config, command="check --read-data")
    assert str(caught.value) == (
        "mydir.tar.zst: the retrieval is still running after 0.02s of waiting; run check --read-data again later"
    )
    assert len(checks) >= 2 and checks[-1] - checks[0] < 5


def test_the_pending_message_says_how_long_and_what_to_do():
    message = pending_message("mydir.tar.zst", "DEEP_ARCHIVE", "Bulk", requested_now=True)
    assert message.startswith("mydir.tar.zst is archived in DEEP_ARCHIVE: a Bulk retrieval was requested now (typically up to 48 hours).")
    assert "--wait" in message and "`bakthat retrievals`" in message
    assert "is in progress (typically a few hours)" in pending_message("k", "ELSEWHERE", "Standard", requested_now=False)


# --------------------------------------------------------------------------- the table


def test_without_a_catalog_nothing_is_recorded_or_listed(store):
    assert retrieval.catalog_ready() is False
    assert record_retrieval(store, "k", "s3-restore", "pending", "Standard") is None
    assert retrieval.retrievals() == []


def test_a_retrieval_is_recorded_then_updated_in_the_same_row(catalog, store):
    first = record_retrieval(store, "k", "s3-restore", "pending", "Bulk", message="running")
    second = record_retrieval(store, "k", "s3-restore", "ready", "Bulk", ready_until=2_000_000_000)
    assert first.id == second.id and Retrievals.select().count() == 1
    row = Retrievals.get_by_id(first.id)
    assert (row.backend, row.backend_hash, row.status, row.ready_until, row.message) == (
        "memory", store.backend_hash, "ready", 2_000_000_000, None
    )


def test_a_new_request_after_a_failure_or_with_another_job_starts_a_new_row(catalog, store):
    record_retrieval(store, "k", "vault-job", "pending", "Standard", job_id="job-1")
    record_retrieval(store, "k", "vault-job", "failed", "Standard", job_id="job-1")
    record_retrieval(store, "k", "vault-job", "pending", "Standard", job_id="job-2")
    record_retrieval(store, "k", "vault-job", "pending", "Standard", job_id="job-3")
    rows = Retrievals.select().order_by(Retrievals.id)
    assert [(row.job_id, row.status) for row in rows] == [("job-1", "failed"), ("job-2", "pending"), ("job-3", "pending")]


def test_listing_gives_pending_rows_unless_all_are_asked_for_and_filters_by_store(catalog, store):
    other = get_backend("local", {"local_path": "/tmp/elsewhere"})
    record_retrieval(store, "a", "s3-restore", "pending", "Standard")
    record_retrieval(store, "b", "s3-restore", "ready", "Standard")
    record_retrieval(other, "c", "s3-restore", "pending", "Standard")
    assert sorted(row.key for row in retrieval.retrievals()) == ["a", "c"]
    assert sorted(row.key for row in retrieval.retrievals(include_done=True)) == ["a", "b", "c"]
    assert sorted(row.key for row in retrieval.retrievals(store, include_done=True, refresh=False)) == ["a", "b"]


def test_listing_a_store_with_archive_retrievals_refreshes_its_rows_from_the_store(aws, catalog):
    s3 = get_backend("s3", {"s3_bucket": "cold"})
    s3.ensure_bucket()
    record_retrieval(s3, "gone.tar.zst", "s3-restore", "pending", "Standard")
    assert retrieval.retrievals(s3) == []  # the object is not there: the row expired
    (row,) = retrieval.retrievals(s3, include_done=True, refresh=False)
    assert (row.status, row.message) == ("expired", "the object is gone")
