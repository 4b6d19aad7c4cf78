#!/usr/bin/env python3
"""Measure what plugin file filters (bakthat.file_filters) cost the tar walk.

Creates (once, reused) a deterministic set of --files small files (default 20,000,
1-4 KB, 40 per directory in nested directories: the per-entry cost dominates, the
worst case for a per-entry hook), then times ``tarwriter.write_tar`` of the set into
a discarding sink, in one process, interleaved round-robin, best of --reps:

  before      the tar writer of --before (default: the commit before file filters),
              loaded from git as a module: the walk as it was, with no filter code at all
  no filter   the current tar writer, no filter registered (must cost nothing)
  trivial     the current tar writer with one registered filter returning None

No compression and no encryption: only the walk and the tar encoding, so the filter's
share is as large as it can be.  Reports wall and CPU seconds and the ratios to
``before``.

Usage: python benchmarks/bench_file_filter.py [--files 20000] [--reps 7] [--before REV]
                                              [--workdir DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bakthat import file_filters, tarwriter  # noqa: E402


class Discard:
    """A sink that counts and drops what is written."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data) -> int:
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def make_set(base: Path, files: int, seed: int = 12) -> Path:
    root = base / f"filterset-{files}"
    marker = base / f"filterset-{files}.done"
    if marker.exists():
        return root
    rng = random.Random(seed)
    for index in range(files):
        directory = root / f"d{index // 1600:02d}" / f"e{index // 40:04d}"
        directory.mkdir(parents=True, exist_ok=True)
        size = rng.randint(1024, 4096)
        (directory / f"f{index:05d}.txt").write_bytes(rng.randbytes(size // 2).hex().encode()[:size])
    marker.write_text("ok")
    return root


def load_before(revision: str):
    """Return the tar writer module of ``revision``, loaded from git under another name."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:bakthat/tarwriter.py"],
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp(prefix="bench-filter-")) / "tarwriter_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("tarwriter_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["tarwriter_before"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def once(module, root: Path) -> tuple[float, float, int, int]:
    sink = Discard()
    wall, cpu = time.perf_counter(), time.process_time()
    stats = module.write_tar(str(root), "set", sink)
    return time.perf_counter() - wall, time.process_time() - cpu, stats.files, sink.size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--before", default=None, help="git revision of the tar writer without filters")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bakthat-bench-filter")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    root = make_set(args.workdir, args.files)
    before_rev = args.before or subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%H^", "--", "bakthat/file_filters.py"],
        capture_output=True, text=True, check=True).stdout.strip() or "HEAD"
    before = load_before(before_rev)
    if hasattr(before, "file_filters"):
        print(f"warning: {before_rev} already has file filters", file=sys.stderr)

    def trivial(path, st):
        return None

    modes = {
        "before": lambda: once(before, root),
        "no filter": lambda: once(tarwriter, root),
    }

    def with_trivial():
        file_filters.register("trivial", trivial)
        try:
            return once(tarwriter, root)
        finally:
            file_filters.unregister("trivial")

    modes["trivial filter"] = with_trivial
    for run in modes.values():  # warm the page cache and the imports
        run()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in modes}
    counts = {}
    for _ in range(args.reps):
        for name, run in modes.items():
            wall, cpu, entries, size = run()
            results[name].append((wall, cpu))
            counts[name] = (entries, size)
    if len({entries for entries, _ in counts.values()}) != 1:
        raise SystemExit(f"the modes archived different entry counts: {counts}")
    print(f"bench_file_filter: {args.files} files ({counts['no filter'][0]} entries, "
          f"{counts['no filter'][1] / 1e6:.1f} MB of tar), best of {args.reps}, interleaved; before = {before_rev}")
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load {os.getloadavg()[0]:.2f}")
    base_wall = min(wall for wall, _ in results["before"])
    base_cpu = min(cpu for _, cpu in results["before"])
    report = {"files": args.files, "reps": args.reps, "before": before_rev, "modes": {}}
    for name, values in results.items():
        wall = min(w for w, _ in values)
        cpu = min(c for _, c in values)
        median = sorted(w for w, _ in values)[len(values) // 2]
        per_entry_us = (cpu - base_cpu) / args.files * 1e6
        print(f"  {name:<15} wall {wall:6.3f} s (median {median:6.3f})  cpu {cpu:6.3f} s  "
              f"wall x{wall / base_wall:5.3f}  cpu x{cpu / base_cpu:5.3f}  {per_entry_us:+6.2f} us/entry cpu")
        report["modes"][name] = {"wall_best": wall, "wall_median": median, "cpu_best": cpu,
                                 "wall_ratio": wall / base_wall, "cpu_ratio": cpu / base_cpu}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
