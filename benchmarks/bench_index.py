#!/usr/bin/env python3
"""Benchmark the file index of incremental backups (issue 13, phase A).

Two parts, each measured in this one run:

1. **The benchmark data set** (bench_pipeline.py's generator, ~23,000 files at 1 GB):
   walking it with lstat only (the floor), building a full backup's index while walking
   (ChangeSet), writing the index file (zstd JSON lines) and reading it back (with every
   check), saving and loading the state in the local cache (what the next run reads),
   and the change detection of an unchanged re-run and of a re-run after 1 % of the
   files changed (walk + compare with the previous state).  Side by side, on the
   same tree: ``find -printf`` of the same fields (a C walk), GNU tar's own incremental
   snapshot (``tar -g`` of the unchanged tree to /dev/null) and ``restic backup`` of the
   unchanged tree (the issue's target compares the whole unchanged re-run with it).
2. **1 M synthetic entries** (no filesystem: stat results made in memory), to see how
   the index scales: building, bytes per entry in memory (tracemalloc), writing,
   reading, the local cache, comparing (unchanged and 1 % changed) and merging a chain
   of a full and 7 incrementals.  The peak RSS printed at the end is mostly the 1 M
   stat results the benchmark keeps in lists, not the index.

Every timing is the best of ``--reps`` runs, as wall time and as CPU time (this process
and its children: on a shared machine the CPU time is the steadier figure).  The index work runs in this Python
process; the standard tools run as subprocesses.  Nothing here is an end-to-end
bakthat backup: CLI start-up, the catalog, the manifest and the upload come with phase B.

Usage:  python benchmarks/bench_index.py [--size 1G] [--entries 1000000] [--workdir DIR]
                                        [--keep-data] [--reps 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import multiprocessing
import os
import random
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bakthat.chain_state import merge  # noqa: E402
from bakthat.changes import ChangeSet  # noqa: E402
from bakthat.index import Index  # noqa: E402
from bakthat.index_cache import load_state, save_state  # noqa: E402
from bakthat.index_file import index_bytes, index_from_bytes  # noqa: E402


def _pipeline() -> Any:
    """Return benchmarks/bench_pipeline.py as a module (its data set generator)."""
    if "bench_pipeline" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_pipeline", Path(__file__).with_name("bench_pipeline.py"))
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules["bench_pipeline"] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules["bench_pipeline"]


def _cpu() -> float:
    """CPU seconds (user + system) of this process and its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def best(reps: int, work: Callable[[], Any]) -> tuple[tuple[float, float], Any]:
    """Run ``work`` ``reps`` times; return ((best wall s, best CPU s), last result).

    CPU time is shown beside wall time because the machine is shared: other
    processes stretch wall time, much less the CPU time of the work itself.
    """
    walls, cpus, result = [], [], None
    for _ in range(reps):
        gc.collect()
        started, cpu = time.perf_counter(), _cpu()
        result = work()
        walls.append(time.perf_counter() - started)
        cpus.append(_cpu() - cpu)
    return (min(walls), min(cpus)), result


def run_best(reps: int, argv: list[str], **kwargs: Any) -> tuple[float, float]:
    def work() -> None:
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)

    return best(reps, work)[0]


def walk(root: Path) -> Iterator[tuple[str, os.stat_result, str | None]]:
    """bakthat's walk order: each directory's entries sorted, parents first."""
    parent = os.fspath(root.parent)
    stack = [root.name]
    while stack:
        relative = stack.pop()
        full = os.path.join(parent, relative)
        st = os.lstat(full)
        link = os.readlink(full) if stat.S_ISLNK(st.st_mode) else None
        yield relative, st, link
        if stat.S_ISDIR(st.st_mode):
            with os.scandir(full) as entries:
                names = sorted(entry.name for entry in entries)
            stack.extend(f"{relative}/{name}" for name in reversed(names))


