"""The local directory store: the conformance suite plus its durability promises."""

from __future__ import annotations

import os
import stat

import pytest

from bakthat.backends import get_backend
from bakthat.backends.local import TEMP_PREFIX
from tests.backends.conformance import BackendConformance


@pytest.fixture
def backend(tmp_path):
    return get_backend("local", {"local_path": str(tmp_path / "store")})


class TestLocalConformance(BackendConformance):
    pass


def test_files_are_0600_and_directories_0700(backend):
    backend.put("dir/file", b"x")
    assert stat.S_IMODE(os.stat(backend.root / "dir" / "file").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(backend.root / "dir").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(backend.root).st_mode) == 0o700


def test_an_upload_in_progress_is_only_a_temp_file(backend):
    upload = backend.open_upload("final.tar.zst")
    upload.write(b"data")
    names = os.listdir(backend.root)
    assert len(names) == 1 and names[0].startswith(TEMP_PREFIX)
    assert not (backend.root / "final.tar.zst").exists()
    upload.commit()
    assert os.listdir(backend.root) == ["final.tar.zst"]


def test_a_temp_file_of_a_dead_process_is_swept_by_the_next_upload(backend):
    backend.root.mkdir(parents=True)
    import socket

    host = socket.gethostname().replace("-", "_")
    dead = backend.root / f"{TEMP_PREFIX}{host}-999999999-abc"
    alive = backend.root / f"{TEMP_PREFIX}{host}-{os.getpid()}-abc"
    dead.write_bytes(b"left by kill -9")
    alive.write_bytes(b"someone else's upload in progress")
    backend.put("next", b"x")
    assert not dead.exists()
    assert alive.exists()


def test_the_default_store_is_under_home(home):
    assert get_backend("local", {}).root == home / ".bakthat_store"
