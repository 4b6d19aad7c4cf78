#!/usr/bin/env python3
"""Benchmark bakthat's backup/restore pipeline against tar|zstd, restic and borg.

Generates a deterministic mixed data set, then runs, each as a subprocess on the same
data in the same run:

  backup   tar cf - | zstd -3 -T0          (baseline)
           tar cf - | zstd -3 -T0 ; sync   (baseline + fsync of the archive, as bakthat does)
           bakthat backup --prompt no      (zstd, no encryption)
           bakthat backup + BAKTHAT_PASSWORD (zstd + age/scrypt encryption)
           restic backup                   (if restic is installed)
           borg create --compression zstd,3 (if borg is installed, repokey encryption)
  restore  zstd -d | tar xf -, bakthat restore (plain, encrypted), restic restore, borg extract

Every measured command runs --reps times (default 2, more if every run was disturbed by
other processes); the table shows the best (minimum) and median wall time and the
largest peak RSS seen.  Each restore is checked against the source (file list, sizes,
total bytes; bakthat restores are also compared file by file by SHA-256) and the
benchmark stops with an error if one differs.

Peak RSS is ru_maxrss of each process, reported by GNU time (/usr/bin/time -f %M) that
wraps it (not our own wait4(): see Runner).  Pipelines are started stage by stage (no
shell), so each stage's own peak is known; a pipeline's peak is reported as the sum of
its stages' peaks (an upper bound: the stages run concurrently).  See
benchmarks/README.md.

Usage:  python benchmarks/bench_pipeline.py [--size 1G] [--workdir DIR] [--json OUT]
                                           [--scale 4 | --scale-check] [--reps 2]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import multiprocessing
import os
import platform
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_NAME = "benchdata"  # basename of the backed-up directory = bakthat backup name
PASSWORD = "correct horse battery staple bench"
MB = 1_000_000
MIB = 1 << 20

# --------------------------------------------------------------------------- helpers


def parse_size(text: str) -> int:
    """'1G', '200M', '250MB', '1GiB', '123456' -> bytes (K/M/G decimal, KiB/MiB/GiB binary)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)(i?)[bB]?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (examples: 200M, 1G, 1GiB)")
    number, unit, binary = float(m.group(1)), m.group(2).upper(), m.group(3)
    base = 1024 if binary else 1000
    power = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}[unit]
    value = int(number * base**power)
    if value < 5 * MB:
        raise argparse.ArgumentTypeError("size must be at least 5M")
    return value


def fmt_size(n: int) -> str:
    for unit, div in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)


