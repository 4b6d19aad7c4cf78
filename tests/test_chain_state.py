"""Tests for bakthat.chain_state: merging the indexes of a chain, and which archives a
restore with --include reads.  The property test drives random tree histories through
ChangeSet and checks the merged state (and a replay of tar x plus deletions) against a
model of the tree at every backup."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bakthat.chain_state import merge, select, state_at
from bakthat.changes import ChangeSet
from bakthat.errors import ConfigError, IntegrityError
from bakthat.index import Index
from bakthat.index_records import BadIndexError, changed, record_from_stat, record_type
from bakthat.levels import BrokenChainError, History, Link
from tests.chains import fake_stat

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def delta(backup, level="incr", base=None, deletions=(), entries=()):
    index = Index("delta", backup=backup, level=level, base=base, root="r")
    index.deletions = [os.fsencode(path) for path in deletions]
    for path, stat_result in entries:
        index.add(path, stat_result)
    return index


FULL = delta("r.1", "full", entries=[("r", fake_stat("d", ino=1)), ("r/a", fake_stat(ino=2)),
                                     ("r/d", fake_stat("d", ino=3)), ("r/d/x", fake_stat(ino=4))])


def test_merge_applies_each_delta_in_order_with_its_deletions_first():
    incr = delta("r.2", base="r.1", deletions=["r/d"], entries=[("r/d", fake_stat(ino=5)), ("r/b", fake_stat(ino=6))])
    again = delta("r.3", base="r.2", entries=[("r/a", fake_stat(ino=2, size=99))])
    state = merge([FULL, incr, again])
    assert sorted(state) == [b"r", b"r/a", b"r/b", b"r/d"]
    assert [state.entry(path).holder for path in ("r", "r/a", "r/b", "r/d")] == ["r.1", "r.3", "r.2", "r.2"]
    assert state.holders == ["r.1", "r.2", "r.3"] and state.backup == "r.3"


def test_merge_refuses_indexes_that_do_not_form_a_chain():
    with pytest.raises(BadIndexError, match="a chain starts with a full backup"):
        merge([delta("r.2", base="r.1")])
    with pytest.raises(BadIndexError, match="its base is r.9, not r.1"):
        merge([FULL, delta("r.2", base="r.9")])
    with pytest.raises(BadIndexError, match="the parent of 'r/gone/x' is missing"):
        merge([FULL, delta("r.2", base="r.1", entries=[("r/gone/x", fake_stat(ino=7))])])
    with pytest.raises(ValueError):
        merge([])


def test_state_at_names_the_link_whose_index_is_missing_damaged_or_foreign():
    chain = [Link("r.1", 1), Link("r.2", 2, "incr", "r.1"), Link("r.3", 3, "incr", "r.2")]
    good = {"r.1": FULL, "r.2": delta("r.2", base="r.1"), "r.3": delta("r.3", base="r.2")}

    def loader(indexes):
        def load(link):
            found = indexes[link.stored_filename]
            if isinstance(found, Exception):
                raise found
            return found
        return load

    assert state_at(chain, loader(good)).backup == "r.3"
    damaged = {**good, "r.2": BadIndexError("index r.2: line 3: bad")}
    with pytest.raises(BrokenChainError, match="the index of r.2 in its chain is missing or damaged") as caught:
        state_at(chain, loader(damaged))
    assert caught.value.missing == "r.2" and caught.value.backup == "r.3"
    foreign = {**good, "r.2": delta("r.2", base="r.0")}
    with pytest.raises(BrokenChainError, match="the catalog r.2 \\(incr, base r.1\\)"):
        state_at(chain, loader(foreign))
    misfit = {**good, "r.3": delta("r.3", base="r.2", deletions=["r/nothing"])}
    with pytest.raises(BrokenChainError, match="do not fit together"):
        state_at(chain, loader(misfit))


# -- --include ------------------------------------------------------------------------------------


def include_state():
    full = delta("r.1", "full", entries=[
        ("r", fake_stat("d", ino=1)), ("r/docs", fake_stat("d", ino=2)), ("r/docs/a.md", fake_stat(ino=3)),
        ("r/docs/b.txt", fake_stat(ino=4)), ("r/src", fake_stat("d", ino=5)), ("r/src/m.py", fake_stat(ino=6)),
        ("r/src/docs", fake_stat(ino=7)), ("r/one", fake_stat(ino=8, nlink=2)), ("r/two", fake_stat(ino=8, nlink=2)),
    ])
    incr = delta("r.2", base="r.1", entries=[("r/docs/b.txt", fake_stat(ino=4, size=1))])
    later = delta("r.3", base="r.2", entries=[("r/src/new.py", fake_stat(ino=9))])
    return merge([full, incr, later])


def test_include_patterns_select_paths_and_only_the_archives_that_hold_them():
    state = include_state()
    docs = select(state, ["/docs/"])
    assert docs.paths == ["r/docs", "r/docs/a.md", "r/docs/b.txt"]
    assert docs.archives == ["r.1", "r.2"]
    assert docs.parents == ["r"]
    assert select(state, ["*.py"]).archives == ["r.1", "r.3"]
    assert select(state, ["src/new.py"]).archives == ["r.3"]
    assert select(state, ["docs"]).paths == ["r/docs", "r/docs/a.md", "r/docs/b.txt", "r/src/docs"]
    assert select(state, ["docs/", "!docs/b.txt"]).paths == ["r/docs", "r/docs/a.md"]
    assert select(state, ["nothing-matches"]).archives == []


def test_a_selected_hard_link_brings_its_partner_from_the_same_archive():
    selection = select(include_state(), ["two"])
    assert selection.paths == ["r/two"] and selection.partners == ["r/one"] and selection.archives == ["r.1"]


def test_include_needs_a_pattern():
    with pytest.raises(ConfigError, match="at least one pattern"):
        select(include_state(), [])


# -- the model property -------------------------------------------------------------------------

NAMES = ["a", "b", "c"]
PATHS = [f"r/{x}" for x in NAMES] + [f"r/{x}/{y}" for x in NAMES for y in NAMES]


@dataclass
class Model:
    """A tree as the walker would see it: path -> fake lstat fields."""

    entries: dict[str, dict] = field(default_factory=lambda: {"r": {"kind": "d", "ino": 1, "ctime_ns": 1}})
    clock: int = 10

    def tick(self) -> int:
        self.clock += 1
        return self.clock

    def remove(self, path: str) -> None:
        for other in [p for p in self.entries if p == path or p.startswith(path + "/")]:
            del self.entries[other]

    def ensure_parent(self, path: str) -> None:
        parent = path.rsplit("/", 1)[0]
        if self.entries.get(parent, {}).get("kind") != "d":
            self.put(parent, "d")

    def put(self, path: str, kind: str, *, same_inode: bool = False, link: str | None = None) -> None:
        self.ensure_parent(path)
        old = self.entries.get(path)
        if old is not None and (old["kind"] == "d") != (kind == "d"):
            self.remove(path)
            old = None
        keep = same_inode and old is not None and old["kind"] == kind
        # a rewrite keeps size and mtime (only ctime, or the inode, tells)
        entry = dict(old) if keep else {"kind": kind, "ino": self.tick(), "size": 4, "mtime_ns": 5}
        entry["ctime_ns"] = self.tick()
        if kind == "l":
            entry["link"] = link
        self.entries[path] = entry
        parent = path.rsplit("/", 1)[0]
        self.entries[parent]["ctime_ns"] = self.tick()

    def walk(self):
        for path in sorted(self.entries, key=lambda p: p.split("/")):
            entry = self.entries[path]
            st = fake_stat(entry["kind"], ino=entry["ino"], ctime_ns=entry["ctime_ns"],
                           size=entry.get("size", 4), mtime_ns=entry.get("mtime_ns", 5))
            yield path, st, entry.get("link")


operations = st.lists(
    st.tuples(st.sampled_from(["file", "rewrite", "dir", "link", "delete"]), st.sampled_from(PATHS),
              st.sampled_from(["x", "y"])),
    max_size=6,
)


@PROPERTY
@given(st.lists(st.tuples(operations, st.sampled_from(["full", "diff", "incr", "incr"])), min_size=1, max_size=7))
def test_the_merged_state_and_a_replay_of_the_archives_equal_the_tree_at_every_backup(steps):
    model = Model()
    rows, deltas, states, expected = [], {}, {}, {}
    for number, (changes, level) in enumerate(steps, start=1):
        for operation, path, extra in changes:
            if operation == "delete":
                model.remove(path)
                parent = path.rsplit("/", 1)[0]
                if parent in model.entries:
                    model.entries[parent]["ctime_ns"] = model.tick()
            else:
                kind = {"file": "f", "rewrite": "f", "dir": "d", "link": "l"}[operation]
                model.put(path, kind, same_inode=operation == "rewrite", link=extra if kind == "l" else None)
        name = f"r.{number}"
        choice = History(rows).choose_level(level, now=number)
        base = choice.base.stored_filename if choice.base else None
        changeset = ChangeSet(states[base].copy() if base else None, backup=name, level=choice.level,
                              base=base, root="r")
        for path, stat_result, link in model.walk():
            changeset.see(path, stat_result, link)
        changeset.tail()
        deltas[name], states[name] = changeset.finish()
        rows.append(Link(name, number, choice.level, base))
        expected[name] = {path: record_from_stat(found, link) for path, found, link in model.walk()}
    history = History(rows)
    for name, tree in expected.items():
        chain = history.chain(name)
        state = merge([deltas[link.stored_filename] for link in chain])
        assert sorted(os.fsdecode(key) for key in state) == sorted(tree)
        for path, record in tree.items():
            merged = state.record(path)
            assert not changed(merged, record) and record_type(merged) == record_type(record)
            holder = deltas[state.entry(path).holder]
            assert not changed(holder.record(path), record)  # its archive holds this version
        assert replay([deltas[link.stored_filename] for link in chain]) == {
            path: record_type(record) for path, record in tree.items()
        }
        assert sorted(states[name]) == sorted(state)  # the cached state is the merged one


def replay(chain_deltas: list[Index]) -> dict[str, str]:
    """Replay a restore on a model filesystem: each archive's deletions (which must exist),
    then its entries in archive order, refusing what tar could not do (a file over a
    directory or the reverse)."""
    disk: dict[str, str] = {}
    for index in chain_deltas:
        for key in index.deletions:
            path = os.fsdecode(key)
            assert path in disk, f"{index.backup} deletes {path}, which is not there"
            for other in [p for p in disk if p == path or p.startswith(path + "/")]:
                del disk[other]
        for key, record in index.items():
            path, kind = os.fsdecode(key), record_type(record)
            if path in disk and (disk[path] == "d") != (kind == "d"):
                raise IntegrityError(f"{index.backup}: {path} would replace a {disk[path]} by a {kind}")
            disk[path] = kind
    return disk
