"""bakthat.hooks.plan: hooks as a stack around the work, with real subprocess hooks."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

from bakthat.context import RunContext
from bakthat.errors import ConfigError
from bakthat.hooks.plan import ActivityResult, HookFailed, Plan, format_report, parse_hooks


def context(**changes) -> RunContext:
    return RunContext(**{"session_id": str(uuid.uuid4()), "action": "run", "job": "nightly", **changes})


def note(log: Path, label: str, **options) -> dict:
    """A hook that appends ``label STATUS DRY_RUN`` to the log file."""
    return {"run": f'echo "{label} $BAKTHAT_STATUS $BAKTHAT_DRY_RUN" >> {log}', "shell": True, **options}


def fail(log: Path, label: str, **options) -> dict:
    return {"run": f'echo "{label}" >> {log}; exit 1', "shell": True, **options}


def lines(log: Path) -> list[str]:
    return [" ".join(line.split()) for line in log.read_text().splitlines()] if log.exists() else []


def work(log: Path, result: ActivityResult | None = None):
    def activity(ctx: RunContext) -> ActivityResult | None:
        with open(log, "a") as handle:
            handle.write("work\n")
        return result

    return activity


def test_before_hooks_run_in_order_after_hooks_in_reverse_then_finally_in_reverse(tmp_path):
    log = tmp_path / "log"
    hooks = parse_hooks({
        "before": [note(log, "before0"), note(log, "before1")],
        "after": [note(log, "after0"), note(log, "after1")],
        "on_error": [note(log, "on_error0")],
        "finally": [note(log, "finally0"), note(log, "finally1")],
    })
    result = Plan(hooks, work(log, ActivityResult(stored_filename="x.tar.zst", size=9)), context()).run()
    assert result.status == "ok" and result.error is None
    assert lines(log) == ["before0", "before1", "work", "after1 ok", "after0 ok", "finally1 ok", "finally0 ok"]
    assert [step.state for step in result.steps if step.phase == "on_error"] == ["skipped"]
    assert result.context.stored_filename == "x.tar.zst" and result.context.size == 9


def test_a_fatal_before_hook_skips_the_work_and_only_after_hooks_whose_before_ran_run(tmp_path):
    log = tmp_path / "log"
    hooks = parse_hooks({
        "before": [note(log, "before0"), fail(log, "before1", err_is_fatal=True), note(log, "before2")],
        "after": [note(log, "after0"), note(log, "after1"), note(log, "after2"), note(log, "after3")],
        "on_error": [note(log, "on_error0")],
        "finally": [note(log, "finally0"), note(log, "finally1"), note(log, "finally2"), note(log, "finally3")],
    })
    result = Plan(hooks, work(log), context()).run()
    assert result.status == "failed"
    assert isinstance(result.error, HookFailed) and "before[1]" in str(result.error)
    # after1/finally1 run: their before ran (and failed). before2 never ran, so after2 and
    # finally2 do not; after3 has no before and the work did not run; finally3 always runs.
    assert lines(log) == [
        "before0", "before1", "after1 failed", "after0 failed", "on_error0 failed",
        "finally3 failed", "finally1 failed", "finally0 failed",
    ]
    states = {(step.phase, step.index): (step.state, step.reason) for step in result.steps}
    assert states[("before", 2)] == ("skipped", "an earlier before hook failed")
    assert states[("activity", None)] == ("skipped", "a fatal before hook failed")
    assert states[("after", 2)] == ("skipped", "before[2] did not run")
    assert states[("after", 3)] == ("skipped", "the work did not run")
    assert states[("before", 1)][0] == "failed" and states[("before", 1)][1] == "exit status 1"


def test_a_failing_before_hook_without_err_is_fatal_is_logged_and_the_work_goes_on(tmp_path, caplog):
    log = tmp_path / "log"
    hooks = parse_hooks({"before": [fail(log, "before0")], "after": [note(log, "after0")]})
    result = Plan(hooks, work(log), context()).run()
    assert result.status == "ok"
    assert lines(log) == ["before0", "work", "after0 ok"]
    assert "exit status 1" in caplog.text


def test_a_failing_work_fails_the_unit_and_after_and_on_error_hooks_see_why(tmp_path):
    log = tmp_path / "log"
    hooks = parse_hooks({
        "before": [note(log, "before0")],
        "after": [{"run": f'echo "after0 $BAKTHAT_STATUS $BAKTHAT_ERROR" >> {log}', "shell": True}],
        "on_error": [{"run": f'echo "on_error0 $BAKTHAT_ERROR" >> {log}', "shell": True}],
    })

    def broken(ctx: RunContext) -> None:
        raise RuntimeError("pg_dump exited with status 1")

    result = Plan(hooks, broken, context()).run()
    assert result.status == "failed"
    assert str(result.error) == "pg_dump exited with status 1"
    assert lines(log) == ["before0", "after0 failed pg_dump exited with status 1", "on_error0 pg_dump exited with status 1"]


def test_a_partial_work_is_reported_partial(tmp_path):
    result = Plan(parse_hooks({}), work(tmp_path / "log", ActivityResult(status="partial")), context()).run()
    assert result.status == "partial" and result.context.status == "partial"


def test_a_fatal_after_hook_fails_the_unit_the_remaining_hooks_still_run(tmp_path):
    log = tmp_path / "log"
    hooks = parse_hooks({
        "after": [note(log, "after0"), fail(log, "after1", err_is_fatal=True)],
        "on_error": [note(log, "on_error0")],
    })
    result = Plan(hooks, work(log), context()).run()
    assert result.status == "failed"
    assert "after[1]" in str(result.error)
    assert lines(log) == ["work", "after1", "after0 failed", "on_error0 failed"]


def test_a_dry_run_runs_only_the_hooks_that_declare_dry_run_with_the_flag_set(tmp_path):
    log = tmp_path / "log"
    hooks = parse_hooks({
        "before": [note(log, "before0", dry_run=True), note(log, "before1")],
        "after": [note(log, "after0", dry_run=True), note(log, "after1", dry_run=True)],
    })
    result = Plan(hooks, work(log), context(dry_run=True)).run()
    assert result.status == "ok"
    # after1 declares dry_run but its before did not run, so it is skipped too.
    assert lines(log) == ["before0 true", "work", "after0 ok true"]
    states = {(step.phase, step.index): step.reason for step in result.steps if step.state == "skipped"}
    assert states == {
        ("before", 1): "dry run (the hook does not set dry_run: true)",
        ("after", 1): "before[1] did not run",
    }


def test_the_report_can_be_polled_from_another_thread_while_the_plan_runs(tmp_path):
    log = tmp_path / "log"
    hooks = parse_hooks({"before": [note(log, "before0")], "after": [note(log, "after0")]})
    entered, release = threading.Event(), threading.Event()

    def slow(ctx: RunContext) -> None:
        entered.set()
        release.wait(30)

    plan = Plan(hooks, slow, context(), activity_label="backup /srv/www")
    runner = threading.Thread(target=plan.run)
    runner.start()
    assert entered.wait(30)
    during = [(step.phase, step.state) for step in plan.report()]
    release.set()
    runner.join(30)
    assert during == [("before", "ok"), ("activity", "running"), ("after", "pending")]
    text = format_report(plan.report())
    assert "ok       activity     backup /srv/www" in text
    assert "after[0]" in text


def test_progress_callback_sees_every_state_change(tmp_path):
    seen = []
    hooks = parse_hooks({"before": ["true"]})
    Plan(hooks, lambda ctx: None, context(), on_change=lambda step: seen.append((step.phase, step.state))).run()
    assert seen == [("before", "running"), ("before", "ok"), ("activity", "running"), ("activity", "ok")]


def test_an_interrupted_work_still_runs_the_cleanup_hooks_then_propagates(tmp_path):
    log = tmp_path / "log"
    hooks = parse_hooks({"before": [note(log, "before0")], "after": [note(log, "after0")],
                         "finally": [note(log, "finally0")]})

    def interrupted(ctx: RunContext) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Plan(hooks, interrupted, context()).run()
    assert lines(log) == ["before0", "after0 failed", "finally0 failed"]


def test_an_interrupt_during_a_before_hook_skips_the_work_and_runs_its_after_hook(tmp_path):
    log = tmp_path / "log"
    hooks = parse_hooks({"before": [{"run": "sleep 30", "timeout": 60}], "after": [note(log, "after0")]})
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        Plan(hooks, work(log), context(), kill_grace=0.5).run()
    timer.join()
    assert time.monotonic() - started < 20
    assert lines(log) == ["after0 failed"]


def test_hook_phases_are_validated_with_their_place_in_the_configuration():
    with pytest.raises(ConfigError, match=r"jobs\.nightly\.hooks: unknown hook phase 'befor' \(did you mean 'before'\?\)"):
        parse_hooks({"befor": []}, "jobs.nightly.hooks")
    with pytest.raises(ConfigError, match=r"jobs\.nightly\.hooks\.after\[1\]: missing key 'run'"):
        parse_hooks({"after": ["true", {"timeout": 3}]}, "jobs.nightly.hooks")
    single = parse_hooks({"before": {"run": "true"}, "finally": None})
    assert len(single.before) == 1 and single.phase("finally") == ()
    assert not parse_hooks(None)


def test_a_plan_runs_once():
    plan = Plan(parse_hooks({}), lambda ctx: None, context())
    plan.run()
    with pytest.raises(RuntimeError):
        plan.run()