def tree_bytes(path: Path) -> int:
    """Apparent size of all regular files under path (or of path itself)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


def first_line(argv: list[str], env: dict[str, str] | None = None) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else f"exit {out.returncode}"


# ext4 without a journal (as on the machine this was written on) skips inodes freed in the
# last 60 s (300 s while their inode table block is dirty) when it allocates a new one;
# after deleting thousands of files, creating files is several times slower for a
# minute or more.  So nothing big is deleted while measuring, and before each measured
# command we wait until SETTLE_SECONDS have passed since the last bulk deletion.
SETTLE_SECONDS = 65.0
BULK_DELETE_ENTRIES = 1000
_last_bulk_delete = time.monotonic()  # a previous run's cleanup may have just ended


def rmtree(path: Path) -> None:
    global _last_bulk_delete
    if path.exists() or path.is_symlink():
        if path.is_dir() and not path.is_symlink():
            entries = sum(len(d) + len(f) for _, d, f in os.walk(path))
            shutil.rmtree(path)
            if entries >= BULK_DELETE_ENTRIES:
                _last_bulk_delete = time.monotonic()
        else:
            path.unlink()


# The machine may be shared (other sessions running tests): before each measured
# command, wait (up to QUIET_MAX_WAIT) until the rest of the machine uses less than
# QUIET_CPUS CPUs, and afterwards re-run commands whose best run was disturbed.
QUIET_CPUS = 0.25
QUIET_MAX_WAIT = 60.0
# Where restores write (--restore-root): None keeps them in the run directory, on the
# disk being measured; a tmpfs measures the restore pipelines without the disk, whose
# file creation on a `discard`-mounted ext4 varies 2-4x after bulk deletions (README).
# Trees restored there are deleted once verified (a tmpfs holds them in memory).
RESTORE_ROOT: Path | None = None


def settle() -> None:
    """Untimed: flush dirty pages, let recently freed inodes age, wait for a quiet machine."""
    os.sync()
    wait = _last_bulk_delete + SETTLE_SECONDS - time.monotonic()
    if wait > 0:
        print(f"  (waiting {wait:.0f} s after a bulk deletion, see README)", flush=True)
        time.sleep(wait)
        os.sync()
    if QUIET_MAX_WAIT <= 0:
        return
    deadline = time.monotonic() + QUIET_MAX_WAIT
    waited = False
    while True:
        busy0, _ = _cpu_counters()
        time.sleep(0.5)
        busy1, _ = _cpu_counters()
        if (busy1 - busy0) / 0.5 < QUIET_CPUS:
            break
        if time.monotonic() > deadline:
            print(f"  (machine still busy after {QUIET_MAX_WAIT:.0f} s: measuring anyway)", flush=True)
            break
        waited = True
    if waited:
        print("  (waited for other processes to go quiet)", flush=True)


def is_disturbed(others_cpu: float, wall: float) -> bool:
    """Did other processes use more than 5% of the CPUs (+0.3 CPU-s) during a run?"""
    return others_cpu > 0.3 + 0.05 * wall * len(os.sched_getaffinity(0))


def disturbed(rec: "RunRecord") -> bool:
    return is_disturbed(rec.others_cpu, rec.wall)


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------- data set

_LETTERS = "etaoinshrdlcumwfgypbvkjxqz"
_LETTER_WEIGHTS = [12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8,
                   2.4, 2.4, 2.2, 2.0, 2.0, 1.9, 1.5, 1.0, 0.8, 0.15, 0.15, 0.1, 0.07]
_LEVELS = ["INFO"] * 20 + ["DEBUG"] * 8 + ["WARN"] * 3 + ["ERROR"]

# Built once in the parent (from the seed) and inherited by forked workers.
_VOCAB: dict[str, Any] = {}


def _build_vocab(seed: int) -> None:
    rng = random.Random(f"vocab-{seed}")
    words: set[str] = set()
    while len(words) < 20000:
        length = max(2, min(14, int(rng.gauss(6, 2.5))))
        words.add("".join(rng.choices(_LETTERS, _LETTER_WEIGHTS, k=length)))
    vocab = sorted(words)
    rng.shuffle(vocab)
    wcum = list(itertools.accumulate(1.0 / (i + 1) ** 1.05 for i in range(len(vocab))))
    picks = rng.choices(vocab, cum_weights=wcum, k=100_000 * 10)
    messages = []
    pos = 0
    for k in rng.choices(range(2, 14), k=100_000):
        messages.append(" ".join(picks[pos:pos + k]))
        pos += k
    _VOCAB.update(
        words=vocab,
        messages=messages,
        mcum=list(itertools.accumulate(1.0 / (i + 1) ** 0.8 for i in range(len(messages)))),
        components=vocab[:64],
        keys=vocab[64:160],
    )


def _text_chunk(rng: random.Random, style: str, state: dict[str, int], lines: int = 4096) -> bytes:
    """About 100 bytes x lines of varied, non-repeating text (log or JSON lines)."""
    v = _VOCAB
    msgs = rng.choices(v["messages"], cum_weights=v["mcum"], k=lines)
    hexes = rng.randbytes(lines * 3).hex()
    nums = rng.choices(range(1, 5000), k=lines)
    levels = rng.choices(_LEVELS, k=lines)
    comps = rng.choices(v["components"], k=lines)
    ts = state["ts"]
    out = []
    if style == "log":
        for i in range(lines):
            ts += nums[i] % 97
            out.append(f"{ts // 1000}.{ts % 1000:03d} {levels[i]} [{comps[i]}] {msgs[i]} "
                       f"req={hexes[i * 6:i * 6 + 6]} dur={nums[i]}ms\n")
    else:
        keys = rng.choices(v["keys"], k=lines)
        for i in range(lines):
            ts += nums[i] % 97
            out.append(f'{{"ts":{ts},"level":"{levels[i].lower()}","svc":"{comps[i]}",'
                       f'"{keys[i]}":{nums[i]},"msg":"{msgs[i]}","id":"{hexes[i * 6:i * 6 + 6]}"}}\n')
    state["ts"] = ts
    return "".join(out).encode()


def _write_text(path: str, size: int, seed: str, style: str) -> None:
    rng = random.Random(seed)
    state = {"ts": rng.randrange(1_600_000_000, 1_700_000_000) * 1000}
    written = 0
    with open(path, "wb") as fh:
        while written < size:
            chunk = _text_chunk(rng, style, state, lines=4096 if size - written > 400_000 else 64)
            chunk = chunk[: size - written]
            fh.write(chunk)
            written += len(chunk)


def _write_random(path: str, size: int, seed: str) -> None:
    rng = random.Random(seed)
    written = 0
    with open(path, "wb") as fh:
        while written < size:
            n = min(4 * MIB, size - written)
            fh.write(rng.randbytes(n))
            written += n


def _gen_job(job: tuple) -> int:
    kind = job[0]
    if kind == "text":
        _, path, size, seed, style = job
        _write_text(path, size, seed, style)
        return size
    if kind == "random":
        _, path, size, seed = job
        _write_random(path, size, seed)
        return size
    # a directory of small files
    _, directory, files, seed = job
    os.makedirs(directory, exist_ok=True)
    rng = random.Random(seed)
    total = 0
    for name, size, is_text in files:
        path = os.path.join(directory, name)
        if is_text:
            state = {"ts": rng.randrange(1_600_000_000, 1_700_000_000) * 1000}
            data = b""
            while len(data) < size:
                data += _text_chunk(rng, "log" if rng.random() < 0.6 else "json", state, lines=32)
            data = data[:size]
        else:
            data = rng.randbytes(size)
        with open(path, "wb") as fh:
            fh.write(data)
        total += size
    return total


def plan_dataset(size: int, seed: int, root: Path) -> tuple[list[tuple], dict[str, int]]:
    """Return the generation jobs and the byte/file budget of each class."""
    rng = random.Random(f"plan-{seed}-{size}")
    text_target = int(size * 0.45)
    random_target = int(size * 0.45)
    small_target = size - text_target - random_target
    jobs: list[tuple] = []
    counts = {"text_files": 0, "text_bytes": 0, "random_files": 0, "random_bytes": 0,
              "small_files": 0, "small_bytes": 0, "small_dirs": 0}

    # incompressible: a few files of 10-100 MB
    remaining, i = random_target, 0
    sizes: list[int] = []
    while remaining > 0:
        n = min(remaining, rng.randint(10 * MB, 100 * MB))
        if remaining - n < 10 * MB and sizes == [] and remaining - n > 0:
            n = remaining
        elif 0 < remaining - n < 10 * MB:
            n = remaining
        sizes.append(n)
        remaining -= n
    for i, n in enumerate(sizes):
        sub = "blobs" if i % 2 == 0 else "media/raw"
        jobs.append(("random", str(root / sub / f"blob-{i:03d}.bin"), n, f"rand-{seed}-{i}"))
    counts["random_files"], counts["random_bytes"] = len(sizes), sum(sizes)

    # compressible text: files of 0.25-40 MB, log and JSON lines
    remaining, i = text_target, 0
    while remaining > 0:
        n = min(remaining, int(rng.triangular(256_000, 40 * MB, 4 * MB)))
        style = "log" if i % 3 else "json"
        sub = ["exports", "logs/app", "logs/web"][i % 3]
        ext = "log" if style == "log" else "jsonl"
        jobs.append(("text", str(root / sub / f"part-{i:04d}.{ext}"), n, f"text-{seed}-{i}", style))
        counts["text_files"] += 1
        counts["text_bytes"] += n
        remaining -= n
        i += 1

    # thousands of small files (0.5-8 KB) in nested directories, ~40 per directory
    remaining, d = small_target, 0
    exts = [".txt", ".json", ".cfg", ".py", ".md", ".dat"]
    while remaining > 0:
        files = []
        for j in range(40):
            if remaining <= 0:
                break
            n = min(remaining, rng.randint(512, 8192))
            is_text = rng.random() < 0.75
            ext = rng.choice(exts[:-1]) if is_text else ".dat"
            files.append((f"f{j:03d}{ext}", n, is_text))
            remaining -= n
        directory = root / "small" / f"g{d % 16:02d}" / f"h{(d // 16) % 8}" / f"d{d:05d}"
        jobs.append(("small", str(directory), files, f"small-{seed}-{d}"))
        counts["small_files"] += len(files)
        counts["small_bytes"] += sum(f[1] for f in files)
        counts["small_dirs"] += 1
        d += 1
    # biggest first, for better parallel packing
    jobs.sort(key=lambda job: -(job[2] if job[0] != "small" else sum(f[1] for f in job[2])))
    return jobs, counts


def _hash_file(args: tuple[str, str]) -> tuple[str, int, str]:
    base, rel = args
    h = hashlib.sha256()
    size = 0
    with open(os.path.join(base, rel), "rb") as fh:
        while chunk := fh.read(4 * MIB):
            h.update(chunk)
            size += len(chunk)
    return rel, size, h.hexdigest()


def list_tree(root: Path) -> tuple[dict[str, int], set[str]]:
    """Return ({relative file path: size}, {relative dir paths}); symlinks etc. are errors."""
    files: dict[str, int] = {}
    dirs: set[str] = set()
    for current, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(current, root)
        for name in dirnames:
            dirs.add(os.path.normpath(os.path.join(rel_dir, name)))
        for name in filenames:
            full = os.path.join(current, name)
            st = os.lstat(full)
            files[os.path.normpath(os.path.join(rel_dir, name))] = st.st_size
    return files, dirs


def hash_tree(pool: Any, root: Path, files: dict[str, int]) -> dict[str, str]:
    out = {}
    for rel, _size, digest in pool.imap_unordered(_hash_file, [(str(root), r) for r in files], chunksize=64):
        out[rel] = digest
    return out


@dataclass
class Dataset:
    root: Path
    size: int
    seed: int
    counts: dict[str, int]
    files: dict[str, int]
    dirs: set[str]
    hashes: dict[str, str]
    gen_seconds: float

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())


def make_dataset(base: Path, size: int, seed: int, pool: Any) -> Dataset:
    root = base / DATA_NAME
    marker = base / "dataset.json"
    jobs, counts = plan_dataset(size, seed, root)
    started = time.perf_counter()
    if marker.exists() and json.loads(marker.read_text()).get("key") == [size, seed, 1]:
        print(f"  reusing data set in {root}", flush=True)
        gen_seconds = 0.0
    else:
        rmtree(root)
        for job in jobs:
            Path(job[1]).parent.mkdir(parents=True, exist_ok=True)
        done = 0
        for n in pool.imap_unordered(_gen_job, jobs):
            done += n
        gen_seconds = time.perf_counter() - started
        marker.write_text(json.dumps({"key": [size, seed, 1], "counts": counts}))
    files, dirs = list_tree(root)
    if sum(files.values()) != size:
        raise BenchError(f"data set holds {sum(files.values())} bytes, expected {size}")
    t = time.perf_counter()
    hashes = hash_tree(pool, root, files)
    print(f"  data set: {len(files)} files in {len(dirs)} dirs, {size / MB:.1f} MB "
          f"(generated in {gen_seconds:.1f} s, hashed in {time.perf_counter() - t:.1f} s)", flush=True)
    return Dataset(root, size, seed, counts, files, dirs, hashes, gen_seconds)


def verify_restore(pool: Any, data: Dataset, restored: Path, full: bool) -> str:
    """Compare a restored tree with the source; raise BenchError on any difference."""
    if not restored.is_dir():
        raise BenchError(f"restore produced no {restored}")
    files, dirs = list_tree(restored)
    problems = []
    if len(files) != len(data.files):
        problems.append(f"{len(files)} files instead of {len(data.files)}")
    total = sum(files.values())
    if total != data.total_bytes:
        problems.append(f"{total} bytes instead of {data.total_bytes}")
    missing = data.files.keys() - files.keys()
    extra = files.keys() - data.files.keys()
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {sorted(missing)[:3]})")
    if extra:
        problems.append(f"{len(extra)} unexpected (e.g. {sorted(extra)[:3]})")
    wrong_size = [r for r in data.files.keys() & files.keys() if files[r] != data.files[r]]
    if wrong_size:
        problems.append(f"{len(wrong_size)} with wrong size (e.g. {sorted(wrong_size)[:3]})")
    if dirs != data.dirs:
        problems.append(f"directory set differs ({len(dirs)} vs {len(data.dirs)})")
    if problems:
        raise BenchError(f"restored tree {restored} differs from the source: " + "; ".join(problems))
    if not full:
        return "count+bytes"
    digests = hash_tree(pool, restored, files)
    bad = sorted(r for r in digests if digests[r] != data.hashes[r])
    if bad:
        raise BenchError(f"restored tree {restored}: {len(bad)} files differ by SHA-256 (e.g. {bad[:3]})")
    return "sha256"


# --------------------------------------------------------------------------- running


def _read_time(path: Path) -> tuple[int, float]:
    """Last line of GNU time's -o file ('%M %U %S', after any 'Command exited...' line):
    return (ru_maxrss KiB, user+system CPU seconds)."""
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        rss, user, system = lines[-1].split()
        return int(rss), float(user) + float(system)
    except (OSError, ValueError, IndexError):
        return 0, 0.0


_HZ = os.sysconf("SC_CLK_TCK")


def _cpu_counters() -> tuple[float, float]:
    """(busy CPU seconds, steal seconds) of the whole machine so far, from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / _HZ, steal / _HZ


