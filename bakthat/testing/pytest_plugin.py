"""bakthat's pytest plugin: the kit's fixtures, for any project that installs bakthat.

Registered through the ``pytest11`` entry point (named ``bakthat``), so it is active in
every pytest run of an environment where bakthat is installed; ``-p no:bakthat``
turns it off.  Fixtures:

``bakthat_catalog``
    An active :class:`~bakthat.testing.catalog.TemporaryBakthat` rooted in the test's
    ``tmp_path``: its own HOME (``tmp_path/home``), ``~/.bakthat.yml``, catalog, local
    store and working directory (``tmp_path/work``).
``bakthat_events``
    A recording :class:`~bakthat.testing.recorder.EventRecorder` (inside the temporary
    bakthat), stopped at the end of the test.

Importing this module imports neither bakthat's core nor its catalog.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bakthat.testing.catalog import TemporaryBakthat
from bakthat.testing.recorder import EventRecorder

__all__ = ["bakthat_catalog", "bakthat_events"]


@pytest.fixture
def bakthat_catalog(tmp_path: Path) -> Iterator[TemporaryBakthat]:
    """Yield a temporary bakthat rooted in ``tmp_path``: HOME is ``tmp_path/home``, the
    working directory ``tmp_path/work``."""
    with TemporaryBakthat(tmp_path) as temporary:
        yield temporary


@pytest.fixture
def bakthat_events(bakthat_catalog: TemporaryBakthat) -> Iterator[EventRecorder]:
    """Yield an event recorder, recording every bakthat event until the test ends."""
    with EventRecorder() as recorder:
        yield recorder
