#!/usr/bin/env python3
"""Every row of issue 15's performance table against its peer, in one run.

    python benchmarks/bench_targets.py                       # 1 GB set, 3 runs each
    python benchmarks/bench_targets.py --base-root /path/to/checkout-of-the-old-commit
    python benchmarks/bench_targets.py --size 200M --small 50M --reps 1 --s3-size 64M   # quick

What runs, all in this one process's run, side by side (medians of ``--reps`` runs):

1. ``bench_pipeline.py``'s backups and restores of its generated data set (``--size``):
   ``tar | zstd -3 -T0``, the same piped into ``age -r``, ``bakthat backup`` plain, to an
   age recipient and with a password; restores by ``zstd -d | tar x``,
   ``age -d | zstd -d | tar x``, restic and each bakthat variant.  Then, alone, the two
   scrypt derivations a password backup makes (its archive's and its index's key): the
   password row's fixed cost, also shown taken off that row.
2. The same plain backup and restore on a set 4x smaller (``--small``; 4x fewer files
   too): peak memory must stay flat when data and file count grow 4x.
3. A moto S3 server (``--s3-size`` data set), in two comparisons (docs/benchmarks.md
   says why): the upload throughput of the same ready bytes (the set's zstd archive)
   through bakthat's upload stage against boto3's ``upload_file`` with the same part
   size and concurrency (``aws s3 cp`` and boto3's own defaults beside), each timed
   from the client's creation to the confirmed object; and the whole ``bakthat backup
   -d s3`` of the set against ``tar | zstd -3 -T0`` into a file, then ``upload_file``.
   Then ``bakthat restore -d s3`` against ``aws s3 cp s3://... - | zstd -d | tar x``.
4. ``bakthat --help`` and ``bakthat show`` on a catalog of 1,000 rows (``--runs`` each).

With ``--base-root DIR`` every bakthat command also runs with the bakthat of DIR (a
checkout of an older commit, e.g. ``git worktree add --detach /tmp/base <commit>``),
interleaved with the current one, so before and after are measured in the same run.

The last table prints each target, bakthat's figure, its peer's, the ratio of the
medians (beside it, the ratio of the best runs and of the median CPU times) and whether
the target is met, marked "(disturbed)" when every run of either command shared the
machine with busy processes.  Medians are used throughout; peak RSS is the largest of all runs
(GNU time, per process; a pipeline is the sum of its stages).  Requires what
``bench_pipeline.py`` requires, plus ``age``/``age-keygen``, restic, moto and boto3
(the test extras), and optionally the AWS CLI (``aws``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_pipeline as bp  # noqa: E402
import bench_s3  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20
#: The S3 upload rows' part size and concurrency, given to bakthat's upload stage and to boto3
#: alike: issue 15's row is pinned at 8 MiB x 4 (bakthat's default part size is 5 MiB since
#: 2026-12-01, for memory; docs/benchmarks.md, "Issue 15's S3 backup memory").
S3_PART_SIZE = 8 * MiB
S3_CONCURRENCY = 4


# --------------------------------------------------------------------------- helpers


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class Figures:
    """Runs of one command: wall seconds, peak RSS (KiB), CPU seconds."""

    def __init__(self) -> None:
        self.walls: list[float] = []
        self.peaks: list[int] = []
        self.cpus: list[float] = []
        self.others: list[float] = []  # other processes' CPU seconds during each run
        self.uploads: list[float] = []  # S3 upload rows: the upload's own seconds, timed in the child
        self.upload_cpus: list[float] = []  # ... and its own CPU seconds (every thread, no start-up)

    def add(self, rec: bp.RunRecord, upload: dict[str, float] | None = None) -> None:
        self.walls.append(rec.wall)
        self.peaks.append(rec.peak_kib)
        self.cpus.append(rec.cpu)
        self.others.append(rec.others_cpu)
        if upload is not None:
            self.uploads.append(upload["seconds"])
            self.upload_cpus.append(upload.get("cpu_seconds", float("nan")))

    @property
    def wall(self) -> float:
        return median(self.walls)

    @property
    def peak_mib(self) -> float:
        return max(self.peaks) / 1024 if self.peaks else float("nan")

    @property
    def cpu(self) -> float:
        return median(self.cpus)

    @property
    def best(self) -> float:
        return min(self.walls) if self.walls else float("nan")

    @property
    def disturbed(self) -> bool:
        """True when every run shared the machine with busy processes (see bench_pipeline)."""
        return bool(self.others) and all(bp.is_disturbed(other, wall) for other, wall in zip(self.others, self.walls))


def from_result(result: dict[str, Any]) -> Figures:
    figures = Figures()
    figures.walls = list(result["runs"])
    figures.peaks = list(result["peaks_kib"])
    figures.cpus = list(result["cpu"])
    figures.others = list(result.get("others_cpu", []))
    return figures


# --------------------------------------------------------------------------- parts


def pipeline_part(args: argparse.Namespace, size: int, workdir: Path, tools: set[str],
                  extra: list[type[bp.Tool]], reps: int, pool: Any, bakthat_cmd: list[str]) -> dict[str, Figures]:
    """Run bench_pipeline at ``size``; return {"tool op": Figures}."""
    ns = argparse.Namespace(seed=args.seed, timeout=0, reps=reps, extra_reps=0, tools=tools,
                            keep_data=True)
    out = bp.bench_one_size(ns, size, workdir, pool, bakthat_cmd, str(ROOT), extra)
    return {f"{r['tool']} {r['op']}": from_result(r) for r in out["results"]}


def s3_part(args: argparse.Namespace, workdir: Path, pool: Any, roots: dict[str, Path]) -> dict[str, Figures]:
    """Upload and restore through a moto server; return {"label": Figures}."""
    data_base = workdir / f"data-{args.s3_size}-{args.seed}"
    data_base.mkdir(parents=True, exist_ok=True)
    data = bp.make_dataset(data_base, args.s3_size, args.seed, pool)
    run = workdir / "s3-run"
    bp.rmtree(run)
    (run / "logs").mkdir(parents=True)
    runner = bp.Runner(run / "logs", 180 + 900 * args.s3_size / 10**9)
    try:
        moto, url = bench_s3.start_moto()
    except RuntimeError as exc:  # bench_s3's "moto server did not start"
        raise bp.BenchError(str(exc)) from exc
    figures: dict[str, Figures] = {}
    try:
        home = run / "home"
        home.mkdir()
        config = run / "bakthat.yml"
        config.write_text("default:\n  s3_bucket: bench-bucket\n"
                          f"  database: {json.dumps(str(run / 'catalog.sqlite'))}\n")
        env = {"HOME": str(home), "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "bench",
               "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(run / "aws-config"),
               "PYTHONDONTWRITEBYTECODE": None}  # bytecode cached, as for an installed package
        (run / "aws-config").write_text("[default]\nregion = us-east-1\n")
        py = sys.executable
        plain_env = {key: value for key, value in {**os.environ, **env}.items() if value is not None}
        subprocess.run([py, "-c", "import boto3; boto3.client('s3').create_bucket(Bucket='bench-bucket')"],
                       env=plain_env, check=True)
        # The archive the restores read: bakthat's own backup of the data set (zstd).
        renv = {**env, "PYTHONPATH": str(ROOT)}
        runner.run("bakthat backup -d s3 (archive to restore)",
                   [[[py, "-m", "bakthat", "backup", str(data.root), "-d", "s3", "--prompt", "no", "-c", str(config)]]],
                   env=renv, measured=False)
        archive = run / "archive.tar.zst"
        get = ("import sys, boto3; c = boto3.client('s3'); "
               "k = [o['Key'] for o in c.list_objects_v2(Bucket='bench-bucket')['Contents'] "
               "if o['Key'].endswith('.tar.zst')][0]; c.download_file('bench-bucket', k, sys.argv[1]); "
               "c.upload_file(sys.argv[1], 'bench-bucket', 'peer.tar.zst')")
        subprocess.run([py, "-c", get, str(archive)], env=plain_env, check=True)
        args.s3_archive_bytes = archive.stat().st_size  # for the throughput row
        # (1) Upload throughput: the same ready bytes (the archive file) through bakthat's
        # upload stage (WriteBehind -> HashingWriter -> S3Upload, as a backup wires them)
        # and through boto3's upload_file, same part size and concurrency; each child
        # times itself from the client's creation to the confirmed object.
        part, conc = str(S3_PART_SIZE), str(S3_CONCURRENCY)
        child = [py, str(Path(bench_s3.__file__).resolve()), "--upload-child"]
        timing = run / "timing.json"

        def forget(*prefixes: str) -> None:
            """Untimed: delete the objects under these prefixes (moto keeps every object in memory)."""
            subprocess.run([py, "-c", "import sys, boto3; c = boto3.client('s3'); "
                            "[c.delete_object(Bucket='bench-bucket', Key=o['Key']) for p in sys.argv[1:] "
                            "for o in c.list_objects_v2(Bucket='bench-bucket', Prefix=p).get('Contents', [])]",
                            *prefixes], env=plain_env, check=True)

        def timed(name: str, label: str, argv: list[str], env_: dict[str, str], cwd: Path | None = None) -> None:
            rec = runner.run(label, [[argv]], env=env_, cwd=cwd)
            figures.setdefault(name, Figures()).add(rec, json.loads(timing.read_text()))
            timing.unlink()

        for rep in range(1, args.reps + 1):
            for label, root in roots.items():
                key = f"stage{rep}{label.strip('@')}"
                timed(f"bakthat{label} upload", f"bakthat{label} upload stage #{rep}",
                      [*child, "bakthat-stage", str(archive), key, part, conc, str(timing)],
                      {**env, "PYTHONPATH": str(root)}, cwd=root)
            timed("boto3 upload_file", f"boto3 upload_file #{rep}",
                  [*child, "boto3", str(archive), f"boto{rep}", part, conc, str(timing)], env)
            timed("boto3 upload_file defaults", f"boto3 upload_file, its defaults #{rep}",
                  [*child, "boto3-defaults", str(archive), f"botod{rep}", part, conc, str(timing)], env)
            if shutil.which("aws"):
                rec = runner.run(f"aws s3 cp up #{rep}", [[["aws", "s3", "cp", str(archive),
                                                             f"s3://bench-bucket/aws{rep}.tar.zst", "--no-progress",
                                                             "--endpoint-url", url]]], env=env)
                figures.setdefault("aws s3 cp upload", Figures()).add(rec)
            forget(f"stage{rep}", f"boto{rep}", f"botod{rep}", f"aws{rep}")
        # (2) The pipeline: the whole `bakthat backup -d s3` of the data set (start-up,
        # walk, tar, zstd, upload, index, manifest, catalog) against tar | zstd into a
        # file, then boto3's upload_file of that file (same part size and concurrency).
        staged = run / "peer.tar.zst"
        for rep in range(1, args.reps + 1):
            for label, root in roots.items():
                rec = runner.run(f"bakthat{label} backup -d s3 #{rep}",
                                 [[[py, "-m", "bakthat", "backup", str(data.root), "-d", "s3", "--prompt", "no",
                                    "-c", str(config), "--name", f"pipe{rep}{label.strip('@')}"]]],
                                 env={**env, "PYTHONPATH": str(root)}, cwd=root)
                figures.setdefault(f"bakthat{label} backup s3", Figures()).add(rec)
            rec = runner.run(f"tar | zstd > file; upload_file #{rep}", [
                [["tar", "cf", "-", "-C", str(data.root.parent), data.root.name],
                 ["zstd", "-3", "-T0", "-q", "-o", str(staged)]],
                [[*child, "boto3", str(staged), f"pipe-peer{rep}", part, conc, str(timing)]],
            ], env=env)
            timing.unlink()
            staged.unlink()
            figures.setdefault("tar|zstd > file; upload_file", Figures()).add(rec)
            forget(f"pipe{rep}", f"pipe-peer{rep}")
        name = data.root.name
        for rep in range(1, args.reps + 1):
            for label, root in roots.items():
                dest = run / "restore" / f"bakthat{label.replace('@', '-')}-{rep}"
                dest.mkdir(parents=True)
                rec = runner.run(f"bakthat{label} restore -d s3 #{rep}",
                                 [[[py, "-m", "bakthat", "restore", name, "-d", "s3", "--target", str(dest),
                                    "--prompt", "no", "-c", str(config)]]], env={**env, "PYTHONPATH": str(root)},
                                 cwd=root)
                bp.verify_restore(pool, data, dest / name, False)
                figures.setdefault(f"bakthat{label} restore s3", Figures()).add(rec)
            dest = run / "restore" / f"peer-{rep}"
            dest.mkdir(parents=True)
            if shutil.which("aws"):
                fetch = ["aws", "s3", "cp", "s3://bench-bucket/peer.tar.zst", "-", "--endpoint-url", url]
            else:
                fetch = [py, "-c", "import sys, boto3; boto3.client('s3').download_fileobj('bench-bucket', "
                         "'peer.tar.zst', sys.stdout.buffer)"]
            rec = runner.run(f"s3 cp | zstd -d | tar x #{rep}",
                             [[fetch, ["zstd", "-d", "-q", "-c"], ["tar", "xf", "-", "-C", str(dest)]]], env=env)
            bp.verify_restore(pool, data, dest / data.root.name, False)
            figures.setdefault("s3 cp | zstd -d | tar x", Figures()).add(rec)
    finally:
        runner.kill_all()
        moto.kill()
        moto.wait()
        bp.rmtree(run)
    return figures


#: Two file keys made one after the other, as a password backup makes its archive's and its
#: index's: the fixed cost of the password row (age requires a new scrypt salt per file).
SCRYPT_CODE = (
    "import time\nfrom bakthat import crypto\nstarted = time.perf_counter()\n"
    "for _ in range(2):\n    crypto.FileKey(passphrase='bench', work_factor=18)\n"
    "print(time.perf_counter() - started)\n"
)


def scrypt_part(args: argparse.Namespace, roots: dict[str, Path]) -> dict[str, Figures]:
    """Wall time of a password backup's two scrypt derivations (work factor 18), alone."""
    figures: dict[str, Figures] = {}
    for _ in range(args.reps):
        for label, root in roots.items():
            out = subprocess.run([sys.executable, "-c", SCRYPT_CODE], env={**os.environ, "PYTHONPATH": str(root)},
                                 capture_output=True, text=True, check=True).stdout
            figures.setdefault(f"bakthat{label} scrypt x2", Figures()).walls.append(float(out))
    return figures


