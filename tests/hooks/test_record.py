"""Hooks and the catalog (bakthat.hooks.record): hook runs recorded as hook_runs rows, and the
profile's hooks around one plain backup."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest

from bakthat import models
from bakthat.conf import get_profile
from bakthat.context import RunContext
from bakthat.errors import StorageError
from bakthat.hooks.command import DEFAULT_OUTPUT_KIB, HookResult
from bakthat.hooks.plan import HookFailed
from bakthat.hooks.record import around_backup, plan_options, record_hooks


def context(dry_run: bool = False) -> RunContext:
    return RunContext(str(uuid.uuid4()), "backup", name="docs", source="/srv/docs", dry_run=dry_run)


def hook_rows() -> list:
    return list(models.HookRuns.select().order_by(models.HookRuns.started, models.HookRuns.id))


def settings_with(hooks: dict, **more):
    return get_profile(conf={"hooks": hooks, **more})


def logging_hook(log, text: str, **options) -> dict:
    return {"run": ["sh", "-c", f'echo "{text}" >> {log}'], **options}


def test_record_hooks_writes_one_row_per_result_with_every_field(home):
    settings = get_profile()
    models.bind_settings(settings)
    results = [
        HookResult("hooks.before[0]", "before", "sh -c true", 1000.0, 0.25, 0, output="fine\n", output_bytes=5),
        HookResult("hooks.after[0]", "after", "slow", 1001.0, 3.0, None, timed_out=True, error="timed out after 3 s"),
    ]
    record_hooks(results, "job-run-1", "source-run-2")
    rows = hook_rows()
    assert [(row.job_run, row.source_run, row.hook, row.phase, row.command) for row in rows] == [
        ("job-run-1", "source-run-2", "hooks.before[0]", "before", "sh -c true"),
        ("job-run-1", "source-run-2", "hooks.after[0]", "after", "slow"),
    ]
    assert (rows[0].started, rows[0].duration, rows[0].exit_status, rows[0].output, rows[0].output_bytes) == (
        1000.0, 0.25, 0, "fine\n", 5)
    assert (rows[1].exit_status, rows[1].timed_out, rows[1].error) == (None, True, "timed out after 3 s")


def test_record_hooks_of_nothing_writes_nothing(home):
    models.bind_settings(get_profile())
    record_hooks([], "job-run-1", None)
    assert hook_rows() == []


def test_plan_options_give_the_output_bound_and_the_secrets_to_mask():
    assert plan_options({}) == {"output_kib": DEFAULT_OUTPUT_KIB, "secrets": []}
    assert plan_options({"hook_output_kib": 8}, ("s3cr3t",)) == {"output_kib": 8, "secrets": ["s3cr3t"]}


def test_around_backup_runs_the_hooks_around_the_work_records_them_and_returns_its_value(home, tmp_path):
    log = tmp_path / "log"
    settings = settings_with({
        "before": [logging_hook(log, "before $BAKTHAT_NAME")],
        "after": [logging_hook(log, "after $BAKTHAT_STATUS $BAKTHAT_STORED_FILENAME $BAKTHAT_SIZE")],
    })
    row = SimpleNamespace(stored_filename="docs.tar.zst", size=42, metadata={})
    run = context()

    def work(current):
        with log.open("a") as handle:
            handle.write(f"work {current.session_id == run.session_id}\n")
        return row

    assert around_backup(settings, run, work) is row
    assert log.read_text().splitlines() == ["before docs", "work True", "after ok docs.tar.zst 42"]
    rows = hook_rows()
    assert [(r.hook, r.phase, r.exit_status, r.job_run, r.source_run) for r in rows] == [
        ("hooks.before[0]", "before", 0, run.session_id, None),
        ("hooks.after[0]", "after", 0, run.session_id, None),
    ]


def test_a_partial_backup_is_partial_for_the_after_hooks(home, tmp_path):
    log = tmp_path / "log"
    settings = settings_with({"after": [logging_hook(log, "$BAKTHAT_STATUS")]})
    around_backup(settings, context(), lambda _: SimpleNamespace(stored_filename="x", size=1, metadata={"partial": True}))
    assert log.read_text() == "partial\n"


def test_the_works_error_is_raised_after_the_cleanup_hooks_ran_and_were_recorded(home, tmp_path):
    log = tmp_path / "log"
    settings = settings_with({"on_error": [logging_hook(log, "on_error $BAKTHAT_STATUS")],
                              "finally": [logging_hook(log, "finally")]})

    def work(_):
        raise StorageError("the disk is full")

    with pytest.raises(StorageError, match="the disk is full"):
        around_backup(settings, context(), work)
    assert log.read_text().splitlines() == ["on_error failed", "finally"]
    assert [row.phase for row in hook_rows()] == ["on_error", "finally"]


def test_a_fatal_before_hook_skips_the_work_and_raises_hook_failed(home, tmp_path):
    settings = settings_with({"before": [{"run": ["sh", "-c", "exit 7"], "err_is_fatal": True}]})
    ran = []
    with pytest.raises(HookFailed, match=r"fatal before hook failed: hooks\.before\[0\] .*exit status 7") as raised:
        around_backup(settings, context(), ran.append)
    assert ran == [] and raised.value.exit_code == 1
    assert [(row.phase, row.exit_status) for row in hook_rows()] == [("before", 7)]


def test_a_dry_run_runs_only_dry_run_hooks_and_records_nothing(home, tmp_path):
    log = tmp_path / "log"
    settings = settings_with({"before": [logging_hook(log, "skipped"), logging_hook(log, "ran $BAKTHAT_DRY_RUN", dry_run=True)]})
    assert around_backup(settings, context(dry_run=True), lambda _: "plan") == "plan"
    assert log.read_text() == "ran true\n"
    models.bind_settings(settings)
    assert hook_rows() == []


def test_the_profiles_hook_timeout_applies_to_its_hooks(home):
    settings = settings_with({"before": [{"run": ["sleep", "30"]}]}, hook_timeout=0.3)
    assert around_backup(settings, context(), lambda _: "done") == "done"
    (row,) = hook_rows()
    assert row.timed_out and row.duration < 10