@dataclass
class RunRecord:
    wall: float
    stages: list[list[tuple[str, int]]]  # per step, per stage: (program, ru_maxrss KiB)
    cpu: float = 0.0  # user+system seconds of the measured processes
    others_cpu: float = 0.0  # CPU seconds used by everything else on the machine meanwhile
    steal: float = 0.0  # CPU seconds the hypervisor took meanwhile

    @property
    def peak_kib(self) -> int:
        # stages of one pipeline run concurrently (sum); steps run one after another (max)
        return max(sum(rss for _, rss in step) for step in self.stages)


TIME = "/usr/bin/time"


class Runner:
    """Start pipelines stage by stage and collect wall time and per-process peak RSS.

    Each stage runs under GNU time (``/usr/bin/time -f %M``), which reports the stage's
    ru_maxrss from its own wait4().  We cannot use the ru_maxrss of our own wait4():
    Python starts children with vfork(), and exec() keeps the old (shared, i.e. our)
    memory's high-water mark, so every child would report at least this script's RSS.
    GNU time is a small C program that fork()s, so its floor is ~1 MiB.  ru_maxrss of a
    process includes all its threads (zstd workers, Go runtime threads).
    """

    def __init__(self, logdir: Path, timeout: float):
        self.logdir = logdir
        self.timeout = timeout
        self.live: set[int] = set()
        self.lock = threading.Lock()
        self.counter = itertools.count()

    def kill_all(self) -> None:
        with self.lock:
            for pid in list(self.live):
                try:
                    os.killpg(pid, signal.SIGKILL)  # each stage leads its own session
                except ProcessLookupError:
                    pass

    def run(self, label: str, steps: list[list[list[str]]], env: dict[str, str | None] | None = None,
            cwd: Path | None = None, measured: bool = True) -> RunRecord:
        log_path = self.logdir / (re.sub(r"[^A-Za-z0-9_.-]+", "_", label) + ".log")
        full_env = dict(os.environ)
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        timed_out = threading.Event()

        def on_timeout() -> None:
            timed_out.set()
            self.kill_all()

        if measured:
            settle()
        timer = threading.Timer(self.timeout, on_timeout)
        stage_rss: list[list[tuple[str, int]]] = []
        with open(log_path, "ab") as log:
            log.write(f"\n=== {label}: {' ; '.join(' | '.join(shlex.join(a) for a in s) for s in steps)}\n".encode())
            log.flush()
            timer.start()
            cpu = 0.0
            busy0, steal0 = _cpu_counters()
            started = time.perf_counter()
            try:
                for step in steps:
                    procs: list[subprocess.Popen] = []
                    rss_files: list[Path] = []
                    previous = None
                    try:
                        for i, argv in enumerate(step):
                            last = i == len(step) - 1
                            rss_file = self.logdir / f"rss-{next(self.counter)}.txt"
                            rss_files.append(rss_file)
                            proc = subprocess.Popen(
                                [TIME, "-o", str(rss_file), "-f", "%M %U %S", *argv],
                                stdin=previous.stdout if previous else subprocess.DEVNULL,
                                stdout=log if last else subprocess.PIPE, stderr=log,
                                cwd=cwd, env=full_env, start_new_session=True,
                            )
                            with self.lock:
                                self.live.add(proc.pid)
                            if previous is not None:
                                previous.stdout.close()  # the next stage owns the pipe now
                            procs.append(proc)
                            previous = proc
                    except BaseException:
                        for proc in procs:
                            try:
                                os.killpg(proc.pid, signal.SIGKILL)
                            except ProcessLookupError:
                                pass
                        raise
                    finally:
                        results = []
                        for proc, rss_file in zip(procs, rss_files):
                            _, status, _usage = os.wait4(proc.pid, 0)
                            proc.returncode = os.waitstatus_to_exitcode(status)
                            with self.lock:
                                self.live.discard(proc.pid)
                            results.append((proc, *_read_time(rss_file)))
                    stage_rss.append([(Path(p.args[5]).name, rss) for p, rss, _ in results])
                    cpu += sum(c for _, _, c in results)
                    failed = [(p.args[5:7], p.returncode) for p, _, _ in results if p.returncode != 0]
                    if timed_out.is_set():
                        tail = log_path.read_text(errors="replace")[-2000:]
                        raise BenchError(f"{label}: timed out after {self.timeout:g} s and was killed; "
                                         f"log {log_path}:\n{tail}")
                    if failed:
                        tail = log_path.read_text(errors="replace")[-2000:]
                        raise BenchError(f"{label}: {failed} failed; log {log_path}:\n{tail}")
                wall = time.perf_counter() - started
                busy1, steal1 = _cpu_counters()
            finally:
                timer.cancel()
        return RunRecord(wall, stage_rss, cpu, max(0.0, busy1 - busy0 - cpu), steal1 - steal0)


