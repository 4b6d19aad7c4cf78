"""Backups at every level through the public API, and restoring their chains from the store."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import bakthat
from bakthat import models
from bakthat.errors import IntegrityError, NotFoundError, TargetExistsError
from bakthat.levels import BrokenChainError
from tests.chains import change_between_backups, make_source
from tests.trees import differences, tree_state


def evolve(root: Path, conf: dict | None = None, password: str = "") -> tuple[list, list[dict]]:
    """Back up ``root`` (made by make_source) as full -> diff -> incr -> incr while it
    changes; return the rows and the tree state at each backup."""
    rows, states = [], []

    def take(level):
        rows.append(bakthat.backup(str(root), password=password, prompt="no", level=level, conf=conf))
        states.append(tree_state(root))

    change_between_backups(root, take)
    return rows, states


@pytest.fixture
def evolved(tmp_path):
    """The rows of full -> diff -> incr -> incr of a changing tree, and its state at each."""
    root = make_source(tmp_path / "src" / "www")
    rows, states = evolve(root)
    return rows, states


def restored_state(target: Path) -> dict:
    return tree_state(target / "www")


def test_each_backup_records_its_level_and_base(evolved):
    rows, _ = evolved
    assert [row.level for row in rows] == ["full", "diff", "incr", "incr"]
    assert [row.base for row in rows] == [None, rows[0].stored_filename, rows[1].stored_filename, rows[2].stored_filename]
    assert all(row.metadata["index"]["key"] == row.stored_filename + ".index.jsonl.zst" for row in rows)
    assert rows[1].metadata["index"]["deletions"] == 1  # docs/deep/b.txt


def test_a_chain_restores_exactly_to_each_point(evolved, tmp_path):
    rows, states = evolved
    for number, (row, state) in enumerate(zip(rows, states)):
        target = tmp_path / f"out{number}"
        bakthat.restore(row.stored_filename, target=target, prompt="no")
        assert differences(state, restored_state(target)) == [], row.level
        assert sorted(os.listdir(target)) == ["www"], "no work directory is left behind"


def test_a_chain_restore_reads_each_archive_once(evolved, tmp_path, monkeypatch):
    from bakthat.backends import local

    rows, states = evolved
    opened: list[str] = []
    original = local.Backend.open_read

    def counting(self, key):
        opened.append(key)
        return original(self, key)

    monkeypatch.setattr(local.Backend, "open_read", counting)
    bakthat.restore(rows[3].stored_filename, target=tmp_path / "out", prompt="no")
    assert differences(states[3], restored_state(tmp_path / "out")) == []
    archives = [key for key in opened if ".index." not in key]
    assert archives == [row.stored_filename for row in rows]


def test_at_picks_the_newest_state_at_or_before_the_date(evolved, tmp_path):
    rows, states = evolved
    from bakthat.levels import utc_iso

    for number, (row, state) in enumerate(zip(rows, states)):
        for kind, when in enumerate((row.backup_date, str(row.backup_date), utc_iso(row.backup_date))):
            target = tmp_path / f"at{number}-{kind}"
            assert bakthat.restore("www", at=when, target=target, prompt="no").stored_filename == row.stored_filename
            assert differences(state, restored_state(target)) == []
    with pytest.raises(NotFoundError, match="no backup at or before"):
        bakthat.restore("www", at="2001-01-01", target=tmp_path / "none", prompt="no")
    assert not (tmp_path / "none").exists()


def test_a_damaged_middle_link_is_refused_before_anything_is_written(evolved, home, tmp_path):
    rows, _ = evolved
    archive = home / ".bakthat_store" / rows[1].stored_filename
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    archive.write_bytes(bytes(data))
    target = tmp_path / "out"
    with pytest.raises(BrokenChainError) as caught:
        bakthat.restore(rows[3].stored_filename, target=target, prompt="no")
    assert caught.value.missing == rows[1].stored_filename
    assert rows[1].stored_filename in str(caught.value)
    assert not target.exists()
    # the full before it is still whole
    bakthat.restore(rows[0].stored_filename, target=tmp_path / "full", prompt="no")


def same_size_other_content(archive: bytes) -> bytes:
    """Return a zstd archive of the same size as ``archive`` that decompresses cleanly to
    its tar with one byte of file data changed: only the SHA-256 can tell them apart."""
    import io
    import tarfile

    import zstandard

    plain = bytearray(zstandard.ZstdDecompressor().stream_reader(io.BytesIO(archive), read_across_frames=True).read())
    with tarfile.open(fileobj=io.BytesIO(bytes(plain))) as tar:
        member = next(member for member in tar if member.isfile() and member.size)
    plain[member.offset_data] ^= 0x01
    frame = zstandard.ZstdCompressor(level=19, write_checksum=False, write_content_size=False).compress(bytes(plain))
    padding = len(archive) - len(frame) - 8
    assert padding >= 0, "the recompressed archive must leave room for a skippable frame"
    # a skippable frame (magic 0x184D2A50, little-endian length): every decoder ignores it
    return frame + (0x184D2A50).to_bytes(4, "little") + padding.to_bytes(4, "little") + bytes(padding)


DAMAGES = {
    "a flipped byte in the full": (0, lambda data: data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 1]) + data[len(data) // 2 + 1 :]),
    "a flipped byte in the last link": (3, lambda data: data[:-20] + bytes([data[-20] ^ 1]) + data[-19:]),
    "a truncated link": (2, lambda data: data[:-100]),
    "same size, other content": (3, same_size_other_content),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("existing", [False, True], ids=["new target", "existing target, overwrite"])
def test_a_damaged_link_is_refused_naming_it_and_the_target_is_untouched(evolved, home, tmp_path, damage, existing):
    rows, states = evolved
    target = tmp_path / "out"
    before = None
    if existing:
        bakthat.restore(rows[0].stored_filename, target=target, prompt="no")
        (target / "www" / "mine.txt").write_text("not from any backup")
        before = restored_state(target)
    position, damaging = DAMAGES[damage]
    damaged = rows[position]
    archive = home / ".bakthat_store" / damaged.stored_filename
    data = archive.read_bytes()
    changed = damaging(data)
    assert changed != data
    archive.write_bytes(changed)
    with pytest.raises(BrokenChainError) as caught:
        bakthat.restore(rows[3].stored_filename, target=target, prompt="no", overwrite=existing)
    assert caught.value.missing == damaged.stored_filename
    assert caught.value.backup == rows[3].stored_filename
    assert damaged.stored_filename in str(caught.value)
    if existing:
        assert sorted(os.listdir(target)) == ["www"], "no work directory is left behind"
        assert differences(before, restored_state(target)) == []
    else:
        assert not target.exists()


def test_a_damaged_link_of_an_encrypted_chain_is_refused_naming_it(tmp_path, home):
    root = make_source(tmp_path / "src" / "www")
    rows, _ = evolve(root, password="chain secret")
    archive = home / ".bakthat_store" / rows[2].stored_filename
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01  # in the age payload: a chunk fails to authenticate
    archive.write_bytes(bytes(data))
    with pytest.raises(BrokenChainError) as caught:
        bakthat.restore(rows[3].stored_filename, target=tmp_path / "out", password="chain secret", prompt="no")
    assert caught.value.missing == rows[2].stored_filename
    assert not (tmp_path / "out").exists()


def test_a_hostile_link_that_is_what_backup_stored_stays_an_unsafe_archive(evolved, home, tmp_path):
    import hashlib
    import io
    import tarfile

    import zstandard

    from bakthat.errors import UnsafeArchiveError

    rows, _ = evolved
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w", format=tarfile.PAX_FORMAT) as tar:
        member = tarfile.TarInfo("../escaped.txt")
        member.size = 3
        tar.addfile(member, io.BytesIO(b"bad"))
    hostile = zstandard.ZstdCompressor().compress(plain.getvalue())
    (home / ".bakthat_store" / rows[3].stored_filename).write_bytes(hostile)
    models.Backups.update(size=len(hostile), sha256=hashlib.sha256(hostile).hexdigest()).where(
        models.Backups.stored_filename == rows[3].stored_filename
    ).execute()
    with pytest.raises(UnsafeArchiveError) as caught:
        bakthat.restore(rows[3].stored_filename, target=tmp_path / "out", prompt="no")
    assert not isinstance(caught.value, BrokenChainError)
    assert not (tmp_path / "out").exists() and not (tmp_path / "escaped.txt").exists()


@pytest.mark.parametrize("lost", ["archive", "index"])
def test_a_missing_middle_link_is_named_and_nothing_is_written(evolved, home, tmp_path, lost):
    rows, _ = evolved
    store = home / ".bakthat_store"
    key = rows[2].stored_filename + (".index.jsonl.zst" if lost == "index" else "")
    (store / key).unlink()
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(BrokenChainError) as caught:
        bakthat.restore(rows[3].stored_filename, target=target, prompt="no")
    assert caught.value.missing == rows[2].stored_filename
    assert list(target.iterdir()) == []


def test_a_deleted_base_row_breaks_the_chain_by_name(evolved, tmp_path):
    rows, _ = evolved
    rows[1].set_deleted()
    with pytest.raises(BrokenChainError, match=rows[1].stored_filename):
        bakthat.restore(rows[2].stored_filename, target=tmp_path / "out", prompt="no")


def test_include_restores_only_matching_paths_reading_only_the_archives_holding_them(evolved, home, tmp_path):
    rows, states = evolved
    store = home / ".bakthat_store"
    # added.txt is held by the diff and new-name.txt by the first incr: the others are not read
    for row in (rows[0], rows[3]):
        (store / row.stored_filename).unlink()
    target = tmp_path / "out"
    bakthat.restore("www", include=["added.txt", "new-name.txt"], target=target, prompt="no")
    restored = restored_state(target)
    assert sorted(restored) == [".", "added.txt", "new-name.txt"]
    for name in ("added.txt", "new-name.txt"):
        assert restored[name] == states[3][name]
    assert restored["."][:3] == states[3]["."][:3], "the parent gets the recorded mode and mtime"


def test_include_of_a_directory_brings_everything_below_it(evolved, tmp_path):
    rows, states = evolved
    target = tmp_path / "out"
    bakthat.restore(rows[2].stored_filename, include=["docs/"], target=target, prompt="no")
    restored = restored_state(target)
    expected = {path: value for path, value in states[2].items() if path == "docs" or path.startswith("docs/")}
    assert {path: value for path, value in restored.items() if path != "."} == expected


def test_include_that_matches_nothing_is_an_error(evolved, tmp_path):
    with pytest.raises(NotFoundError, match="matches"):
        bakthat.restore("www", include=["nothing-like-this"], target=tmp_path / "out", prompt="no")
    assert not (tmp_path / "out").exists()


def test_a_chain_restore_refuses_existing_entries_unless_overwrite(evolved, tmp_path):
    rows, states = evolved
    target = tmp_path / "out"
    bakthat.restore(rows[0].stored_filename, target=target, prompt="no")
    with pytest.raises(TargetExistsError):
        bakthat.restore(rows[3].stored_filename, target=target, prompt="no")
    assert differences(states[0], restored_state(target)) == []
    bakthat.restore(rows[1].stored_filename, target=target, prompt="no", overwrite=True)
    restored = restored_state(target)
    # overwrite merges: what the diff holds is there, nothing is deleted from the target
    for path in ("added.txt", "docs/a.txt"):
        assert restored[path] == states[1][path]


def test_an_encrypted_chain_restores_with_its_password(tmp_path):
    root = make_source(tmp_path / "src" / "www")
    rows, states = evolve(root, password="chain secret")
    assert all(row.stored_filename.endswith(".age") for row in rows)
    index = Path(os.path.expanduser("~/.bakthat_store")) / (rows[2].stored_filename + ".index.jsonl.zst.age")
    assert index.read_bytes().startswith(b"age-encryption.org/v1"), "the index and its deletion list are encrypted"
    bakthat.restore(rows[3].stored_filename, target=tmp_path / "out", password="chain secret", prompt="no")
    assert differences(states[3], restored_state(tmp_path / "out")) == []
    from bakthat.errors import WrongPasswordError

    with pytest.raises((WrongPasswordError, BrokenChainError)):
        bakthat.restore(rows[3].stored_filename, target=tmp_path / "bad", password="wrong", prompt="no")
    assert not (tmp_path / "bad").exists()


def test_sync_into_an_empty_catalog_rebuilds_a_chain_that_then_restores(evolved, home, tmp_path):
    from bakthat.sync import sync

    rows, states = evolved
    models.unbind()
    other = {"database": str(tmp_path / "rebuilt.sqlite")}
    added = sync(conf=other)
    assert [(row.stored_filename, row.level, row.base) for row in added] == [
        (row.stored_filename, row.level, row.base) for row in rows
    ]
    assert added.orphans == []
    shutil.rmtree(home / ".cache")
    bakthat.restore("www", target=tmp_path / "out", prompt="no", conf=other)
    assert differences(states[3], restored_state(tmp_path / "out")) == []


def test_deleting_a_backup_deletes_its_index(evolved, home):
    rows, _ = evolved
    bakthat.delete(rows[3].stored_filename)
    left = sorted(path.name for path in (home / ".bakthat_store").iterdir() if path.name.startswith(rows[3].stored_filename))
    assert left == []


def test_a_dry_run_of_a_chain_reads_it_and_lists_the_state_without_writing(evolved, home, tmp_path):
    rows, states = evolved
    target = tmp_path / "out"
    plan = bakthat.restore(rows[3].stored_filename, target=target, prompt="no", dry_run=True)
    assert plan.dry_run and not plan.refused and not target.exists()
    assert "www/new-name.txt" in plan.would_write and "www/old-name.txt" not in plan.would_write
    assert plan.entries == len(states[3])
    partial = bakthat.restore("www", include=["added.txt"], target=target, prompt="no", dry_run=True)
    assert partial.would_write == ["www", "www/added.txt"]
    flip = home / ".bakthat_store" / rows[2].stored_filename
    data = bytearray(flip.read_bytes())
    data[len(data) // 2] ^= 1
    flip.write_bytes(bytes(data))
    with pytest.raises(BrokenChainError) as caught:
        bakthat.restore(rows[3].stored_filename, target=target, prompt="no", dry_run=True)
    assert caught.value.missing == rows[2].stored_filename
    assert not target.exists()
