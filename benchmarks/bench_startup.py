#!/usr/bin/env python3
"""Measure how fast the ``bakthat`` command starts: wall time with hyperfine, CPU seconds, imports.

Issue 15's targets: ``bakthat --help`` at most 0.15 s and ``bakthat show`` on a catalog
of 1,000 rows at most 0.3 s (medians).  Each command runs as a fresh ``python -m
bakthat`` process on a temporary HOME holding a small ``~/.bakthat.yml`` and a catalog
of ``--rows`` backups:

  python -c pass                  (the interpreter alone: the floor)
  python -c "import bakthat"      (the package import)
  bakthat --version
  bakthat --help
  bakthat show                    (human output)
  bakthat show --json

For each it prints the median wall time (hyperfine, after ``--warmup`` runs; the
built-in loop if hyperfine is not installed), the median CPU seconds (user + system of
the child, from ``wait4``, measured in a loop of its own) and the load average before
and after, since the machine this runs on is usually shared.

Bytecode is cached in a temporary ``PYTHONPYCACHEPREFIX`` (and
``PYTHONDONTWRITEBYTECODE`` dropped), as for an installed package: without it every
run compiles bakthat's sources, about 0.1 s of CPU that no user pays.

``--root DIR`` measures another checkout (``git worktree add --detach DIR COMMIT``); it
runs from a directory of its own so that the current repository is not imported
instead.  ``--imports`` prints which heavy third-party modules each command imports and
the slowest imports of ``show``.

Usage:  python benchmarks/bench_startup.py [--runs 30] [--warmup 3] [--rows 1000] [--root DIR] [--json OUT] [--imports]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Modules the start-up of ``--help`` and ``show`` should not need.
HEAVY = ("boto3", "botocore", "swiftclient", "cryptography", "psycopg2", "zstandard", "yaml", "peewee")
CONFIG = "default:\n  compression: zstd\n  exclude: ['*.tmp']\n"


def populate(home: Path, rows: int, env: dict[str, str]) -> None:
    """Create a config file and a catalog with ``rows`` backups (rows only; show never reads the store)."""
    (home / ".bakthat.yml").write_text(CONFIG)
    code = f"""
import time
from bakthat import models
models.bind({str(home / '.bakthat.sqlite')!r})
now = int(time.time())
with models.database.atomic():
    for i in range({rows}):
        models.Backups.create(
            backend="local", backend_hash="0" * 128, backup_date=now - i * 3600, filename=f"name{{i % 7}}",
            is_deleted=False, last_updated=now, metadata={{"is_enc": False}}, size=1000 * (i + 1),
            stored_filename=f"name{{i % 7}}.{{i:014d}}.tar.zst", tags="daily db", sha256="0" * 64,
            compression="zstd", encryption="none", host="bench", profile="default",
        )
"""
    subprocess.run([sys.executable, "-c", code], env=env, cwd=home, check=True)


def environment(home: Path, root: Path, pycache: Path) -> dict[str, str]:
    drop = ("BAKTHAT_", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH")
    env = {key: value for key, value in os.environ.items() if not key.startswith(drop)}
    env.update(HOME=str(home), PYTHONPATH=str(root), PYTHONPYCACHEPREFIX=str(pycache))
    return env


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def cpu_runs(command: list[str], env: dict[str, str], cwd: Path, runs: int, warmup: int) -> list[float]:
    """Run ``command`` warmup + runs times; return the user + system CPU seconds of each measured run."""
    seconds = []
    for index in range(warmup + runs):
        with tempfile.TemporaryFile() as stderr:
            process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr)
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            if process.returncode != 0:
                stderr.seek(0)
                raise SystemExit(f"{' '.join(command)} failed ({process.returncode}): {stderr.read().decode()[-500:]}")
        if index >= warmup:
            seconds.append(usage.ru_utime + usage.ru_stime)
    return seconds


def wall_runs(command: list[str], env: dict[str, str], cwd: Path, runs: int, warmup: int, out: Path) -> dict[str, float]:
    """Return hyperfine's median, min and max wall seconds (the built-in loop without hyperfine)."""
    if shutil.which("hyperfine"):
        subprocess.run(
            ["hyperfine", "--style", "none", "--shell", "none", "--warmup", str(warmup), "--runs", str(runs),
             "--export-json", str(out), subprocess.list2cmdline(command)],
            env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
        )
        result = json.loads(out.read_text())["results"][0]
        return {"median": result["median"], "min": result["min"], "max": result["max"], "tool": "hyperfine"}
    times = []
    for index in range(warmup + runs):
        start = time.perf_counter()
        subprocess.run(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, check=True)
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "tool": "loop"}


