#!/usr/bin/env python3
"""Measure how fast the ``bakthat`` command starts (hyperfine-style, no dependency).

Runs each command ``--runs`` times (after ``--warmup`` unmeasured runs) as a fresh
``python -m bakthat`` process on a temporary HOME whose catalog holds ``--rows``
backups, and reports the median, min and max wall time:

  python -c pass                  (the interpreter alone: the floor)
  python -c "import bakthat"      (the package import)
  bakthat --version
  bakthat --help
  bakthat show                    (100 rows by default, human output)
  bakthat show --json

With ``--imports`` it also prints the ten slowest imports of ``bakthat --help``
(``python -X importtime``).  With ``--limit SECONDS`` it exits 1 if the median of
``--help`` or ``show`` is above it (the issue asks for well under 0.5 s).

Usage:  python benchmarks/bench_startup.py [--runs 20] [--rows 100] [--json OUT] [--imports] [--limit 0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def populate(home: Path, rows: int) -> None:
    """Create a catalog with ``rows`` backups (rows only; show never reads the store)."""
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
    subprocess.run([sys.executable, "-c", code], env=environment(home), check=True)


def environment(home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BAKTHAT_")}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def measure(command: list[str], env: dict[str, str], runs: int, warmup: int, cwd: Path) -> list[float]:
    times = []
    for index in range(warmup + runs):
        start = time.perf_counter()
        result = subprocess.run(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.decode()[-500:]}")
        if index >= warmup:
            times.append(elapsed)
    return times


def slowest_imports(env: dict[str, str], cwd: Path, count: int = 10) -> list[tuple[int, str]]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bakthat", "--help"], env=env, cwd=cwd, capture_output=True, text=True
    )
    entries = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line.split("|")
        try:
            cumulative = int(parts[1])
        except ValueError:
            continue
        entries.append((cumulative, parts[2].rstrip()))
    top_level = [(micro, name) for micro, name in entries if not name.startswith("  ")] if entries else []
    return sorted(top_level or entries, reverse=True)[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--imports", action="store_true", help="print the slowest imports of bakthat --help")
    parser.add_argument("--limit", type=float, help="exit 1 if the median of --help or show exceeds this many seconds")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bakthat-bench-") as temp:
        home = Path(temp) / "home"
        home.mkdir()
        populate(home, options.rows)
        env = environment(home)
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
            times = measure(command, env, options.runs, options.warmup, Path(temp))
            results[label] = {"median": statistics.median(times), "min": min(times), "max": max(times), "runs": len(times)}
        imports = slowest_imports(env, Path(temp)) if options.imports else []

    width = max(len(label) for label in results)
    print(f"Python {sys.version.split()[0]}, {options.runs} runs each after {options.warmup} warm-up runs")
    print(f"{'command'.ljust(width)}  {'median':>9}  {'min':>9}  {'max':>9}")
    for label, figures in results.items():
        print(f"{label.ljust(width)}  {figures['median'] * 1000:7.1f}ms  {figures['min'] * 1000:7.1f}ms  {figures['max'] * 1000:7.1f}ms")
    if imports:
        print("\nslowest imports of bakthat --help (cumulative):")
        for micro, name in imports:
            print(f"  {micro / 1000:7.1f}ms  {name.strip()}")
    if options.json:
        Path(options.json).write_text(json.dumps({"python": sys.version.split()[0], "results": results}, indent=2))
    if options.limit is not None:
        slow = [label for label, figures in results.items()
                if label.startswith(("bakthat --help", "bakthat show")) and figures["median"] > options.limit]
        if slow:
            print(f"\nabove {options.limit}s: {', '.join(slow)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