def backup_index(entries: Any, previous: Index | None, name: str, level: str, base: str | None, root: str):
    changes = ChangeSet(previous, backup=name, level=level, base=base, root=root)
    stored = sum(1 for path, st, link in entries if changes.see(path, st, link))
    stored += len(changes.tail())
    delta, state = changes.finish()
    return stored, delta, state


def measured_memory(build: Callable[[], Any]) -> tuple[int, Any]:
    """Return (bytes allocated and still held by what ``build`` returns, the result)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    result = build()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return held, result


# -- part 1: the benchmark data set ---------------------------------------------------------


def bench_tree(args: argparse.Namespace, workdir: Path, rows: list[dict[str, Any]]) -> None:
    pipeline = _pipeline()
    pipeline._build_vocab(args.seed)
    with multiprocessing.get_context("fork").Pool() as pool:
        data = pipeline.make_dataset(workdir, args.size, args.seed, pool)
    root = data.root
    count = len(data.files) + len(data.dirs) + 1
    reps = args.reps
    print(f"\n[1] data set: {len(data.files)} files, {len(data.dirs)} directories ({args.size / 1e9:.2f} GB)")
    print(f"  {'':<50} {'wall':>8}   {'CPU':>8}")

    def add(what: str, timing: tuple[float, float] | None, **extra: Any) -> None:
        wall, cpu = timing or (0.0, 0.0)
        rows.append({"part": "tree", "what": what, "wall": round(wall, 4), "cpu": round(cpu, 4), "entries": count,
                     **extra})
        details = "  ".join(f"{key}={value}" for key, value in extra.items())
        figures = f"{wall:8.3f} s {cpu:8.3f} s" if timing else " " * 21
        print(f"  {what:<50} {figures}  {details}", flush=True)

    add("walk + lstat only (Python floor)", best(reps, lambda: sum(1 for _ in walk(root)))[0])
    add("find -printf size,mtime,ctime,inode,mode (C walk)",
        run_best(reps, ["find", str(root), "-printf", "%s %T@ %C@ %i %m %U %G %p\n"]))
    full_time, (_, delta, state) = best(reps, lambda: backup_index(walk(root), None, "b.1", "full", None, root.name))
    add("walk + build the full index", full_time)
    memory, _ = measured_memory(lambda: backup_index(walk(root), None, "b.1", "full", None, root.name)[2])
    add("  state index in memory", None, bytes_per_entry=round(memory / count))
    write_time, data_bytes = best(reps, lambda: index_bytes(delta))
    add("write the index file (zstd -3 JSON lines)", write_time, compressed_bytes=len(data_bytes),
        bytes_per_entry=round(len(data_bytes) / count, 1))
    read_time, _ = best(reps, lambda: index_from_bytes(data_bytes, "bench"))
    add("read the index file (with every check)", read_time)
    cache = workdir / "cache" / "b.state"
    save_time, _ = best(reps, lambda: save_state(state, cache))
    add("save the state to the local cache", save_time, cache_bytes=cache.stat().st_size)
    load_time, _ = best(reps, lambda: load_state(cache, backup="b.1", root=root.name))
    add("load the state from the local cache", load_time)
    unchanged_time, (stored, *_) = best(
        reps, lambda: backup_index(walk(root), state.copy(), "b.2", "incr", "b.1", root.name))
    add("unchanged re-run: walk + compare", unchanged_time, stored=stored)

    # 1 % of the files changed (appended to: new size, mtime and ctime)
    rng = random.Random(args.seed)
    chosen = rng.sample(sorted(data.files), max(1, len(data.files) // 100))
    for relative in chosen:
        with open(root / relative, "ab") as handle:
            handle.write(b"+")
    try:
        changed_time, (stored, *_) = best(
            reps, lambda: backup_index(walk(root), state.copy(), "b.2", "incr", "b.1", root.name))
        add("1 % changed: walk + compare", changed_time, stored=stored, changed_files=len(chosen))
    finally:
        for relative in chosen:
            with open(root / relative, "r+b") as handle:
                handle.truncate(data.files[relative])

    # GNU tar's incremental snapshot, unchanged tree, archive to /dev/null
    snapshot = workdir / "tar.snar"
    snapshot.unlink(missing_ok=True)
    subprocess.run(["tar", "-c", "-g", str(snapshot), "-f", "/dev/null", "-C", str(root.parent), root.name],
                   check=True)
    base_snapshot = snapshot.read_bytes()

    def tar_again() -> None:
        snapshot.write_bytes(base_snapshot)
        subprocess.run(["tar", "-c", "-g", str(snapshot), "-f", "/dev/null", "-C", str(root.parent), root.name],
                       check=True, stdout=subprocess.DEVNULL)

    add("GNU tar -g, unchanged (snapshot to /dev/null)", best(reps, tar_again)[0])
    if shutil.which("restic"):
        repo = workdir / "restic-repo"
        shutil.rmtree(repo, ignore_errors=True)
        env = {**os.environ, "RESTIC_PASSWORD": "bench", "XDG_CACHE_HOME": str(workdir / "restic-cache")}
        subprocess.run(["restic", "-r", str(repo), "init"], check=True, env=env, capture_output=True)
        subprocess.run(["restic", "-r", str(repo), "backup", root.name], check=True, env=env, capture_output=True,
                       cwd=root.parent)
        add("restic backup, unchanged (whole command)",
            run_best(reps, ["restic", "-r", str(repo), "backup", root.name], env=env, cwd=root.parent))
        shutil.rmtree(repo, ignore_errors=True)
    else:
        print("  restic: not installed, skipped")


# -- part 2: 1 M synthetic entries ------------------------------------------------------------


def _stat(kind: int, ino: int, size: int, when: int) -> os.stat_result:
    return os.stat_result((kind, ino, 5, 1, 1000, 1000, size, when // 10**9, when // 10**9, when // 10**9,
                           when / 1e9, when / 1e9, when / 1e9, when, when, when))


def synthetic(count: int, seed: int, changed: frozenset[int] = frozenset(), generation: int = 0):
    """Yield (path, stat, None) for a tree of ``count`` entries: 100 files per directory,
    20 directories per group, paths of about 40 bytes.  Entries numbered in ``changed``
    get a size and time moved by ``generation``."""
    rng = random.Random(seed)
    base_time = 1_700_000_000_000_000_000
    directory_mode, file_mode = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o644
    yield "root", _stat(directory_mode, 1, 4096, base_time), None
    number = 1
    for d in range(max(1, count // 101) + 1):
        top, sub = divmod(d, 20)
        if sub == 0 and number < count:
            yield f"root/group-{top:05d}", _stat(directory_mode, 10_000_000 + top, 4096, base_time), None
            number += 1
        directory = f"root/group-{top:05d}/dir-{sub:03d}"
        if number < count:
            yield directory, _stat(directory_mode, 20_000_000 + d, 4096, base_time), None
            number += 1
        for f in range(100):
            if number >= count:
                return
            moved = generation if number in changed else 0
            when = base_time + rng.randrange(10**15) + moved
            size = rng.randrange(1, 1 << 20) + moved
            yield f"{directory}/file-{f:03d}.dat", _stat(file_mode, 30_000_000 + number, size, when), None
            number += 1


def bench_synthetic(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    count, reps = args.entries, max(1, min(args.reps, 2))
    print(f"\n[2] {count:,} synthetic entries (no filesystem)")
    print(f"  {'':<50} {'wall':>8}   {'CPU':>8}   {'CPU/entry':>9}")

    def add(what: str, timing: tuple[float, float] | None, **extra: Any) -> None:
        wall, cpu = timing or (0.0, 0.0)
        rows.append({"part": "synthetic", "what": what, "wall": round(wall, 4), "cpu": round(cpu, 4),
                     "entries": count, **extra})
        details = "  ".join(f"{key}={value}" for key, value in extra.items())
        figures = f"{wall:8.3f} s {cpu:8.3f} s {cpu / count * 1e6:6.2f} µs" if timing else " " * 32
        print(f"  {what:<50} {figures}  {details}", flush=True)

    entries = list(synthetic(count, args.seed))
    build_time, (_, delta, state) = best(reps, lambda: backup_index(entries, None, "s.1", "full", None, "root"))
    add("build the full index (ChangeSet)", build_time)
    memory, held = measured_memory(lambda: backup_index(entries, None, "s.1", "full", None, "root")[2])
    add("  state index in memory", None, bytes_per_entry=round(memory / count), total_mib=round(memory / 2**20, 1))
    write_time, data_bytes = best(reps, lambda: index_bytes(state))
    add("write the index file", write_time, compressed_mib=round(len(data_bytes) / 2**20, 1),
        bytes_per_entry=round(len(data_bytes) / count, 1))
    read_time, _ = best(reps, lambda: index_from_bytes(data_bytes, "bench"))
    add("read the index file (with every check)", read_time)
    with tempfile.TemporaryDirectory(prefix="bakthat-bench-cache-") as directory:
        cache = Path(directory) / "s.state"
        save_time, _ = best(reps, lambda: save_state(state, cache))
        add("save the state to the local cache", save_time, cache_mib=round(cache.stat().st_size / 2**20, 1))
        load_time, _ = best(reps, lambda: load_state(cache, backup="s.1", root="root"))
        add("load the state from the local cache", load_time)
    unchanged_time, (stored, *_) = best(reps, lambda: backup_index(entries, state.copy(), "s.2", "incr", "s.1", "root"))
    add("compare, unchanged", unchanged_time, stored=stored)
    rng = random.Random(args.seed + 1)
    deltas = []
    previous = state
    for generation in range(1, 8):
        changed = frozenset(rng.sample(range(1, count), count // 100))
        step = list(synthetic(count, args.seed, changed, generation))
        started, cpu = time.perf_counter(), _cpu()
        stored, delta, previous = backup_index(step, previous, f"s.{generation + 1}", "incr",
                                               previous.backup, "root")
        if generation == 1:
            add("compare, 1 % changed", (time.perf_counter() - started, _cpu() - cpu), stored=stored)
        deltas.append(delta)
    full_delta = backup_index(synthetic(count, args.seed), None, "s.1", "full", None, "root")[1]
    merge_time, merged = best(reps, lambda: merge([full_delta, *deltas]))
    add("merge a chain of a full and 7 incrementals", merge_time, entries_after=len(merged))
    rows.append({"part": "synthetic", "what": "peak RSS of this process (MiB)",
                 "value": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)})
    print(f"  peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=lambda text: _pipeline().parse_size(text), default=None,
                        help="data set size for part 1 (default 1G; 0 skips part 1)")
    parser.add_argument("--skip-tree", action="store_true", help="skip part 1")
    parser.add_argument("--entries", type=int, default=1_000_000, help="synthetic entries for part 2 (0 skips it)")
    parser.add_argument("--workdir", type=Path, help="where the data set goes (default: a temp dir, removed)")
    parser.add_argument("--keep-data", action="store_true", help="keep the data set in --workdir for the next run")
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.size is None:
        args.size = 1_000_000_000
    temp = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="bakthat-bench-index-")) if temp else args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    print(f"bakthat index benchmark (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    try:
        if not args.skip_tree:
            bench_tree(args, workdir, rows)
        if args.entries:
            bench_synthetic(args, rows)
    finally:
        if temp or not args.keep_data:
            shutil.rmtree(workdir / "benchdata", ignore_errors=True)
            (workdir / "dataset.json").unlink(missing_ok=True)
        if temp:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