# --------------------------------------------------------------------------- tools


@dataclass
class Result:
    tool: str
    op: str
    runs: list[float] = field(default_factory=list)
    peaks_kib: list[int] = field(default_factory=list)
    stages: list[Any] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    others_cpu: list[float] = field(default_factory=list)
    steal: list[float] = field(default_factory=list)
    output_bytes: int | None = None
    verified: str = ""

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def peak_mib(self) -> float:
        return max(self.peaks_kib) / 1024

    @property
    def best_index(self) -> int:
        return self.runs.index(self.best)

    def add(self, rec: RunRecord) -> None:
        self.runs.append(rec.wall)
        self.peaks_kib.append(rec.peak_kib)
        self.stages.append(rec.stages)
        self.cpu.append(rec.cpu)
        self.others_cpu.append(rec.others_cpu)
        self.steal.append(rec.steal)


class Tool:
    """One contender: how to reset, back up, measure, and restore."""

    name = ""
    full_verify = False

    def __init__(self, ctx: "Context"):
        self.ctx = ctx
        self.base = ctx.rundir / re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")
        self.base.mkdir(parents=True, exist_ok=True)

    def reset(self) -> None:
        """Untimed: remove the previous backup so each backup run starts from scratch."""

    def backup_steps(self) -> list[list[list[str]]]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {}

    def backup_cwd(self) -> Path | None:
        return None

    def output_bytes(self) -> int:
        raise NotImplementedError

    def restore_steps(self, dest: Path) -> list[list[list[str]]]:
        raise NotImplementedError

    def restore_cwd(self, dest: Path) -> Path | None:
        return None

    def restored_root(self, dest: Path) -> Path:
        return dest / DATA_NAME


class TarZstd(Tool):
    name = "tar|zstd"

    def __init__(self, ctx: "Context"):
        super().__init__(ctx)
        self.out = self.base / f"{DATA_NAME}.tar.zst"

    def reset(self) -> None:
        rmtree(self.out)

    def backup_steps(self):
        return [[["tar", "cf", "-", "-C", str(self.ctx.data.root.parent), DATA_NAME],
                 ["zstd", "-3", "-T0", "-q", "-o", str(self.out)]]]

    def output_bytes(self) -> int:
        return self.out.stat().st_size

    def restore_steps(self, dest):
        return [[["zstd", "-d", "-T0", "-q", "-c", str(self.out)], ["tar", "xf", "-", "-C", str(dest)]]]


