#!/usr/bin/env python3
"""Benchmark streaming a PostgreSQL dump through bakthat against the plain pipes.

Creates a uuid-named PostgreSQL database of at least --sizes (default 1G and 2G, by
pg_database_size; generated with generate_series, grown in place from one size to the
next), then runs side by side, each as separate processes on the same database in the
same run:

  pg_dump -Fc | zstd -3 -T0 > file          the issue's baseline (pg_dump compresses with zlib too)
  pg_dump -Fc -Z0 | zstd -3 -T0 > file      the same dump bytes bakthat stores: like for like
  pg_dump | zstd -3 -T0 > file              plain SQL
  pg_dump | restic backup --stdin           (if restic is installed; repository re-created, untimed)
  bakthat sources                           bakthat.sources.open_dump (pg_dump -Fc -Z0 on a pipe) ->
                                            archive.compressor(zstd 3, all cores) -> HashingWriter -> file
  bakthat backup postgresql://...           the command itself (local store, catalog, manifest, status
                                            publishing; zstd 3, all cores; unencrypted like the pipes)

Wall time is the best of --reps runs (the median too); peak RSS is measured as in
bench_pipeline.py (GNU time per process, a pipeline's stages summed); for bakthat the
Python process's own peak (VmHWM) is reported separately: it is the figure the issue
bounds (150 MiB, flat when the database doubles).  bakthat's output is checked: it must
decompress to a dump pg_restore lists, and (unless --no-verify-restore) restore into a
new database with the same row count and checksum.  The databases are dropped at the end.

Usage:  python benchmarks/bench_database.py [--sizes 1G,2G] [--reps 2] [--json OUT]
                                           [--url postgresql://postgres@127.0.0.1:5432]
                                           [--keep NAME [--prepare]]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_pipeline as pipeline  # noqa: E402 - the shared runner (GNU time per stage, quiet-machine wait)

pipeline.SETTLE_SECONDS = 0.0  # no bulk file deletions here: only the quiet-CPU wait applies

MIB = 1 << 20
RESTIC_PASSWORD = "bench-database-password"

HELPER = r"""
import json, sys
from bakthat import archive, sources
from bakthat.pipeline import HashingWriter
url, out, report = sys.argv[1:4]
with open(out, "wb") as handle:
    counted = HashingWriter(handle)
    compressing = archive.compressor(counted, "zstd", 3, -1)
    with sources.open_dump(sources.parse(url), {}) as dump:
        dump.copy_to(compressing)
        result = dump.finish()
    compressing.close()
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
json.dump({"dump_bytes": result.bytes, "stored_bytes": counted.size, "sha256": counted.hexdigest(),
           "vmhwm_kib": hwm}, open(report, "w"))
"""


#: Runs the bakthat command in this process and records its own peak RSS (VmHWM) on exit.
CLI = r"""
import json, runpy, sys
report = sys.argv[1]
sys.argv = ["bakthat", *sys.argv[2:]]
try:
    runpy.run_module("bakthat", run_name="__main__")