def imported(command: list[str], env: dict[str, str], cwd: Path) -> tuple[list[str], list[tuple[int, str]]]:
    """Return the HEAVY modules ``command`` imports and its ten slowest top-level imports (µs, name).

    The modules are those in ``sys.modules`` at exit (``-X importtime`` also lists the
    imports that failed, such as peewee's attempt at psycopg2 when it is hidden).
    """
    result = subprocess.run([command[0], "-X", "importtime", *command[1:]], env=env, cwd=cwd, capture_output=True, text=True)
    slowest = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if cumulative.strip().isdigit() and not name.startswith("  "):
            slowest.append((int(cumulative), name.strip()))
    if command[1:3] == ["-m", "bakthat"]:
        code = ("import atexit, json, sys; atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr));"
                "from bakthat.cli import main; sys.exit(main(sys.argv[1:]))")
        run = [command[0], "-c", code, *command[3:]]
    else:
        run = [command[0], "-c", command[2] + "; import json, sys; print(json.dumps(sorted(sys.modules)), file=sys.stderr)"]
    modules = json.loads(subprocess.run(run, env=env, cwd=cwd, capture_output=True, text=True).stderr.splitlines()[-1])
    return [module for module in HEAVY if module in modules], sorted(slowest, reverse=True)[:10]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to measure (default: this one)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--imports", action="store_true", help="print the heavy modules each command imports")
    options = parser.parse_args()
    root = options.root.resolve()

    with tempfile.TemporaryDirectory(prefix="bakthat-bench-") as temp:
        home, pycache, cwd = Path(temp) / "home", Path(temp) / "pycache", Path(temp) / "cwd"
        for directory in (home, pycache, cwd):
            directory.mkdir()
        env = environment(home, root, pycache)
        found = subprocess.run([sys.executable, "-c", "import bakthat; print(bakthat.__file__)"],
                               env=env, cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
        if not Path(found).resolve().is_relative_to(root):
            raise SystemExit(f"bakthat is imported from {found}, not from {root}")
        populate(home, options.rows, env)
        bakthat = [sys.executable, "-m", "bakthat"]
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import bakthat'": [sys.executable, "-c", "import bakthat"],
            "bakthat --version": [*bakthat, "--version"],
            "bakthat --help": [*bakthat, "--help"],
            f"bakthat show ({options.rows} rows)": [*bakthat, "show"],
            f"bakthat show --json ({options.rows} rows)": [*bakthat, "show", "--json"],
        }
        results = {}
        for label, command in cases.items():
            before = load()
            wall = wall_runs(command, env, cwd, options.runs, options.warmup, Path(temp) / "hyperfine.json")
            cpu = cpu_runs(command, env, cwd, options.runs, 1)
            heavy, slowest = imported(command, env, cwd) if options.imports else ([], [])
            results[label] = {**wall, "cpu_median": statistics.median(cpu), "cpu_min": min(cpu),
                              "load_before": before, "load_after": load(), "heavy_imports": heavy, "slowest": slowest}

    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    width = max(len(label) for label in results)
    print(f"bakthat at {commit or root}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"{options.runs} runs each after {options.warmup} warm-up runs")
    print(f"{'command'.ljust(width)}  {'median':>8}  {'min':>8}  {'CPU med':>8}  {'CPU min':>8}  load average (1/5/15 min) before -> after")
    for label, figures in results.items():
        print(f"{label.ljust(width)}  {figures['median'] * 1000:6.1f}ms  {figures['min'] * 1000:6.1f}ms  "
              f"{figures['cpu_median'] * 1000:6.1f}ms  {figures['cpu_min'] * 1000:6.1f}ms  "
              f"{figures['load_before']} -> {figures['load_after']}")
    if options.imports:
        print("\nheavy modules imported:")
        for label, figures in results.items():
            print(f"  {label.ljust(width)}  {', '.join(figures['heavy_imports']) or '-'}")
        show = results[f"bakthat show ({options.rows} rows)"]
        print("\nslowest top-level imports of bakthat show (cumulative, one run):")
        for micro, name in show["slowest"]:
            print(f"  {micro / 1000:7.1f}ms  {name}")
    if options.json:
        Path(options.json).write_text(json.dumps({"commit": commit, "python": sys.version.split()[0], "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
