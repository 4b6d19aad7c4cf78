"""The local directory store: the conformance suite plus its durability promises."""

from __future__ import annotations

import os
import stat

import pytest

from bakthat.backends import get_backend
from bakthat.backends.local import TEMP_DIR
from bakthat.errors import ConfigError
from bakthat.testing.conformance import BackendConformance


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
    assert os.listdir(backend.root) == [TEMP_DIR]
    assert len(os.listdir(backend.root / TEMP_DIR)) == 1
    assert not (backend.root / "final.tar.zst").exists()
    upload.commit()
    assert sorted(os.listdir(backend.root)) == [TEMP_DIR, "final.tar.zst"]
    assert os.listdir(backend.root / TEMP_DIR) == []
    assert [info.key for info in backend.list()] == ["final.tar.zst"]


def test_a_temp_file_of_a_dead_process_is_swept_by_the_next_upload(backend):
    (backend.root / TEMP_DIR).mkdir(parents=True)
    import socket

    host = socket.gethostname().replace("-", "_")
    dead = backend.root / TEMP_DIR / f"{host}-999999999-abc"
    alive = backend.root / TEMP_DIR / f"{host}-{os.getpid()}-abc"
    dead.write_bytes(b"left by kill -9")
    alive.write_bytes(b"someone else's upload in progress")
    backend.put("next", b"x")
    assert not dead.exists()
    assert alive.exists()


def test_the_default_store_is_under_home(home):
    assert get_backend("local", {}).root == home / ".bakthat_store"


def test_objects_named_like_temp_files_are_ordinary_objects(backend):
    """Temp files live in their own directory: no key can collide with one, and list sees every key."""
    import socket

    host = socket.gethostname().replace("-", "_")
    names = [".tmp-x.20261122120000.tar.zst", f".tmp-{host}-999999999-abc", f"{host}-999999999-abc"]
    for name in names:
        backend.put(name, b"a backup")
    backend.put("next", b"x")  # sweeps stale temp files
    assert [info.key for info in backend.list()] == sorted([*names, "next"])
    assert all(backend.open_read(name).read() == b"a backup" for name in names)


def test_the_temp_directory_is_not_a_key(backend):
    for key in (TEMP_DIR, f"{TEMP_DIR}/x"):
        with pytest.raises(ConfigError, match="temp files"):
            backend.put(key, b"x")