finally:
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    json.dump({"vmhwm_kib": hwm}, open(report, "w"))
"""
CLI_LABEL = "bakthat backup postgresql://..."
#: --only: substrings of the tool labels to run (all when empty).
ONLY: list[str] = []


def cli_config(workdir: Path) -> Path:
    config = workdir / "bakthat.yml"
    config.write_text(f"default:\n  local_path: {workdir / 'store'}\n  database: {workdir / 'catalog.sqlite'}\n"
                      "  compression_level: 3\n  require_encryption: false\n")
    return config


def cli_output(workdir: Path) -> Path:
    (found,) = [path for path in (workdir / "store").iterdir() if path.name.endswith(".pgdump.zst")]
    return found


def psql(url: str, sql: str) -> str:
    out = subprocess.run(["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "--no-password", url],
                         input=sql, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise pipeline.BenchError(f"psql failed: {out.stderr.strip()}")
    return out.stdout.strip()


def database_size(url: str) -> int:
    return int(psql(url, "SELECT pg_database_size(current_database());"))


def grow(url: str, target: int, state: dict[str, int]) -> None:
    """Insert batches of one million rows until the database holds ``target`` bytes."""
    if state.get("rows", 0) == 0:
        psql(url, "CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz, user_id int, kind text, "
                  "payload text, amount numeric(10, 2));")
    while database_size(url) < target:
        first = state.get("rows", 0) + 1
        last = first + 999_999
        started = time.monotonic()
        psql(url, f"""
            INSERT INTO events
            SELECT i, timestamptz '2026-01-01 00:00:00+00' + i * interval '7 seconds', (i * 7919) % 100000,
                   (ARRAY['view', 'click', 'cart', 'buy', 'refund'])[1 + i % 5],
                   md5(i::text) || ' ' || repeat(chr((97 + i % 26)::int), (10 + i % 50)::int) || ' ' || md5((i * 31)::text),
                   ((i * 37) % 100000) / 100.0
            FROM generate_series({first}::bigint, {last}::bigint) AS i;""")
        state["rows"] = last
        print(f"  {last:>10,} rows, {database_size(url) / 1e9:.2f} GB ({time.monotonic() - started:.0f} s)",
              flush=True)
    psql(url, "VACUUM ANALYZE events; CHECKPOINT;")


def fingerprint(url: str) -> str:
    return psql(url, "SELECT count(*) || ':' || sum(hashtext(e::text)::bigint) FROM events e;")


@dataclass
class Measure:
    label: str
    runs: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    peak_kib: int = 0
    own_kib: int = 0
    output_bytes: int = 0
    disturbed: list[bool] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.runs)


def run_tools(url: str, workdir: Path, runner: pipeline.Runner, reps: int, with_restic: bool) -> dict[str, Measure]:
    out = workdir / "out"
    stored = workdir / "bakthat.out"
    repo = workdir / "restic-repo"
    report = workdir / "bakthat.json"
    restic_env = {"RESTIC_PASSWORD": RESTIC_PASSWORD, "RESTIC_CACHE_DIR": str(workdir / "restic-cache")}
    tools: dict[str, list[list[str]]] = {
        "pg_dump -Fc | zstd -T0": [["pg_dump", "-Fc", url], ["zstd", "-3", "-T0", "-q", "-f", "-o", str(out)]],
        "pg_dump -Fc -Z0 | zstd -T0": [["pg_dump", "-Fc", "-Z0", url], ["zstd", "-3", "-T0", "-q", "-f", "-o", str(out)]],
        "pg_dump | zstd -T0": [["pg_dump", url], ["zstd", "-3", "-T0", "-q", "-f", "-o", str(out)]],
        "bakthat sources -> zstd -> sha256": [[sys.executable, "-c", HELPER, url, str(stored), str(report)]],
        CLI_LABEL: [[sys.executable, "-c", CLI, str(report), "-q", "backup", url, "--prompt", "no",
                     "-c", str(cli_config(workdir))]],
    }
    if with_restic:
        tools["pg_dump | restic --stdin"] = [
            ["pg_dump", url], ["restic", "-r", str(repo), "backup", "--quiet", "--stdin", "--stdin-filename", "db.sql"]]
    if ONLY:
        tools = {label: stages for label, stages in tools.items() if any(word in label for word in ONLY)}
    measures = {label: Measure(label) for label in tools}
    for rep in range(reps):
        for label, stages in tools.items():
            written = stored if label.startswith("bakthat sources") else out
            if label != CLI_LABEL and written.exists():
                written.unlink()
            if label == CLI_LABEL:
                for path in (workdir / "store", workdir / "catalog.sqlite"):
                    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            if "restic" in label:
                shutil.rmtree(repo, ignore_errors=True)
                subprocess.run(["restic", "-r", str(repo), "init", "--quiet"], env={**os.environ, **restic_env},
                               check=True, capture_output=True)
            record = runner.run(f"{label} #{rep + 1}", [stages], env=restic_env if "restic" in label else None)
            measure = measures[label]
            measure.runs.append(record.wall)
            measure.cpu.append(record.cpu)
            measure.peak_kib = max(measure.peak_kib, record.peak_kib)
            measure.disturbed.append(pipeline.disturbed(record))
            if "restic" in label:
                measure.output_bytes = sum(f.stat().st_size for f in repo.rglob("*") if f.is_file())
            elif label == CLI_LABEL:
                measure.output_bytes = cli_output(workdir).stat().st_size
            else:
                measure.output_bytes = written.stat().st_size
            if label.startswith("bakthat"):
                document = json.loads(report.read_text())
                measure.own_kib = max(measure.own_kib, document["vmhwm_kib"])
                if label != CLI_LABEL and document["stored_bytes"] != stored.stat().st_size:
                    raise pipeline.BenchError("bakthat: bytes counted differ from the file written")
            print(f"  {label:<36} {record.wall:7.2f} s  cpu {record.cpu:6.2f} s  peak {record.peak_kib / 1024:6.0f} MiB"
                  f"{'  (disturbed)' if measure.disturbed[-1] else ''}", flush=True)
    return measures


def verify(url: str, workdir: Path, restore: bool) -> str:
    """Check bakthat's last outputs: pg_restore lists both; optionally the command's backup
    restores (``bakthat restore --into``) identically."""
    outputs = [workdir / "bakthat.out"] if (workdir / "bakthat.out").exists() else []
    outputs += [cli_output(workdir)] if (workdir / "store").is_dir() else []
    for out in outputs:
        listing = subprocess.run(f"zstd -dc {out} | pg_restore --list", shell=True, capture_output=True, text=True)
        if listing.returncode != 0 or "TABLE DATA public events" not in listing.stdout:
            raise pipeline.BenchError(f"bakthat's dump {out.name} does not list with pg_restore: {listing.stderr[-500:]}")
    if not restore or not (workdir / "store").is_dir():
        return "pg_restore --list ok"
    name = url.rsplit("/", 1)[1]
    target = url.rsplit("/", 1)[0] + f"/bakthat_bench_{uuid.uuid4().hex[:12]}"
    try:
        restored = subprocess.run([sys.executable, "-m", "bakthat", "-q", "restore", name, "--into", target,
                                   "-c", str(workdir / "bakthat.yml")], capture_output=True, text=True)
        if restored.returncode != 0:
            raise pipeline.BenchError(f"bakthat restore --into failed: {restored.stderr[-500:]}")
        if fingerprint(target) != fingerprint(url):
            raise pipeline.BenchError("bakthat restore --into gave different rows")
    finally:
        drop(target)
    return ("both list with pg_restore; the command's restored by bakthat restore --into a new database: "
            "same row count and checksum")


def drop(url: str) -> None:
    base, name = url.rsplit("/", 1)
    psql(base + "/postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);')


def report_size(size: int, measures: dict[str, Measure]) -> list[str]:
    baseline = measures["pg_dump -Fc | zstd -T0"].best
    like = measures["pg_dump -Fc -Z0 | zstd -T0"].best
    lines = [f"\nDatabase of {size / 1e9:.2f} GB (pg_database_size):",
             f"{'tool':<36} {'best s':>7} {'median':>7} {'cpu s':>6} {'MB/s':>6} {'output MB':>10} {'peak MiB':>9} "
             f"{'x -Fc|zstd':>10} {'x -Z0|zstd':>10}"]
    for label, measure in measures.items():
        peak = f"{measure.peak_kib / 1024:.0f}"
        if measure.own_kib:
            peak += f" ({measure.own_kib / 1024:.0f})"
        flag = "!" if measure.disturbed[measure.runs.index(measure.best)] else " "
        lines.append(f"{label:<36} {measure.best:>6.2f}{flag} {statistics.median(measure.runs):>7.2f} "
                     f"{min(measure.cpu):>6.1f} "
                     f"{size / 1e6 / measure.best:>6.0f} {measure.output_bytes / 1e6:>10.1f} {peak:>9} "
                     f"{measure.best / baseline:>10.2f} {measure.best / like:>10.2f}")
    lines.append("cpu s: user+system seconds of the measured processes (pg_dump included; not the PostgreSQL "
                 "server).  peak MiB: GNU time, a pipeline's stages summed; for bakthat, max(Python, pg_dump) and in "
                 "parentheses the Python process's own VmHWM.  ! = best run disturbed by other processes.")
    command = measures[CLI_LABEL].best if CLI_LABEL in measures else float("nan")
    lines.append(f"bakthat backup postgresql://... / pg_dump -Fc | zstd -T0: {command / baseline:.2f}x; "
                 f"/ pg_dump -Fc -Z0 | zstd -T0 (same bytes): {command / like:.2f}x")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1G,2G", help="database sizes, ascending (default 1G,2G)")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432", help="server URL, no database")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument("--no-verify-restore", action="store_true", help="only check that pg_restore lists the dump")
    parser.add_argument("--keep", metavar="NAME",
                        help="use the database NAME (created if missing, grown in place, kept afterwards), so a "
                             "big database is generated once (--prepare) and measured later")
    parser.add_argument("--prepare", action="store_true", help="with --keep: only grow the database to the last size")
    parser.add_argument("--quiet-wait", type=float, default=pipeline.QUIET_MAX_WAIT,
                        help=f"seconds to wait for a quiet machine before each run (default {pipeline.QUIET_MAX_WAIT:.0f})")
    parser.add_argument("--only", default="", help="comma-separated substrings of the tools to run "
                        "(e.g. 'zstd -T0,backup'); the two baseline pipes are always kept")
    args = parser.parse_args()
    pipeline.QUIET_MAX_WAIT = args.quiet_wait
    if args.only:
        ONLY[:] = [word for word in args.only.split(",") if word] + ["pg_dump -Fc | zstd", "pg_dump -Fc -Z0 | zstd"]
    sizes = [pipeline.parse_size(text) for text in args.sizes.split(",")]
    for program in ("pg_dump", "pg_restore", "psql", "zstd", pipeline.TIME):
        if shutil.which(program) is None:
            print(f"missing required program: {program}", file=sys.stderr)
            return 2
    with_restic = shutil.which("restic") is not None
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}")
    for argv in (["pg_dump", "--version"], ["zstd", "--version"], ["restic", "version"]):
        print(f"  {pipeline.first_line(argv)}")
    url = f"{args.url.rstrip('/')}/{args.keep or 'bakthat_bench_' + uuid.uuid4().hex[:12]}"
    state: dict[str, int] = {}
    exists = psql(args.url.rstrip("/") + "/postgres",
                  f"SELECT 1 FROM pg_database WHERE datname = '{url.rsplit('/', 1)[1]}';")
    if not exists:
        psql(args.url.rstrip("/") + "/postgres", f'CREATE DATABASE "{url.rsplit("/", 1)[1]}";')
    elif psql(url, "SELECT to_regclass('events') IS NOT NULL;") == "t":
        state["rows"] = int(psql(url, "SELECT coalesce(max(id), 0) FROM events;"))
    if args.prepare:
        if not args.keep:
            parser.error("--prepare needs --keep NAME")
        grow(url, sizes[-1], state)
        print(f"prepared {url}: {database_size(url) / 1e9:.2f} GB, {state['rows']:,} rows")
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="bakthat-bench-db-"))
    runner = pipeline.Runner(workdir, timeout=180 + 900 * max(sizes) / 1e9)
    results, lines = {}, []
    try:
        for size in sizes:
            print(f"\ngenerating the database up to {size / 1e9:.2f} GB ...", flush=True)
            grow(url, size, state)
            actual = database_size(url)
            measures = run_tools(url, workdir, runner, args.reps, with_restic)
            verified = verify(url, workdir, not args.no_verify_restore)
            lines += report_size(actual, measures) + [f"bakthat output: {verified}"]
            results[actual] = {label: vars(measure) | {"best": measure.best} for label, measure in measures.items()}
            print("\n".join(lines[-(len(measures) + 6):]), flush=True)
        if len(results) > 1:
            for label in ("bakthat sources -> zstd -> sha256", CLI_LABEL):
                if not all(label in measures for measures in results.values()):
                    continue
                own = [measures[label]["own_kib"] / 1024 for measures in results.values()]
                lines.append(f"\n{label}: process peak (VmHWM) by size: {', '.join(f'{value:.0f} MiB' for value in own)}"
                             f" (ratio last/first {own[-1] / own[0]:.2f})")
    finally:
        runner.kill_all()
        if not args.keep:
            drop(url)
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"sizes": {str(k): v for k, v in results.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
