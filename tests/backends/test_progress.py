"""Transfer progress (bakthat/backends/_progress.py): every byte counted once, the callback
called with each step's bytes, 0.6's "completion: N%" lines at each tenth, thread-safe."""

from __future__ import annotations

import logging
import threading

import pytest

from bakthat.backends._progress import Progress


def completion_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if "completion" in record.getMessage()]


def test_the_callback_gets_each_steps_bytes_and_the_total_adds_up():
    seen = []
    progress = Progress("Upload", 1000, seen.append)
    for nbytes in (100, 250, 650):
        progress.update(nbytes)
    assert seen == [100, 250, 650] and progress.done == 1000


def test_zero_or_negative_steps_are_ignored():
    seen = []
    progress = Progress("Upload", 10, seen.append)
    progress.update(0)
    progress.update(-5)
    assert seen == [] and progress.done == 0


def test_a_known_total_logs_each_tenth_crossed_once_then_100_percent(caplog):
    caplog.set_level(logging.INFO, logger="bakthat.backends")
    progress = Progress("Upload", 1000)
    progress.start()
    progress.update(150)  # crosses 10%
    progress.update(10)  # no new tenth
    progress.update(340)  # 50%: the tenths skipped are not logged one by one
    progress.update(500)  # 100%
    progress.finish()  # already logged: not twice
    assert completion_lines(caplog) == [
        "Upload completion: 0%",
        "Upload completion: 10%",
        "Upload completion: 50%",
        "Upload completion: 100%",
    ]


def test_finish_logs_100_percent_once_when_the_bytes_fell_short(caplog):
    caplog.set_level(logging.INFO, logger="bakthat.backends")
    progress = Progress("Download", 1000)
    progress.update(999)
    progress.finish()
    progress.finish()
    assert completion_lines(caplog) == ["Download completion: 90%", "Download completion: 100%"]


def test_an_unknown_total_logs_the_bytes_so_far_at_debug_every_step(caplog):
    caplog.set_level(logging.DEBUG, logger="bakthat.backends")
    progress = Progress("Upload", None, log_every=1 << 20)
    progress.start()  # no 0% without a total
    for _ in range(5):
        progress.update(512 << 10)  # half a MiB at a time
    progress.finish()
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["Upload: 1 MiB so far", "Upload: 2 MiB so far", "Upload completion: 100%"]
    assert [record.levelno for record in caplog.records][:2] == [logging.DEBUG, logging.DEBUG]


@pytest.mark.parametrize("total", [None, 8 * 1000 * 64])
def test_updates_from_many_threads_are_all_counted(total):
    calls = []
    progress = Progress("Upload", total, calls.append)

    def worker():
        for _ in range(1000):
            progress.update(64)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert progress.done == 8 * 1000 * 64 and sum(calls) == progress.done and len(calls) == 8000
