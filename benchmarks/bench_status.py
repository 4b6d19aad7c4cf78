#!/usr/bin/env python3
"""Measure what publishing progress (bakthat.status) costs a backup of many small files.

Creates (once, reused) the 20,000-file set of bench_file_filter.py (1-4 KB files, 40
per directory: the per-file cost dominates, the worst case for per-file progress), then
runs ``bakthat backup SET --prompt no`` as a user would, each in its own process with
its own HOME (profile: ``compression: none``, so the walk's share of the CPU is as
large as it can be), interleaved round-robin, --reps times:

  off   progress not published: $BAKTHAT_STATUS_DIR names a regular file, so the
        publisher cannot start (the backup logs that and goes on)
  on    progress published: live files and bytes done, the ETA from the previous
        backup of the set (the first rep of ``on`` has none yet)

Reports each variant's median user+system CPU seconds (the child's rusage, its threads
included), median wall seconds, and the ratio on/off.

Usage: python benchmarks/bench_status.py [--files 20000] [--reps 5] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_file_filter import make_set  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "bakthat-bench")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    root = make_set(args.workdir, args.files)
    scratch = Path(tempfile.mkdtemp(prefix="bench-status-", dir=args.workdir))
    results: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    homes = {}
    for name in results:
        home = scratch / f"home-{name}"
        home.mkdir()
        (home / ".bakthat.yml").write_text("default:\n  compression: none\n")
        homes[name] = home
    blocker = scratch / "not-a-directory"
    blocker.write_text("")
    status = scratch / "status"
    for _ in range(args.reps):
        for name in results:
            results[name].append(timed(root, homes[name], blocker if name == "off" else status))
    print(f"bench_status: {args.files} files, {args.reps} reps, compression none, load {os.getloadavg()[0]:.2f}")
    cpu = {name: statistics.median(item[0] for item in values) for name, values in results.items()}
    for name, values in results.items():
        print(f"  {name:<4} CPU median {cpu[name]:.2f} s (all: {', '.join(f'{item[0]:.2f}' for item in values)}); "
              f"wall median {statistics.median(item[1] for item in values):.2f} s "
              f"(all: {', '.join(f'{item[1]:.2f}' for item in values)})")
    print(f"  on/off CPU ratio {cpu['on'] / cpu['off']:.3f}")


def timed(root: Path, home: Path, status: Path) -> tuple[float, float]:
    """Back up ``root``; return (user+system CPU seconds, wall seconds) of the child."""
    env = {**os.environ, "HOME": str(home), "BAKTHAT_STATUS_DIR": str(status)}
    env.pop("XDG_RUNTIME_DIR", None)
    wall = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "bakthat", "backup", str(root), "--prompt", "no"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = child.stderr.read()
    _, code, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - wall
    if code != 0:
        raise SystemExit(f"backup failed: {err.decode(errors='replace')}")
    return usage.ru_utime + usage.ru_stime, elapsed


if __name__ == "__main__":
    main()