class TarZstdSync(TarZstd):
    """The baseline plus an fsync of the archive (bakthat's local store fsyncs on commit)."""

    name = "tar|zstd+fsync"

    def backup_steps(self):
        return super().backup_steps() + [[["sync", str(self.out)]]]


def age_identity(path: Path) -> str:
    """Create an age identity file at ``path`` (with age-keygen) unless it exists;
    return its public key (``age1...``)."""
    if not path.exists():
        subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    for line in path.read_text().splitlines():
        if line.startswith("# public key: "):
            return line.split(": ", 1)[1].strip()
    raise BenchError(f"no public key in {path}")


class TarZstdAge(TarZstd):
    """The baseline encrypted to an age recipient with the age CLI."""

    name = "tar|zstd|age"
    restores = True

    def __init__(self, ctx: "Context"):
        super().__init__(ctx)
        self.out = self.base / f"{DATA_NAME}.tar.zst.age"
        self.identity = self.base / "identity.txt"
        self.recipient = age_identity(self.identity)

    def backup_steps(self):
        return [[["tar", "cf", "-", "-C", str(self.ctx.data.root.parent), DATA_NAME],
                 ["zstd", "-3", "-T0", "-q", "-c"], ["age", "-r", self.recipient, "-o", str(self.out)]]]

    def restore_steps(self, dest):
        return [[["age", "-d", "-i", str(self.identity), str(self.out)], ["zstd", "-d", "-q", "-c"],
                 ["tar", "xf", "-", "-C", str(dest)]]]


class Bakthat(Tool):
    name = "bakthat"
    full_verify = True
    restores = True
    encrypted = False
    password = False

    def __init__(self, ctx: "Context"):
        super().__init__(ctx)
        self.store = self.base / "store"
        self.database = self.base / "catalog.sqlite"
        self.config = self.base / "bakthat.yml"
        self.config.write_text(
            "default:\n"
            f"  local_path: {json.dumps(str(self.store))}\n"
            f"  database: {json.dumps(str(self.database))}\n"
            "  scrypt_work_factor: 18\n"
        )

    def env(self):
        env: dict[str, str | None] = {"HOME": str(self.ctx.home), "PYTHONPATH": self.ctx.pythonpath,
                                      "PYTHONDONTWRITEBYTECODE": None,
                                      "PYTHONPYCACHEPREFIX": str(self.ctx.pycache)}
        if self.password:
            env["BAKTHAT_PASSWORD"] = PASSWORD
        return env

    def reset(self) -> None:
        rmtree(self.store)
        for suffix in ("", "-wal", "-shm", "-journal"):
            rmtree(Path(str(self.database) + suffix))

    def backup_steps(self):
        return [[[*self.ctx.bakthat, "backup", str(self.ctx.data.root), "--prompt", "no", "-c", str(self.config)]]]

    def archive(self) -> Path:
        if not self.store.is_dir():
            raise BenchError(f"{self.name}: the backup left no store at {self.store}")
        # (the store also holds the manifest and, since issue 13, the file index)
        archives = [p for p in self.store.iterdir() if p.name.endswith((".tar.zst", ".tar.zst.age"))]
        if len(archives) != 1:
            raise BenchError(f"{self.name}: expected one archive in {self.store}, found {[p.name for p in archives]}")
        want = ".tar.zst.age" if self.encrypted else ".tar.zst"
        if not archives[0].name.endswith(want):
            raise BenchError(f"{self.name}: archive {archives[0].name} does not end with {want}")
        return archives[0]

    def output_bytes(self) -> int:
        return self.archive().stat().st_size

    def restore_steps(self, dest):
        return [[[*self.ctx.bakthat, "restore", DATA_NAME, "--target", str(dest), "--prompt", "no",
                  "-c", str(self.config)]]]


class BakthatAge(Bakthat):
    """bakthat with a password (age's scrypt recipient)."""

    name = "bakthat+age"
    encrypted = True
    password = True


class BakthatRecipient(Bakthat):
    """bakthat encrypting to an age recipient (X25519), restoring with its identity."""

    name = "bakthat+recipient"
    encrypted = True
    restores = True

    def __init__(self, ctx: "Context"):
        super().__init__(ctx)
        identity = self.base / "identity.txt"
        recipient = age_identity(identity)
        with open(self.config, "a") as config:
            config.write(f"  encryption_recipients: [{json.dumps(recipient)}]\n"
                         f"  identity_file: {json.dumps(str(identity))}\n")


def rooted(cls: type[Tool], root: Path, label: str) -> type[Tool]:
    """Return a variant of a bakthat tool that runs the bakthat found in ``root`` (a
    checkout of another commit), named ``<name>@<label>``."""

    class Rooted(cls):  # type: ignore[valid-type,misc]
        name = f"{cls.name}@{label}"

        def backup_cwd(self):  # not the current checkout: python -m puts the cwd first on sys.path
            return super().backup_cwd() or self.base

        def restore_cwd(self, dest):
            return super().restore_cwd(dest) or self.base

        def env(self):
            env = super().env()
            env["PYTHONPATH"] = str(root)
            env["PYTHONPYCACHEPREFIX"] = str(self.ctx.pycache / label)
            return env

    Rooted.root, Rooted.label = root, label  # type: ignore[attr-defined]
    Rooted.__name__ = Rooted.__qualname__ = f"{cls.__name__}At{label.capitalize()}"
    return Rooted


class Restic(Tool):
    name = "restic"

    def __init__(self, ctx: "Context"):
        super().__init__(ctx)
        self.repo = self.base / "repo"

    def env(self):
        return {"RESTIC_PASSWORD": PASSWORD, "HOME": str(self.ctx.home),
                "XDG_CACHE_HOME": str(self.base / "cache")}

    def reset(self) -> None:
        rmtree(self.repo)
        rmtree(self.base / "cache")
        self.ctx.runner.run(f"{self.name}-init", [[["restic", "-r", str(self.repo), "init"]]], env=self.env(),
                            measured=False)

    def backup_cwd(self):
        return self.ctx.data.root.parent

    def backup_steps(self):
        return [[["restic", "-r", str(self.repo), "backup", DATA_NAME]]]

    def output_bytes(self) -> int:
        return tree_bytes(self.repo)

    def restore_steps(self, dest):
        return [[["restic", "-r", str(self.repo), "restore", "latest", "--target", str(dest)]]]

    def restored_root(self, dest):
        # restic 0.14 restores a relative backup path under the target as is (older
        # versions used the absolute path)
        relative = dest / DATA_NAME
        return relative if relative.exists() else dest / str(self.ctx.data.root).lstrip("/")


