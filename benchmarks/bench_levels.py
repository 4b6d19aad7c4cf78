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
the ratios the issue sets as targets are printed at the end.  Each row gives the wall
time, the CPU time (user + system of the command and its children: on a shared machine
the steadier figure) and the 1-minute load average when it ran.

With ``--base-root DIR`` every bakthat row also runs with the bakthat of that checkout
(a worktree of the old commit), in a home, store and catalog of its own, interleaved
with the current one on the same tree: before and after in one run (the chain restore
reads the current side's store and catalog with each side's code).  Successive
backups of one name wait for the next second (a second backup in the same second
would be stamped a second later and wait for it before writing its row).
``--skip-restore`` leaves out step 5.

Usage:  python benchmarks/bench_levels.py [--size 1G] [--workdir DIR] [--keep-data] [--reps 3] [--json OUT]
                                          [--base-root DIR] [--skip-restore]
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

    def __init__(self, workdir: Path, root: Path = REPO_ROOT):
        self.workdir = workdir
        self.root = root
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
            "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "RESTIC_PASSWORD": "bench",
            "RESTIC_REPOSITORY": str(workdir / "restic-repo"),
            "XDG_CACHE_HOME": str(home / ".cache"),
        }
        self.env.pop("BAKTHAT_PASSWORD", None)
        # bakthat's modules are compiled once (a run that compiles them each time measures
        # the compiler, not bakthat).
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.cpu: dict[str, float] = {}
        self.last_load = 0.0
        self.last_backup = 0.0

    def run(self, argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> tuple[float, str]:
        """Run a command; return (wall seconds, stdout).  Its CPU time (user + system) is
        kept in ``self.last_cpu``: on a shared machine the steadier figure."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.last_load = os.getloadavg()[0]
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
        if args[0] == "backup":
            # A backup in the same second as the last is stamped a second later and waits
            # for that second before writing its row: not what a nightly run pays.
            time.sleep(max(0.0, 1.05 - (time.time() % 1.0)) if int(time.time()) == int(self.last_backup) else 0.0)
        # From a directory of its own: ``python -m`` puts the working directory first on sys.path.
        try:
            return self.run([sys.executable, "-m", "bakthat", *args], cwd=self.workdir, env=env)
        finally:
            if args[0] == "backup":
                self.last_backup = time.time()


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
    parser.add_argument("--base-root", type=Path, help="also run the bakthat of this checkout (before/after)")
    parser.add_argument("--skip-restore", action="store_true", help="leave out the restore of a chain (step 5)")
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
    sides: dict[str, Runner] = {"": runner}
    if args.base_root:
        (work / "base").mkdir()
        sides["@base"] = Runner(work / "base", args.base_root.resolve())
    has_restic = shutil.which("restic") is not None
    rows: list[dict[str, Any]] = []
    rng = random.Random(args.seed)

    def commit(where: Path) -> str:
        return subprocess.run(["git", "-C", str(where), "log", "-1", "--format=%h %s"], capture_output=True,
                              text=True).stdout.strip()[:90]

    print(f"data set: {len(data.files)} files, {len(data.dirs)} directories, {size / 1e9:.2f} GB; "
          f"commit {commit(REPO_ROOT)}")
    if args.base_root:
        print(f"  @base: {args.base_root} ({commit(args.base_root)})")

    cpu_of: dict[str, float] = {}
    wall_of: dict[str, float] = {}

    def add(what: str, seconds: float, cpu: float, load: float, **extra: Any) -> None:
        cpu_of[what], wall_of[what] = cpu, seconds
        rows.append({"what": what, "wall": round(seconds, 3), "cpu": round(cpu, 3), "load": round(load, 1), **extra})
        details = "  ".join(f"{key}={value}" for key, value in extra.items())
        print(f"  {what:<58} {seconds:8.3f} s wall {cpu:8.3f} s CPU  load {load:4.1f}  {details}", flush=True)

    def best(run: Runner, make: Any) -> tuple[float, float, float]:
        """Run ``make`` --reps times; return (best wall, best CPU, mean load)."""
        walls, cpus, loads = [], [], []
        for _ in range(args.reps):
            walls.append(make())
            cpus.append(run.last_cpu)
            loads.append(run.last_load)
        return min(walls), min(cpus), sum(loads) / len(loads)

    # 1. full backups
    full: dict[str, Any] = {}
    for tag, side in sides.items():
        store = side.workdir / "store"
        seconds, out = side.bakthat("backup", str(root), "--level", "full", "--prompt", "no", "--json")
        full[tag] = json.loads(out)
        add(f"bakthat{tag} backup --level full", seconds, side.last_cpu, side.last_load,
            stored=stored_bytes(store, full[tag]["stored_filename"]))
    if has_restic:
        runner.run(["restic", "init"])
        seconds, _ = runner.run(["restic", "backup", root.name], cwd=root.parent)
        add("restic backup (first)", seconds, runner.last_cpu, runner.last_load, repo=du(work / "restic-repo"))

    # 2. unchanged re-runs
    for tag, side in sides.items():
        add(f"bakthat{tag} backup, unchanged (level auto)",
            *best(side, lambda side=side: side.bakthat("backup", str(root), "--prompt", "no")[0]))
    if has_restic:
        add("restic backup, unchanged", *best(runner, lambda: runner.run(["restic", "backup", root.name], cwd=root.parent)[0]))

    # 3. 1 % changed: each rep changes another 1 % and runs every side and restic
    measured: dict[str, list[tuple[float, float, float, int]]] = {}
    for _ in range(args.reps):
        change_files(root, data.files, rng)
        for tag, side in sides.items():
            seconds, out = side.bakthat("backup", str(root), "--prompt", "no", "--json")
            row = json.loads(out)
            stored = stored_bytes(side.workdir / "store", row["stored_filename"])
            measured.setdefault(tag, []).append((seconds, side.last_cpu, side.last_load, stored))
        if has_restic:
            before = du(work / "restic-repo")
            seconds, _ = runner.run(["restic", "backup", root.name], cwd=root.parent)
            measured.setdefault("restic", []).append((seconds, runner.last_cpu, runner.last_load,
                                                      du(work / "restic-repo") - before))
    for tag, runs in measured.items():
        what = "restic backup, 1 % changed" if tag == "restic" else f"bakthat{tag} backup, 1 % changed (incr)"
        add(what, min(r[0] for r in runs), min(r[1] for r in runs), sum(r[2] for r in runs) / len(runs),
            **{"repo_growth" if tag == "restic" else "stored": min(r[3] for r in runs)})

    # 4. check --read-data of the full backup
    for tag, side in sides.items():
        name = full[tag]["stored_filename"]
        add(f"bakthat{tag} check FULL --read-data",
            *best(side, lambda side=side, name=name: side.bakthat("check", name, "--read-data")[0]),
            bytes=full[tag]["size"])
    if has_restic:
        add("restic check --read-data (whole repository)",
            *best(runner, lambda: runner.run(["restic", "check", "--read-data"])[0]), bytes=du(work / "restic-repo"))

    # encrypted: the same unchanged re-run with a password
    for tag, side in sides.items():
        side.bakthat("backup", str(root), "--level", "full", "--name", "enc", password="bench")
        add(f"bakthat{tag}+age backup, unchanged (level auto)",
            *best(side, lambda side=side: side.bakthat("backup", str(root), "--name", "enc", password="bench")[0]))

    # 5. chain of a full and 7 incrementals against one full of the final tree
    if not args.skip_restore:
        runner.bakthat("backup", str(root), "--level", "full", "--prompt", "no")
        for _ in range(7):
            change_files(root, data.files, rng)
            runner.bakthat("backup", str(root), "--level", "incr", "--prompt", "no")
        runner.bakthat("backup", str(root), "--level", "full", "--prompt", "no", "--name", "finalfull")

        # Each restore goes into a directory of its own, deleted only when all are done: on
        # ext4, creating files right after a bulk deletion is several times slower (the
        # freed inodes are skipped for a minute; see bench_pipeline.settle), which made the
        # restores measured right after deleting the previous one's tree meaningless.
        targets: list[Path] = []

        def restore(name: str, code: Runner = runner) -> float:
            target = work / f"restore-{len(targets)}"
            targets.append(target)
            # The same store and catalog; ``code`` chooses the bakthat that reads them.
            env = {**runner.env, "PYTHONPATH": code.env["PYTHONPATH"]}
            return runner.run([sys.executable, "-m", "bakthat", "restore", name, "--target", str(target)],
                              cwd=runner.workdir, env=env)[0]

        pipeline.settle()  # untimed: nothing deleted in the last minute, dirty pages flushed
        walls: dict[str, list[tuple[float, float, float]]] = {}
        for _ in range(args.reps):  # interleaved, so drift hits every row alike
            for tag, side in sides.items():
                walls.setdefault(f"bakthat{tag} restore of a full + 7 incrementals", []).append(
                    (restore(root.name, side), runner.last_cpu, runner.last_load))
            walls.setdefault("bakthat restore of one full of the same tree", []).append(
                (restore("finalfull"), runner.last_cpu, runner.last_load))
        for label, runs in walls.items():
            add(label, min(run[0] for run in runs), min(run[1] for run in runs), sum(run[2] for run in runs) / len(runs))
        for target in targets:
            shutil.rmtree(target, ignore_errors=True)

    print("\ntargets (wall; CPU ratios in brackets):")
    for tag in sides:
        unchanged = wall_of[f"bakthat{tag} backup, unchanged (level auto)"]
        changed = wall_of[f"bakthat{tag} backup, 1 % changed (incr)"]
        check = wall_of[f"bakthat{tag} check FULL --read-data"]
        print(f" bakthat{tag or ' (this checkout)'}:")
        print(f"  unchanged re-run {unchanged:.3f} s (target <= 0.5 s)", end="")
        if has_restic:
            print(f", {unchanged / wall_of['restic backup, unchanged']:.2f}x restic (target <= 0.3x) "
                  f"[{cpu_of[f'bakthat{tag} backup, unchanged (level auto)'] / cpu_of['restic backup, unchanged']:.2f}x]")
        else:
            print()
        print(f"  1 % changed {changed:.3f} s (target <= 0.7 s)", end="")
        if has_restic:
            restic_changed = min(r[0] for r in measured["restic"])
            print(f", {changed / restic_changed:.2f}x restic (target <= 0.5x) "
                  f"[{cpu_of[f'bakthat{tag} backup, 1 % changed (incr)'] / cpu_of['restic backup, 1 % changed']:.2f}x], "
                  f"stored {min(r[3] for r in measured[tag]) / max(1, min(r[3] for r in measured['restic'])):.2f}x "
                  "restic's growth (target <= 1.5x)")
        else:
            print()
        if has_restic:
            restic_check = wall_of["restic check --read-data (whole repository)"]
            print(f"  check --read-data {full[tag]['size'] / check / 1e6:.0f} MB/s vs restic "
                  f"{du(work / 'restic-repo') / restic_check / 1e6:.0f} MB/s (target: at least restic's)")
    if not args.skip_restore:
        single = "bakthat restore of one full of the same tree"
        for tag in sides:
            chain = f"bakthat{tag} restore of a full + 7 incrementals"
            print(f"  restore of the chain{' (' + tag + ')' if tag else ''} {wall_of[chain] / wall_of[single]:.2f}x "
                  f"one full (target <= 1.3x) [{cpu_of[chain] / cpu_of[single]:.2f}x]")
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