def startup_part(args: argparse.Namespace, workdir: Path, roots: dict[str, Path]) -> dict[str, Figures]:
    """Median wall time of ``--help`` and ``show`` on a catalog of ``--rows`` rows."""
    figures: dict[str, Figures] = {}
    env = {key: value for key, value in os.environ.items() if not key.startswith("BAKTHAT_")}
    homes = {}
    for label, root in roots.items():  # one catalog per checkout: schemas differ between commits
        home = homes[label] = workdir / f"startup-home{label.replace('@', '-')}"
        bp.rmtree(home)
        home.mkdir(parents=True)
        code = (
            "import time\nfrom bakthat import models\n"
            f"models.bind({str(home / '.bakthat.sqlite')!r})\nnow = int(time.time())\n"
            "with models.database.atomic():\n"
            f"    for i in range({args.rows}):\n"
            "        models.Backups.create(backend='local', backend_hash='0' * 128, backup_date=now - i * 3600,\n"
            "            filename=f'name{i % 7}', is_deleted=False, last_updated=now, metadata={'is_enc': False},\n"
            "            size=1000 * (i + 1), stored_filename=f'name{i % 7}.{i:014d}.tar.zst', tags='daily db',\n"
            "            sha256='0' * 64, compression='zstd', encryption='none', host='bench', profile='default')\n"
        )
        subprocess.run([sys.executable, "-c", code], env={**env, "HOME": str(home), "PYTHONPATH": str(root)},
                       cwd=home, check=True)
    commands = {"--help": ["--help"], "show": ["show"]}
    for _ in range(args.runs + 2):
        for label, root in roots.items():
            for what, argv in commands.items():
                started = time.perf_counter()
                result = subprocess.run([sys.executable, "-m", "bakthat", *argv],
                                        env={**env, "HOME": str(homes[label]), "PYTHONPATH": str(root)},
                                        cwd=homes[label], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                elapsed = time.perf_counter() - started
                if result.returncode != 0:
                    raise bp.BenchError(f"bakthat {what} failed: {result.stderr.decode()[-500:]}")
                figures.setdefault(f"bakthat{label} {what}", Figures()).walls.append(elapsed)
    for item in figures.values():
        item.walls = item.walls[2:]  # warm-up runs
    return figures


# --------------------------------------------------------------------------- report


def targets_table(f: dict[str, Figures], label: str, args: argparse.Namespace) -> list[tuple[str, ...]]:
    """Return (target, bakthat, peer, ratio, limit, verdict) rows for the bakthat of ``label``."""
    rows: list[tuple[str, ...]] = []

    def get(key: str) -> Figures | None:
        return f.get(key)

    def ratio_row(what: str, mine: str, peer: str, peer_name: str, limit: float, lower_better: bool = True) -> None:
        a, b = get(mine), get(peer)
        if a is None or b is None or not a.walls or not b.walls:
            rows.append((what, "-", "-", "-", f"{limit:g}", "not measured"))
            return
        ratio = a.wall / b.wall
        ok = ratio <= limit if lower_better else ratio >= limit
        sign = "<=" if lower_better else ">="
        # On a shared machine the median wall ratio alone can mislead: the best runs'
        # ratio and the CPU ratio (user+system, medians) are shown beside it, and a
        # verdict from runs that were all disturbed says so.
        detail = f"best {a.best / b.best:.2f}x, CPU {a.cpu / b.cpu:.2f}x" if b.cpu else f"best {a.best / b.best:.2f}x"
        verdict = "met" if ok else f"NOT met by {abs(ratio - limit) / limit * 100:.0f} %"
        if a.disturbed or b.disturbed:
            verdict += " (disturbed)"
        rows.append((what, f"{a.wall:.2f} s", f"{b.wall:.2f} s ({peer_name})", f"{ratio:.2f}x ({detail})",
                     f"{sign} {limit:g}x", verdict))

    def absolute_row(what: str, value: float | None, unit: str, limit: float) -> None:
        if value is None or value != value:
            rows.append((what, "-", "", "", f"<= {limit:g} {unit}", "not measured"))
            return
        ok = value <= limit
        rows.append((what, f"{value:.3g} {unit}", "", "", f"<= {limit:g} {unit}",
                     "met" if ok else f"NOT met by {(value - limit) / limit * 100:.0f} %"))

    b = f"bakthat{label}"
    ratio_row("backup, zstd", f"{b} backup", "tar|zstd backup", "tar|zstd", 1.15)
    ratio_row("backup, zstd, age recipient", f"bakthat+recipient{label} backup", "tar|zstd|age backup",
              "tar|zstd|age", 1.15)
    ratio_row("backup, zstd, password", f"bakthat+age{label} backup", "tar|zstd backup", "tar|zstd", 1.3)
    password, derivations, peer = get(f"bakthat+age{label} backup"), get(f"{b} scrypt x2"), get("tar|zstd backup")
    if password and derivations and peer and password.walls and peer.walls:
        # The issue calls the derivation a fixed cost to be named: the same row with the
        # time of the two derivations alone (measured beside, on the idle machine) taken off.
        ratio = (password.wall - derivations.wall) / peer.wall
        rows.append((f"  ... less its fixed cost (2 scrypt derivations, {derivations.wall:.2f} s alone)",
                     f"{password.wall - derivations.wall:.2f} s", f"{peer.wall:.2f} s (tar|zstd)", f"{ratio:.2f}x",
                     "<= 1.3x", "met" if ratio <= 1.3 else f"NOT met by {(ratio - 1.3) / 1.3 * 100:.0f} %"))
    ratio_row("restore, local store vs restic", f"{b} restore", "restic restore", "restic", 0.8)
    ratio_row("restore, local store vs zstd -d | tar x", f"{b} restore", "tar|zstd restore", "zstd -d|tar x", 1.3)
    ratio_row("restore, age recipient vs age -d | zstd -d | tar x", f"bakthat+recipient{label} restore",
              "tar|zstd|age restore", "age|zstd|tar", 1.3)
    ratio_row("restore from S3 (moto)", f"{b} restore s3", "s3 cp | zstd -d | tar x", "s3 cp|zstd -d|tar x", 1.1)
    backup, small = get(f"{b} backup"), get(f"{b} backup small")
    absolute_row("peak RSS, backup", backup.peak_mib if backup else None, "MiB", 100)
    if backup and small:
        rows.append(("  ... at 4x data and 4x files", f"{backup.peak_mib:.0f} MiB", f"{small.peak_mib:.0f} MiB (1/4 set)",
                     f"{backup.peak_mib / small.peak_mib:.2f}x", "flat (<= 1.1x)",
                     "met" if backup.peak_mib <= 1.1 * small.peak_mib else "NOT met"))
    restore, small_restore = get(f"{b} restore"), get(f"{b} restore small")
    absolute_row("peak RSS, restore", restore.peak_mib if restore else None, "MiB", 64)
    if restore and small_restore:
        rows.append(("  ... at 4x data and 4x files", f"{restore.peak_mib:.0f} MiB",
                     f"{small_restore.peak_mib:.0f} MiB (1/4 set)", f"{restore.peak_mib / small_restore.peak_mib:.2f}x",
                     "flat (<= 1.1x)", "met" if restore.peak_mib <= 1.1 * small_restore.peak_mib else "NOT met"))
    helpf, show = get(f"{b} --help"), get(f"{b} show")
    absolute_row("bakthat --help (median)", helpf.wall if helpf else None, "s", 0.15)
    absolute_row(f"bakthat show, {args.rows} rows (median)", show.wall if show else None, "s", 0.3)
    up, boto = get(f"{b} upload"), get("boto3 upload_file")
    if up and boto and up.uploads and boto.uploads:
        # Throughput of the same ready bytes: each upload's own time (client creation to
        # confirmed object), medians; the best runs' ratio and the uploads' own CPU beside.
        mine, peer = median(up.uploads), median(boto.uploads)
        ratio = peer / mine
        size = getattr(args, "s3_archive_bytes", 0)
        rows.append((f"S3 upload throughput vs boto3 upload_file ({S3_PART_SIZE // MiB} MiB parts, "
                     f"{S3_CONCURRENCY} threads both)", f"{mine:.2f} s, {size / MiB / mine:.0f} MiB/s",
                     f"{peer:.2f} s, {size / MiB / peer:.0f} MiB/s (boto3)",
                     f"{ratio:.2f}x (best {min(boto.uploads) / min(up.uploads):.2f}x, CPU "
                     f"{median(up.upload_cpus):.2f} vs {median(boto.upload_cpus):.2f} s)",
                     ">= 1x", "met" if ratio >= 1 else f"NOT met by {(1 - ratio) * 100:.0f} %"))
        absolute_row("  client peak RSS, upload stage", up.peak_mib, "MiB", 128)
    whole, pipe = get(f"{b} backup s3"), get("tar|zstd > file; upload_file")
    if whole and pipe and whole.walls and pipe.walls:
        rows.append(("S3 backup, whole command vs tar|zstd > file; upload_file", f"{whole.wall:.2f} s",
                     f"{pipe.wall:.2f} s (pipeline)",
                     f"{whole.wall / pipe.wall:.2f}x (best {whole.best / pipe.best:.2f}x, CPU {whole.cpu / pipe.cpu:.2f}x)",
                     "(no target)", "-"))
        absolute_row("  client peak RSS during S3 backup", whole.peak_mib, "MiB", 128)
    return rows


def print_table(title: str, rows: list[tuple[str, ...]]) -> str:
    head = ("target", "bakthat", "peer", "ratio", "limit", "verdict")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    text = "\n".join(lines)
    print("\n" + text, flush=True)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=bp.parse_size, default=bp.parse_size("1G"))
    parser.add_argument("--small", type=bp.parse_size, default=0, help="the 1/4 set for memory (default size/4)")
    parser.add_argument("--s3-size", type=bp.parse_size, default=bp.parse_size("250M"))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20, help="runs of --help and show")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--base-root", type=Path, help="also run the bakthat of this checkout (before/after)")
    parser.add_argument("--skip", type=lambda s: set(s.split(",")), default=set(),
                        help="parts to leave out: pipeline,small,s3,startup")
    parser.add_argument("--no-quiet-wait", action="store_true", help="see bench_pipeline.py")
    parser.add_argument("--no-settle", action="store_true", help="see bench_pipeline.py")
    parser.add_argument("--restore-root", type=Path,
                        help="restore into this directory (a tmpfs: the restore pipelines without the disk)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.no_quiet_wait:
        bp.QUIET_MAX_WAIT = 0.0
    bp.RESTORE_ROOT = args.restore_root
    if args.no_settle:
        bp.SETTLE_SECONDS = 0.0
    args.small = args.small or args.size // 4
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="bakthat-targets-", dir="/tmp"))).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    roots = {"": ROOT}
    extra: list[type[bp.Tool]] = []
    if args.base_root:
        roots["@base"] = args.base_root.resolve()
        extra = [bp.rooted(cls, roots["@base"], "base") for cls in (bp.Bakthat, bp.BakthatRecipient, bp.BakthatAge)]
    bakthat_cmd = [sys.executable, "-m", "bakthat"]
    info = bp.machine_info(bakthat_cmd, str(ROOT), workdir)
    print("bakthat issue 15 targets benchmark")
    for key, value in info.items():
        print(f"  {key + ':':<14} {value}")
    if args.base_root:
        base = subprocess.run(["git", "-C", str(args.base_root), "log", "-1", "--format=%h %s"],
                              capture_output=True, text=True).stdout.strip()
        print(f"  base:          {args.base_root} ({base[:90]})")
    print(f"  reps:          {args.reps} (medians)", flush=True)
    if args.restore_root:
        print(f"  restores into: {args.restore_root} (--restore-root; the S3 part's stay in the workdir)", flush=True)
    bp._build_vocab(args.seed)
    figures: dict[str, Figures] = {}
    pool = multiprocessing.get_context("fork").Pool(len(os.sched_getaffinity(0)))
    try:
        tools = {"tar|zstd", "tar|zstd|age", "bakthat", "bakthat+recipient", "bakthat+age", "restic"}
        if "pipeline" not in args.skip:
            figures.update(pipeline_part(args, args.size, workdir, tools, extra, args.reps, pool, bakthat_cmd))
            figures.update(scrypt_part(args, roots))
        if "small" not in args.skip:
            small_extra = [cls for cls in extra if cls.name == "bakthat@base"]
            part = pipeline_part(args, args.small, workdir, {"tar|zstd", "bakthat"}, small_extra, 1, pool, bakthat_cmd)
            figures.update({f"{key} small": value for key, value in part.items()})
        if "s3" not in args.skip:
            figures.update(s3_part(args, workdir, pool, roots))
        if "startup" not in args.skip:
            figures.update(startup_part(args, workdir, roots))
    except bp.BenchError as exc:
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        pool.terminate()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print("\nAll medians (s) and peak RSS (MiB):")
    for key, item in figures.items():
        runs = "/".join(f"{w:.2f}" for w in item.walls)
        print(f"  {key:<42} median {item.wall:7.3f} s  peak {item.peak_mib:7.1f} MiB  runs {runs}  "
              f"CPU {'/'.join(f'{c:.2f}' for c in item.cpus)}")
        if item.uploads:
            print(f"  {'':<42} the upload itself: {'/'.join(f'{u:.2f}' for u in item.uploads)} s, "
                  f"CPU {'/'.join(f'{c:.2f}' for c in item.upload_cpus)} s")
    tables = [print_table(f"Issue 15 targets, bakthat{label or ' (this checkout)'}:", targets_table(figures, label, args))
              for label in roots]
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "figures": {k: vars(v) for k, v in figures.items()},
                                         "tables": tables}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