class Borg(Tool):
    name = "borg"

    def __init__(self, ctx: "Context"):
        super().__init__(ctx)
        self.repo = self.base / "repo"

    def env(self):
        return {"BORG_PASSPHRASE": PASSWORD, "BORG_BASE_DIR": str(self.base / "borgbase"),
                "HOME": str(self.ctx.home)}

    def reset(self) -> None:
        rmtree(self.repo)
        rmtree(self.base / "borgbase")
        self.ctx.runner.run(f"{self.name}-init", [[["borg", "init", "-e", "repokey", str(self.repo)]]],
                            env=self.env(), measured=False)

    def backup_cwd(self):
        return self.ctx.data.root.parent

    def backup_steps(self):
        return [[["borg", "create", "--compression", "zstd,3", f"{self.repo}::a", DATA_NAME]]]

    def output_bytes(self) -> int:
        return tree_bytes(self.repo)

    def restore_cwd(self, dest):
        return dest

    def restore_steps(self, dest):
        return [[["borg", "extract", f"{self.repo}::a"]]]


TOOLS = [TarZstd, TarZstdSync, TarZstdAge, Bakthat, BakthatRecipient, BakthatAge, Restic, Borg]
RESTORE_TOOLS = {"tar|zstd", "bakthat", "bakthat+age", "restic", "borg"}


@dataclass
class Context:
    rundir: Path
    home: Path
    data: Dataset
    runner: Runner
    bakthat: list[str]
    pythonpath: str
    pool: Any
    pycache: Path


# --------------------------------------------------------------------------- benchmark


def available_tools(selected: set[str] | None) -> list[type[Tool]]:
    chosen = []
    for cls in TOOLS:
        if selected is not None and cls.name not in selected:
            continue
        if cls in (Restic, Borg) and shutil.which(cls.name) is None:
            print(f"  {cls.name} not installed: skipped", flush=True)
            continue
        chosen.append(cls)
    return chosen


def bench_one_size(args: argparse.Namespace, size: int, workdir: Path, pool: Any,
                   bakthat_cmd: list[str], pythonpath: str,
                   extra_tools: list[type[Tool]] = ()) -> dict[str, Any]:
    print(f"\n##### data set {fmt_size(size)} ({size} bytes), seed {args.seed}", flush=True)
    data_base = workdir / f"data-{size}-{args.seed}"
    data_base.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(workdir).free
    if free < 16 * size:
        print(f"  WARNING: {free / MB:.0f} MB free in {workdir}; a run needs about {16 * size / MB:.0f} MB "
              "(all restored trees are kept until the end of the size)", flush=True)
    data = make_dataset(data_base, size, args.seed, pool)
    rundir = workdir / f"run-{size}"
    rmtree(rundir)
    (rundir / "logs").mkdir(parents=True)
    home = rundir / "home"
    home.mkdir()
    timeout = args.timeout or (180 + 900 * size / 10**9)
    runner = Runner(rundir / "logs", timeout)
    pycache = rundir / "pycache"
    ctx = Context(rundir, home, data, runner, bakthat_cmd, pythonpath, pool, pycache)
    if bakthat_cmd[1:3] == ["-m", "bakthat"]:
        # Byte-compile bakthat (untimed) into a private cache, as an installed package
        # would be; the repo itself is left untouched.
        subprocess.run([bakthat_cmd[0], "-m", "compileall", "-q", str(REPO_ROOT / "bakthat")], check=True,
                       env={**os.environ, "PYTHONPYCACHEPREFIX": str(pycache)}, stdout=subprocess.DEVNULL)
    for root, label in {(getattr(t, "root", None), getattr(t, "label", None)) for t in extra_tools}:
        if root is not None:  # byte-compile the other checkout too, into its own cache
            subprocess.run([bakthat_cmd[0], "-m", "compileall", "-q", str(Path(root) / "bakthat")], check=True,
                           env={**os.environ, "PYTHONPYCACHEPREFIX": str(pycache / label)}, stdout=subprocess.DEVNULL)
    tools = [cls(ctx) for cls in [*available_tools(args.tools), *extra_tools]]
    results: dict[tuple[str, str], Result] = {}
    load_before = os.getloadavg()
    print(f"  load average before: {' '.join(f'{x:.2f}' for x in load_before)}", flush=True)

    try:
        def backup(tool: Tool, n: int) -> RunRecord:
            tool.reset()
            label = f"{tool.name} backup #{n}"
            rec = runner.run(label, tool.backup_steps(), env=tool.env(), cwd=tool.backup_cwd())
            res = results.setdefault((tool.name, "backup"), Result(tool.name, "backup"))
            res.add(rec)
            res.output_bytes = tool.output_bytes()
            print(f"  {label:<28} {rec.wall:8.2f} s  peak {rec.peak_kib / 1024:7.1f} MiB  "
                  f"cpu {rec.cpu:6.2f} s  others {rec.others_cpu:5.2f} s{' (disturbed)' if disturbed(rec) else ''}"
                  f"  out {res.output_bytes / MB:9.1f} MB", flush=True)
            return rec

        def restore(tool: Tool, n: int) -> RunRecord:
            # restored trees are kept until the end of this size (see settle())
            dest = (RESTORE_ROOT or rundir / "restore") / f"{re.sub(r'[^a-z0-9]+', '-', tool.name)}-{n}"
            rmtree(dest)
            dest.mkdir(parents=True)
            label = f"{tool.name} restore #{n}"
            rec = runner.run(label, tool.restore_steps(dest), env=tool.env(), cwd=tool.restore_cwd(dest))
            checked = verify_restore(pool, data, tool.restored_root(dest), tool.full_verify)
            if RESTORE_ROOT is not None:
                shutil.rmtree(dest)  # not rmtree(): deleting from a tmpfs calls for no settling
            res = results.setdefault((tool.name, "restore"), Result(tool.name, "restore"))
            res.add(rec)
            res.verified = f"ok ({checked})"
            print(f"  {label:<28} {rec.wall:8.2f} s  peak {rec.peak_kib / 1024:7.1f} MiB  "
                  f"cpu {rec.cpu:6.2f} s  others {rec.others_cpu:5.2f} s{' (disturbed)' if disturbed(rec) else ''}"
                  f"  verified {checked}", flush=True)
            return rec

        for op, action, chosen in (("backup", backup, tools),
                                   ("restore", restore, [t for t in tools if t.name in RESTORE_TOOLS
                                                         or getattr(t, "restores", False)])):
            # rep-major order, so slow drift hits every tool alike; restores use the last backup
            for n in range(1, args.reps + 1):
                for tool in chosen:
                    action(tool, n)
            # re-run, a few times at most, a command none of whose runs was free of other
            # processes' load (a disturbed run can only be slower, so the minimum stays valid)
            for tool in chosen:
                res = results[(tool.name, op)]
                n = len(res.runs)
                while all(is_disturbed(o, w) for o, w in zip(res.others_cpu, res.runs)) \
                        and n < args.reps + args.extra_reps:
                    n += 1
                    action(tool, n)
    finally:
        runner.kill_all()
    load_after = os.getloadavg()
    print(f"  load average after:  {' '.join(f'{x:.2f}' for x in load_after)}", flush=True)
    report = render_table(data, list(results.values()), args.reps)
    print(report, flush=True)
    out = {
        "size": size,
        "seed": args.seed,
        "reps": args.reps,
        "timeout_s": timeout,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "dataset": {"files": len(data.files), "dirs": len(data.dirs), "bytes": data.total_bytes,
                    "generation_s": round(data.gen_seconds, 2), **data.counts},
        "results": [dict(asdict(r), best_wall_s=r.best, peak_rss_mib=r.peak_mib,
                         throughput_mb_s=data.total_bytes / MB / r.best) for r in results.values()],
        "table": report,
    }
    rmtree(rundir)
    if not args.keep_data:
        rmtree(data_base)
    return out


