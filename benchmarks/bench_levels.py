#!/usr/bin/env python3
"""Benchmark backup levels end to end (issue 13): bakthat's CLI beside restic, one run.

On bench_pipeline.py's data set (``--size``, 1 GB by default: about 23,000 files), each
command a separate subprocess, bakthat as ``python -m bakthat`` with its own HOME,
catalog and local store in the work directory:

1. a full backup of the tree (bakthat ``--level full``; ``restic backup`` into a new
   repository);
2. the **unchanged re-run**: ``bakthat backup --level auto`` (the local index cache
   holds the last state) against ``restic backup`` of the same unchanged tree;
3. **1 % of the files changed** (a few bytes appended to each, so size, mtime and
   ctime change): the incremental against ``restic backup``, and the bytes each
   stores (bakthat: the new archive, index and manifest; restic: the repository's
   growth);
4. ``bakthat check NAME --read-data`` of the full backup against ``restic check
   --read-data`` (restic reads its whole repository: the full plus the small
   increments);
5. the restore of a chain of a full and 7 incrementals (7 rounds of 1 % changes)
   against the restore of one full backup of the same final tree.

Both tools run unencrypted-equivalent where they can: bakthat with ``--prompt no`` (no
encryption) and, as a second row, with a password (age scrypt; its key derivation is
part of each run); restic always encrypts.  Timings are the best of ``--reps`` runs;
the ratios the issue sets as targets are printed at the end.

Usage:  python benchmarks/bench_levels.py [--size 1G] [--workdir DIR] [--keep-data] [--reps 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def _pipeline() -> Any:
    if "bench_pipeline" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_pipeline", Path(__file__).with_name("bench_pipeline.py"))
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules["bench_pipeline"] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules["bench_pipeline"]


class Runner:
    """Runs commands with a fixed environment and records wall times."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        home = workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        (home / ".bakthat.yml").write_text(
            "default:\n"
            f"  local_path: {workdir / 'store'}\n"
            f"  database: {workdir / 'catalog.sqlite'}\n"
            "  level: auto\n"
            "  max_chain: 100\n"
        )
        self.env = {
            **os.environ,
            "HOME": str(home),
            "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "RESTIC_PASSWORD": "bench",
            "RESTIC_REPOSITORY": str(workdir / "restic-repo"),
            "XDG_CACHE_HOME": str(home / ".cache"),
        }
        self.env.pop("BAKTHAT_PASSWORD", None)
        # bakthat's modules are compiled once (a run that compiles them each time measures
        # the compiler, not bakthat).
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.cpu: dict[str, float] = {}

    def run(self, argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> tuple[float, str]:
        """Run a command; return (wall seconds, stdout).  Its CPU time (user + system) is
        kept in ``self.last_cpu``: on a shared machine the steadier figure."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(argv, cwd=cwd, env=env or self.env, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.last_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if result.returncode not in (0, 3):
            raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
        return elapsed, result.stdout

    def bakthat(self, *args: str, password: str | None = None) -> tuple[float, str]:
        env = dict(self.env)
        if password:
            env["BAKTHAT_PASSWORD"] = password
        return self.run([sys.executable, "-m", "bakthat", *args], env=env)


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


CHANGED: set[str] = set()


def change_files(root: Path, files: dict[str, int], rng: random.Random) -> list[str]:
    chosen = rng.sample(sorted(files), max(1, len(files) // 100))
    CHANGED.update(chosen)
    for relative in chosen:
        with open(root / relative, "ab") as handle:
            handle.write(os.urandom(16))
    return chosen


def stored_bytes(store: Path, stored_filename: str) -> int:
    return sum(p.stat().st_size for p in store.iterdir() if p.name.startswith(stored_filename))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1G")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir")
    parser.add_argument("--keep-data", action="store_true")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    pipeline = _pipeline()
    size = pipeline.parse_size(args.size)
    base = Path(args.workdir or tempfile.mkdtemp(prefix="bench-levels-"))
    base.mkdir(parents=True, exist_ok=True)
    pipeline._build_vocab(args.seed)
    with multiprocessing.get_context("fork").Pool() as pool:
        data = pipeline.make_dataset(base, size, args.seed, pool)
    root = data.root
    work = base / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    runner = Runner(work)
    store = work / "store"
    has_restic = shutil.which("restic") is not None
    rows: list[dict[str, Any]] = []
    rng = random.Random(args.seed)
    print(f"data set: {len(data.files)} files, {len(data.dirs)} directories, {size / 1e9:.2f} GB; "
          f"commit {subprocess.run(['git', '-C', str(REPO_ROOT), 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()}")

    cpu_of: dict[str, float] = {}

    def add(what: str, seconds: float, cpu: float | None = None, **extra: Any) -> None:
        cpu = runner.last_cpu if cpu is None else cpu
        cpu_of[what] = cpu
        rows.append({"what": what, "wall": round(seconds, 3), "cpu": round(cpu, 3), **extra})
        details = "  ".join(f"{key}={value}" for key, value in extra.items())
        print(f"  {what:<52} {seconds:8.3f} s wall {cpu:8.3f} s CPU  {details}", flush=True)

    best_cpu: list[float] = []

    def best(make: Any) -> float:
        walls, cpus = [], []
        for _ in range(args.reps):
            walls.append(make())
            cpus.append(runner.last_cpu)
        best_cpu.append(min(cpus))
        return min(walls)

    # 1. full backups
    seconds, out = runner.bakthat("backup", str(root), "--level", "full", "--prompt", "no", "--json")
    full = json.loads(out)
    add("bakthat backup --level full", seconds, stored=stored_bytes(store, full["stored_filename"]))
    if has_restic:
        runner.run(["restic", "init"])
        seconds, _ = runner.run(["restic", "backup", root.name], cwd=root.parent)
        add("restic backup (first)", seconds, repo=du(work / "restic-repo"))

    # 2. unchanged re-runs
    unchanged = best(lambda: runner.bakthat("backup", str(root), "--prompt", "no")[0])
    add("bakthat backup, unchanged (level auto)", unchanged, best_cpu[-1])
    restic_unchanged = best(lambda: runner.run(["restic", "backup", root.name], cwd=root.parent)[0]) if has_restic else None
    if restic_unchanged is not None:
        add("restic backup, unchanged", restic_unchanged, best_cpu[-1])

    # 3. 1 % changed: each rep changes another 1 % and runs both tools
    bak_times, restic_times, bak_bytes, restic_bytes, bak_cpu, restic_cpu = [], [], [], [], [], []
    for _ in range(args.reps):
        change_files(root, data.files, rng)
        seconds, out = runner.bakthat("backup", str(root), "--prompt", "no", "--json")
        row = json.loads(out)
        bak_times.append(seconds)
        bak_cpu.append(runner.last_cpu)
        bak_bytes.append(stored_bytes(store, row["stored_filename"]))
        if has_restic:
            before = du(work / "restic-repo")
            seconds, _ = runner.run(["restic", "backup", root.name], cwd=root.parent)
            restic_times.append(seconds)
            restic_cpu.append(runner.last_cpu)
            restic_bytes.append(du(work / "restic-repo") - before)
    add("bakthat backup, 1 % changed (incr)", min(bak_times), min(bak_cpu), stored=min(bak_bytes), level=row["level"])
    if has_restic:
        add("restic backup, 1 % changed", min(restic_times), min(restic_cpu), repo_growth=min(restic_bytes))

    # 4. check --read-data
    check = best(lambda: runner.bakthat("check", full["stored_filename"], "--read-data")[0])
    add("bakthat check FULL --read-data", check, best_cpu[-1], bytes=full["size"])
    restic_check = best(lambda: runner.run(["restic", "check", "--read-data"])[0]) if has_restic else None
    if restic_check is not None:
        add("restic check --read-data (whole repository)", restic_check, best_cpu[-1], bytes=du(work / "restic-repo"))

    # 5. chain of a full and 7 incrementals against one full of the final tree
    runner.bakthat("backup", str(root), "--level", "full", "--prompt", "no")
    for _ in range(7):
        change_files(root, data.files, rng)
        runner.bakthat("backup", str(root), "--level", "incr", "--prompt", "no")
    runner.bakthat("backup", str(root), "--level", "full", "--prompt", "no", "--name", "finalfull")

    def restore(name: str) -> float:
        target = work / "restore"
        shutil.rmtree(target, ignore_errors=True)
        seconds = runner.bakthat("restore", name, "--target", str(target))[0]
        shutil.rmtree(target, ignore_errors=True)
        return seconds

    chain = best(lambda: restore(root.name))
    add("bakthat restore of a full + 7 incrementals", chain, best_cpu[-1])
    single = best(lambda: restore("finalfull"))
    add("bakthat restore of one full of the same tree", single, best_cpu[-1])

    # encrypted: the same unchanged re-run and 1 % change with a password
    runner.bakthat("backup", str(root), "--level", "full", "--name", "enc", password="bench")
    enc_unchanged = best(lambda: runner.bakthat("backup", str(root), "--name", "enc", password="bench")[0])
    add("bakthat+age backup, unchanged (level auto)", enc_unchanged, best_cpu[-1], note="two scrypt derivations")

    print("\ntargets (wall; CPU ratios in brackets):")
    print(f"  unchanged re-run {unchanged:.3f} s (target <= 0.5 s)", end="")
    print(f", {unchanged / restic_unchanged:.2f}x restic (target <= 0.3x) "
          f"[{cpu_of['bakthat backup, unchanged (level auto)'] / cpu_of['restic backup, unchanged']:.2f}x]"
          if restic_unchanged else "")
    print(f"  1 % changed {min(bak_times):.3f} s (target <= 0.7 s)", end="")
    if has_restic:
        print(f", {min(bak_times) / min(restic_times):.2f}x restic (target <= 0.5x) "
              f"[{min(bak_cpu) / min(restic_cpu):.2f}x], stored "
              f"{min(bak_bytes) / max(1, min(restic_bytes)):.2f}x restic's growth (target <= 1.5x)")
    else:
        print()
    if restic_check:
        print(f"  check --read-data {full['size'] / check / 1e6:.0f} MB/s vs restic "
              f"{du(work / 'restic-repo') / restic_check / 1e6:.0f} MB/s (target: at least restic's)")
    print(f"  restore of the chain {chain / single:.2f}x one full (target <= 1.3x) "
          f"[{cpu_of['bakthat restore of a full + 7 incrementals'] / cpu_of['bakthat restore of one full of the same tree']:.2f}x]")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    for relative in CHANGED:  # the data set as generated, for a later --keep-data run
        with open(root / relative, "r+b") as handle:
            handle.truncate(data.files[relative])
    shutil.rmtree(work, ignore_errors=True)
    if not args.keep_data and not args.workdir:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
