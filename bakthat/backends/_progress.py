"""Progress reporting for transfers: a thread-safe byte counter feeding a callback and the log.

Multipart uploads finish parts on worker threads; this counter serialises the calls to
the user's callback (``callback(nbytes)`` with the bytes just transferred, the same
contract as the pipeline's ``progress=``) and logs 0.6's "Upload completion: N%" lines
when the total is known, or the bytes so far at DEBUG when it is not (a stream).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("bakthat.backends")


class Progress:
    """Count transferred bytes; call ``callback`` and log at every 10% (or every 256 MiB)."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        callback: Callable[[int], None] | None = None,
        log_every: int = 256 << 20,
    ):
        self.label = label
        self.total = total
        self.callback = callback
        self.done = 0
        self._lock = threading.Lock()
        self._next_tenth = 0
        self._log_every = log_every
        self._next_log = log_every

    def start(self) -> None:
        """Log the 0% line (only when the total is known)."""
        if self.total:
            log.info("%s completion: 0%%", self.label)
            self._next_tenth = 1

    def update(self, nbytes: int) -> None:
        """Record ``nbytes`` more transferred; call the callback; log when a step is crossed."""
        if nbytes <= 0:
            return
        with self._lock:
            self.done += nbytes
            if self.callback is not None:
                self.callback(nbytes)
            if self.total:
                tenth = min(10, self.done * 10 // self.total)
                if tenth >= self._next_tenth and self._next_tenth <= 10:
                    log.info("%s completion: %d%%", self.label, tenth * 10)
                    self._next_tenth = tenth + 1
            elif self.done >= self._next_log:
                log.debug("%s: %d MiB so far", self.label, self.done >> 20)
                self._next_log = self.done + self._log_every

    def finish(self) -> None:
        """Log the 100% line if it was not logged yet."""
        with self._lock:
            if self.total is None or self._next_tenth <= 10:
                log.info("%s completion: 100%%", self.label)
                self._next_tenth = 11