def render_table(data: Dataset, results: list[Result], reps: int) -> str:
    by = {(r.tool, r.op): r for r in results}
    src = data.total_bytes
    head = (f"{'tool':<15} {'op':<8} {'wall s':>7} {'median':>7} {'MB/s':>7} {'output bytes':>13} "
            f"{'out/src':>7} {'RSS MiB':>8} {'CPU s':>6} {'x tar|zstd':>10} {'x restic':>8} {'others':>6}  "
            "verified; all runs s")
    lines = [
        "",
        f"Source: {src} bytes ({src / MB:.1f} MB), {len(data.files)} files, {len(data.dirs)} dirs.",
        f"wall = best (min) of {reps} runs, median = median of all runs (page cache warm, sync before each run);",
        "MB = 10^6 bytes; MB/s = source bytes / best wall;",
        "out/src = output (archive or repository) bytes / source bytes; RSS = peak RSS, max over runs "
        "(pipeline: sum of its stages);",
        "CPU s = user+system CPU of the tool's processes in the best run; x tar|zstd, x restic = wall / "
        "their wall, same operation;",
        "others = CPU seconds used by other processes on the machine during the best run (noise indicator; "
        "! = disturbed).",
        f"Runs beyond {reps} were added only when all runs so far were disturbed by other processes.",
        head,
        "-" * len(head),
    ]
    for op in ("backup", "restore"):
        base = by.get(("tar|zstd", op))
        restic = by.get(("restic", op))
        for r in results:
            if r.op != op:
                continue
            i = r.best_index
            runs = "/".join(f"{w:.2f}" for w in r.runs)
            out = f"{r.output_bytes:>13}" if r.output_bytes is not None else f"{'-':>13}"
            ratio = f"{r.output_bytes / src:7.3f}" if r.output_bytes is not None else f"{'-':>7}"
            xb = f"{r.best / base.best:10.2f}" if base else f"{'-':>10}"
            xr = f"{r.best / restic.best:8.2f}" if (restic and op == "restore") else f"{'-':>8}"
            lines.append(f"{r.tool:<15} {op:<8} {r.best:7.2f} {statistics.median(r.runs):7.2f} "
                         f"{src / MB / r.best:7.1f} {out} "
                         f"{ratio} {r.peak_mib:8.1f} {r.cpu[i]:6.2f} {xb} {xr} {r.others_cpu[i]:6.2f}"
                         f"{'!' if is_disturbed(r.others_cpu[i], r.best) else ' '} "
                         f"{r.verified or '-'}; {runs}")
        lines.append("")
    lines.append("Per-process peak RSS (MiB) of the best run's pipeline stages:")
    for r in results:
        stages = " ; ".join(" | ".join(f"{prog} {rss / 1024:.1f}" for prog, rss in step)
                            for step in r.stages[r.best_index])
        lines.append(f"  {r.tool:<15} {r.op:<8} {stages}")
    return "\n".join(lines)


def _git_state() -> str:
    """Commit of the repository and whether bakthat/ has uncommitted changes."""
    try:
        head = subprocess.run(["git", "-C", str(REPO_ROOT), "log", "-1", "--format=%h %cI %s"],
                              capture_output=True, text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "bakthat"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if not head:
        return "not a git checkout"
    return f"{head[:90]}; bakthat/ {'has uncommitted changes' if dirty else 'clean'}"


def machine_info(bakthat_cmd: list[str], pythonpath: str, workdir: Path) -> dict[str, str]:
    cpu = "?"
    flags = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "?":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    env = dict(os.environ, PYTHONPATH=pythonpath)
    libs = first_line([bakthat_cmd[0], "-c", "import sys, zstandard, cryptography; "
                       "print(f'python {sys.version.split()[0]}, zstandard {zstandard.__version__} "
                       "(libzstd {zstandard.ZSTD_VERSION}), cryptography {cryptography.__version__}')"], env) \
        if bakthat_cmd[1:2] == ["-m"] else "n/a"
    fs = first_line(["stat", "-f", "-c", "%T", str(workdir)])
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nproc": f"{os.cpu_count()} (usable: {len(os.sched_getaffinity(0))})",
        "cpu": f"{cpu}; flags: {' '.join(f for f in ('aes', 'sha_ni', 'avx2', 'avx512f') if f in flags)}",
        "memory": mem,
        "kernel": f"{platform.system()} {platform.release()}",
        "workdir": f"{workdir} ({fs})",
        "bench python": sys.version.split()[0],
        "bakthat": first_line([*bakthat_cmd, "--version"], env) + f" [{shlex.join(bakthat_cmd)}]",
        "bakthat libs": libs,
        "bakthat git": _git_state(),
        "tar": first_line(["tar", "--version"]),
        "zstd": first_line(["zstd", "--version"]),
        "restic": first_line(["restic", "version"]) if shutil.which("restic") else "not installed",
        "borg": first_line(["borg", "--version"]) if shutil.which("borg") else "not installed",
    }
    return info


def scale_summary(small: dict[str, Any], big: dict[str, Any]) -> str:
    factor = big["size"] / small["size"]
    a = {(r["tool"], r["op"]): r for r in small["results"]}
    lines = ["", f"Scale check: {fmt_size(small['size'])} -> {fmt_size(big['size'])} (x{factor:g} data)",
             f"{'tool':<15} {'op':<8} {'RSS MiB @S':>10} {'RSS MiB @' + str(int(factor)) + 'S':>11} "
             f"{'RSS ratio':>9} {'wall ratio':>10}"]
    for r in big["results"]:
        s = a.get((r["tool"], r["op"]))
        if not s:
            continue
        lines.append(f"{r['tool']:<15} {r['op']:<8} {s['peak_rss_mib']:10.1f} {r['peak_rss_mib']:11.1f} "
                     f"{r['peak_rss_mib'] / s['peak_rss_mib']:9.2f} {r['best_wall_s'] / s['best_wall_s']:10.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("1G"),
                        help="data set size (K/M/G decimal, KiB/MiB/GiB binary; default 1G)")
    parser.add_argument("--workdir", type=Path,
                        help="work directory (default: a temp dir under /tmp, removed at the end)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--scale", type=int, default=0, metavar="N",
                        help="also run at N x size and compare peak memory (memory should stay flat)")
    parser.add_argument("--scale-check", action="store_true", help="same as --scale 4")
    parser.add_argument("--reps", type=int, default=2, help="runs per measured command (best wall reported; default 2)")
    parser.add_argument("--seed", type=int, default=20261122, help="data set seed")
    parser.add_argument("--timeout", type=float, default=0,
                        help="seconds per command (default: 180 + 900 per GB of data)")
    parser.add_argument("--tools", type=lambda s: set(s.split(",")),
                        help=f"comma-separated subset of: {','.join(c.name for c in TOOLS)}")
    parser.add_argument("--bakthat", default=None,
                        help="command that runs bakthat (default: this python -m bakthat with the repo on PYTHONPATH)")
    parser.add_argument("--keep-data", action="store_true",
                        help="keep the generated data set in --workdir (reused by the next run with the same size/seed)")
    parser.add_argument("--extra-reps", type=int, default=3,
                        help="extra runs, at most, of a command all of whose runs were disturbed by other "
                             "processes (default 3)")
    parser.add_argument("--no-quiet-wait", action="store_true",
                        help="do not wait for other processes to go quiet before each measured command")
    parser.add_argument("--no-settle", action="store_true",
                        help="do not wait after bulk deletions before measuring (see README)")
    parser.add_argument("--restore-root", type=Path,
                        help="restore into this directory (a tmpfs: the restore pipelines without the disk)")
    args = parser.parse_args(argv)
    global SETTLE_SECONDS, QUIET_MAX_WAIT, RESTORE_ROOT
    RESTORE_ROOT = args.restore_root
    if args.no_settle:
        SETTLE_SECONDS = 0.0
    if args.no_quiet_wait:
        QUIET_MAX_WAIT = 0.0
    if args.scale_check and not args.scale:
        args.scale = 4
    if args.tools and "tar|zstd" not in args.tools:
        args.tools.add("tar|zstd")  # the baseline every ratio refers to
    if args.reps < 1:
        parser.error("--reps must be at least 1")

    bakthat_cmd = shlex.split(args.bakthat) if args.bakthat else [sys.executable, "-m", "bakthat"]
    pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    check = subprocess.run([*bakthat_cmd, "--version"], capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=pythonpath))
    if check.returncode != 0:
        print(f"cannot run bakthat with {shlex.join(bakthat_cmd)}:\n{check.stderr}", file=sys.stderr)
        return 2
    for tool in ("tar", "zstd", "sync", TIME):
        if shutil.which(tool) is None:
            print(f"{tool} is required", file=sys.stderr)
            return 2

    temp = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="bakthat-bench-", dir="/tmp")) if temp else args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if temp:
        args.keep_data = False

    info = machine_info(bakthat_cmd, pythonpath, workdir)
    print("bakthat pipeline benchmark")
    for key, value in info.items():
        print(f"  {key + ':':<14} {value}")
    print(f"  reps:          {args.reps} per command (best wall reported), timeouts per command", flush=True)

    sizes = [args.size] + ([args.size * args.scale] if args.scale else [])
    outputs = []
    ctx = multiprocessing.get_context("fork")
    _build_vocab(args.seed)

    main_pid = os.getpid()

    def on_signal(signum: int, _frame: Any) -> None:
        if os.getpid() != main_pid:  # a pool worker being terminated at shutdown
            os._exit(128 + signum)
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    try:
        # Not "with Pool()": its exit terminate()s the workers with SIGTERM, which can
        # catch one inside the task queue's lock; close() + join() lets them finish.
        pool = ctx.Pool(len(os.sched_getaffinity(0)))
        try:
            for size in sizes:
                outputs.append(bench_one_size(args, size, workdir, pool, bakthat_cmd, pythonpath))
        except BaseException:
            pool.terminate()
            raise
        pool.close()
        pool.join()
    except BenchError as exc:
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        if temp:
            shutil.rmtree(workdir, ignore_errors=True)

    summary = scale_summary(outputs[0], outputs[1]) if len(outputs) == 2 else ""
    if summary:
        print(summary, flush=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "runs": outputs, "scale_summary": summary}, indent=2))
        print(f"\nJSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
