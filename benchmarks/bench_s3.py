"""Issue 15's S3 rows against a moto server: upload throughput and client memory against
boto3's ``upload_file`` (and the AWS CLI's), restore against a download plus ``zstd -d | tar x``.

Run::

    python benchmarks/bench_s3.py [--size 1GiB] [--reps 3] [--part-size 8MiB] [--concurrency 4]
                                  [--aws /path/to/aws] [--uploads-only] [--json]

What it does, in one run:

1. starts ``moto.server`` in its own process on 127.0.0.1 (so its memory is not ours);
2. writes ``--size`` bytes of random data into a source directory and backs it up to
   S3 with zstd (the archive the restores read), then fetches that archive's bytes;
3. ``--reps`` times, interleaved: the uploads of the same bytes (``bakthat backup`` of
   the archive file with ``--compression none``, a whole command; bakthat's upload stage
   alone, :func:`upload_child`; boto3's ``upload_file`` and ``aws s3 cp`` of the file,
   same part size and concurrency), each object deleted after (moto
   keeps objects in memory); then the restores of the zstd archive: ``bakthat restore``,
   ``aws s3 cp`` to a file then ``zstd -d | tar x`` (the CLI downloads in parallel
   ranged GETs), and one streaming GET (boto3 ``get_object``) piped into ``zstd -d |
   tar x`` (``--uploads-only`` skips the restores: the CLI's row takes minutes on moto);
4. prints each row's median wall and CPU seconds (every stage of a pipeline summed) and
   the peak RSS of its largest process (``wait4``), checks the restored bytes, and
   reports any file bakthat's uploads created in ``TMPDIR`` or opened outside the
   source, the catalog and Python (there must be none: no temp file).

Figures depend on the machine and on moto (a Python server: it, not the client, is
usually the bottleneck; it re-reads the whole object for every ranged GET, which
penalizes the AWS CLI's parallel downloads), so compare the rows of one run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20


def parse_size(text: str) -> int:
    sys.path.insert(0, str(ROOT))
    from bakthat.backends._config import parse_size as parse

    return parse(text, 0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
            return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("moto server did not start")


class Watcher(threading.Thread):
    """Poll a process's open files and a TMPDIR; remember what was seen."""

    def __init__(self, pid: int, tmpdir: Path, allowed: list[str]):
        super().__init__(daemon=True)
        self.pid = pid
        self.tmpdir = tmpdir
        self.allowed = allowed
        self.opened: set[str] = set()
        self.tmp_entries: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                for fd in os.listdir(f"/proc/{self.pid}/fd"):
                    try:
                        target = os.readlink(f"/proc/{self.pid}/fd/{fd}")
                    except OSError:
                        continue
                    if target.startswith("/") and not target.startswith(("/dev/", "/proc/")):
                        self.opened.add(target)
            except OSError:
                pass
            self.tmp_entries.update(os.listdir(self.tmpdir))
            time.sleep(0.05)

    def unexpected(self) -> list[str]:
        return sorted(path for path in self.opened if not any(path.startswith(prefix) for prefix in self.allowed))


def run_measured(argv: list[str], env: dict[str, str], tmpdir: Path, allowed: list[str]) -> dict:
    """Run a command; return wall seconds, peak RSS (MiB), and what it opened."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watcher = Watcher(process.pid, tmpdir, allowed)
    watcher.start()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    watcher.stop.set()
    watcher.join()
    out, err = process.stdout.read(), process.stderr.read()  # type: ignore[union-attr]
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv[:3]} failed: {err.decode(errors='replace')[-2000:]}")
    return {
        "seconds": elapsed,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "unexpected_files": watcher.unexpected(),
        "tmpdir_entries": sorted(watcher.tmp_entries),
        "stdout": out.decode(errors="replace"),
    }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(8 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def own_rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def write_source(directory: Path, size: int) -> None:
    directory.mkdir(parents=True)
    with open(directory / "random.bin", "wb") as handle:
        left = size
        while left:
            chunk = os.urandom(min(left, 8 * MiB))
            handle.write(chunk)
            left -= len(chunk)


def measure_shell(command: str, env: dict[str, str], tmpdir: Path) -> dict:
    """Run a shell pipeline; return wall and CPU seconds (every stage summed) and the
    peak RSS of its largest stage."""
    return run_measured(["sh", "-c", "set -e; " + command], env, tmpdir, ["/"])


def s3_call(env: dict[str, str], *lines: str) -> None:
    """Run boto3 code in a child (``c`` is the client), so this process stays small."""
    subprocess.run([sys.executable, "-c", "import sys, boto3; c = boto3.client('s3'); " + "; ".join(lines)],
                   env=env, check=True)


#: The ways ``upload_child`` uploads the bytes of one file (see its docstring).
UPLOADERS = ("bakthat-stage", "bakthat-put", "boto3", "boto3-defaults")


def upload_child(how: str, path: str, key: str, part_size: int, concurrency: int, bucket: str = "bench-bucket") -> dict:
    """Given an uploader of :data:`UPLOADERS`, upload the file at ``path`` to ``bucket``/``key``
    in this process and return its timing: ``seconds`` (wall) and ``cpu_seconds`` (this
    process's user+system, every thread) from the client's creation to the confirmed
    object, and ``bytes``.

    ``bakthat-stage`` is a backup's upload stage without the tar writer and compressor:
    the file is read into one reused 1 MiB buffer and each view of it is written to
    ``WriteBehind(HashingWriter(upload))``, as ``core._store`` wires them, then the upload
    is committed (bucket check, exists check, multipart upload, conditional completion,
    size check of the object, SHA-256 tag).  ``bakthat-put`` is ``Backend.put`` of the
    open file (1 MiB reads).  ``boto3`` is boto3's ``upload_file`` with the same part size
    and concurrency, ``boto3-defaults`` with its own (8 MiB, 10 threads).  Every one uses the standard credential chain and
    ``AWS_ENDPOINT_URL``; the bakthat ones import bakthat from ``sys.path`` (the
    caller's ``PYTHONPATH`` chooses the checkout).
    """
    size = os.path.getsize(path)
    started, cpu = time.perf_counter(), time.process_time()
    if how in ("boto3", "boto3-defaults"):
        import boto3
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig() if how == "boto3-defaults" else TransferConfig(
            multipart_threshold=part_size, multipart_chunksize=part_size, max_concurrency=concurrency)
        boto3.client("s3").upload_file(path, bucket, key, Config=config)
    else:
        from bakthat.backends import s3

        backend = s3.Backend({"s3_bucket": bucket, "part_size": part_size, "concurrency": concurrency})
        if how == "bakthat-put":
            with open(path, "rb") as source:
                backend.put(key, source)
        elif how == "bakthat-stage":
            from bakthat.pipeline import HashingWriter
            from bakthat.streams import WriteBehind

            upload = backend.open_upload(key)
            counted = HashingWriter(upload)
            behind = WriteBehind(counted)
            buffer = bytearray(MiB)
            view = memoryview(buffer)
            with open(path, "rb", buffering=0) as source:
                while count := source.readinto(buffer):
                    behind.write(view[:count])
            behind.close()
            stored = upload.commit()
            if stored.size != size or counted.size != size:
                raise RuntimeError(f"stored {stored.size} bytes of {size}")
        else:
            raise ValueError(f"unknown uploader {how!r}")
    return {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu, "bytes": size}


def main() -> int:
    if sys.argv[1:2] == ["--upload-child"]:  # python bench_s3.py --upload-child HOW FILE KEY PART CONC OUT
        how, path, key, part, conc, out = sys.argv[2:8]
        Path(out).write_text(json.dumps(upload_child(how, path, key, int(part), int(conc))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--part-size", help="the profile's part_size (default: bakthat's, 5 MiB)")
    parser.add_argument("--concurrency", type=int, help="the profile's concurrency (default: bakthat's, 4)")
    parser.add_argument("--reps", type=int, default=3, help="interleaved runs of each row (medians)")
    parser.add_argument("--aws", default=shutil.which("aws"), help="the aws CLI (default: found on PATH)")
    parser.add_argument("--uploads-only", action="store_true", help="only the upload rows (no restores)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    size = parse_size(args.size)
    sys.path.insert(0, str(ROOT))
    from bakthat.backends._s3_config import S3Config

    part_size = parse_size(args.part_size) if args.part_size else S3Config.part_size
    concurrency = args.concurrency or S3Config.concurrency

    work = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    moto, url = start_moto()
    results: dict[str, list[dict]] = {}
    try:
        home, tmpdir, source = work / "home", work / "tmp", work / "src" / "bak"
        home.mkdir()
        tmpdir.mkdir()
        write_source(source, size)
        (home / ".bakthat.yml").write_text(
            "default:\n  s3_bucket: bench-bucket\n"
            + (f"  part_size: {args.part_size}\n" if args.part_size else "")
            + (f"  concurrency: {args.concurrency}\n" if args.concurrency else "")
        )
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "TMPDIR": str(tmpdir),
            "PYTHONPATH": str(ROOT),
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(work / "aws-config"),
        }
        (work / "aws-config").write_text(
            f"[default]\ns3 =\n  multipart_chunksize = {part_size // MiB}MB\n"
            f"  max_concurrent_requests = {concurrency}\n"
        )
        prefix = os.path.dirname(os.path.dirname(os.__file__))
        allowed = [str(source), str(home / ".bakthat"), sys.prefix, sys.base_prefix, prefix, str(ROOT)]
        bakthat = [sys.executable, "-m", "bakthat"]

        def add(name: str, result: dict) -> dict:
            results.setdefault(name, []).append(result)
            return result

        # The archive the restores read (zstd), and its bytes for the peers' uploads.
        made = run_measured([*bakthat, "backup", str(source), "-d", "s3", "--prompt", "no", "--json",
                             "--name", "zst"], env, tmpdir, allowed)
        stored = json.loads(made["stdout"])["stored_filename"]
        archive = work / "archive.tar.zst"
        s3_call(env, f"c.download_file('bench-bucket', {stored!r}, {str(archive)!r})")
        s3_call(env, f"c.upload_file({str(archive)!r}, 'bench-bucket', 'peer.tar.zst')")
        upload_peer = (f"{args.aws} s3 cp {archive} s3://bench-bucket/aws.bin --endpoint-url {url} --no-progress"
                       if args.aws else None)
        boto_up = [sys.executable, "-c", "import sys, boto3; from boto3.s3.transfer import TransferConfig; "
                   f"boto3.client('s3').upload_file(sys.argv[1], 'bench-bucket', 'boto.bin', "
                   f"Config=TransferConfig(multipart_chunksize={part_size}, max_concurrency={concurrency}))",
                   str(archive)]
        stream = (f"{sys.executable} -c \"import sys, boto3; body = boto3.client('s3').get_object("
                  f"Bucket='bench-bucket', Key='peer.tar.zst')['Body']; "
                  f"[sys.stdout.buffer.write(chunk) for chunk in body.iter_chunks(1 << 20)]\"")
        for rep in range(1, args.reps + 1):
            # Uploads of the same bytes: bakthat's upload of the archive file (compression
            # none: what it stores is that file in a tar), boto3's and the CLI's of the file.
            add("bakthat backup -d s3 (upload)", run_measured(
                [*bakthat, "backup", str(archive), "-d", "s3", "--prompt", "no", "--compression", "none",
                 "--name", f"up{rep}"], {**env, "TMPDIR": str(tmpdir)}, tmpdir, [*allowed, str(archive)]))
            # The upload stage alone (docs/benchmarks.md: the fair comparison with boto3).
            add("bakthat upload stage (same bytes)", run_measured(
                [sys.executable, __file__, "--upload-child", "bakthat-stage", str(archive), f"stage{rep}",
                 str(part_size), str(concurrency), str(work / "timing.json")], env, tmpdir, ["/"]))
            add("boto3 upload_file", run_measured(boto_up, env, tmpdir, ["/"]))
            if upload_peer:
                add("aws s3 cp (upload)", measure_shell(upload_peer, env, tmpdir))
            s3_call(env, *[f"c.delete_object(Bucket='bench-bucket', Key={key!r})" for key in ("boto.bin", "aws.bin", f"stage{rep}")],
                    "[c.delete_object(Bucket='bench-bucket', Key=o['Key']) for o in "
                    f"c.list_objects_v2(Bucket='bench-bucket', Prefix='up{rep}.').get('Contents', [])]")
            if args.uploads_only:
                same = True
                continue
            # Restores of the zstd archive.
            target = work / "restored"
            add("bakthat restore -d s3", run_measured(
                [*bakthat, "restore", "zst", "-d", "s3", "--target", str(target), "--prompt", "no"],
                env, tmpdir, [*allowed, str(target)]))
            same = file_sha256(target / "zst" / "random.bin") == file_sha256(source / "random.bin")
            shutil.rmtree(target)
            target.mkdir()
            if args.aws:
                add("aws s3 cp to a file, then zstd -d | tar x", measure_shell(
                    f"{args.aws} s3 cp s3://bench-bucket/peer.tar.zst {work}/fetched --endpoint-url {url} "
                    f"--no-progress >/dev/null; zstd -d -q -c {work}/fetched | tar xf - -C {target}; rm {work}/fetched",
                    env, tmpdir))
                shutil.rmtree(target)
                target.mkdir()
            add("one GET stream | zstd -d | tar x", measure_shell(
                f"{stream} | zstd -d -q -c | tar xf - -C {target}", env, tmpdir))
            same = same and file_sha256(target / "zst" / "random.bin") == file_sha256(source / "random.bin")
            shutil.rmtree(target)
    finally:
        moto.kill()
        moto.wait()

    archive_size = archive.stat().st_size
    print(f"\nSource {size / MiB:.0f} MiB of random data; archive {archive_size / MiB:.0f} MiB (zstd); part size "
          f"{part_size // MiB} MiB, concurrency {concurrency} (the peers' too); moto server {url}; "
          f"{args.reps} interleaved runs, medians; load average at the end {os.getloadavg()}")
    print(f"restore peer: {'the AWS CLI, ' + args.aws if args.aws else 'no aws CLI: boto3 only'}\n")
    print("| command | wall s | MiB/s | CPU s | peak RSS MiB | peak RSS of each run |")
    print("|---|---:|---:|---:|---:|---|")
    for name, runs in results.items():
        wall = statistics.median(r["seconds"] for r in runs)
        cpu = statistics.median(r["cpu_seconds"] for r in runs)
        peak = max(r["peak_rss_mib"] for r in runs)
        each = ", ".join(f"{r['peak_rss_mib']:.0f}" for r in runs)
        print(f"| {name} | {wall:.1f} | {archive_size / MiB / wall:.0f} | {cpu:.1f} | {peak:.0f} | {each} |")
    backups = results["bakthat backup -d s3 (upload)"]
    print(f"\nrestored bytes identical: {'(no restores run)' if args.uploads_only else same}; "
          f"this script's own RSS {own_rss_mib():.0f} MiB")
    print(f"files created in TMPDIR during the uploads: {sorted({e for r in backups for e in r['tmpdir_entries']}) or 'none'}")
    print(f"files opened by bakthat's uploads outside the source, catalog and Python: "
          f"{sorted({f for r in backups for f in r['unexpected_files']}) or 'none'}")
    if args.json:
        print(json.dumps({name: [{k: v for k, v in r.items() if k != "stdout"} for r in runs]
                          for name, runs in results.items()}, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    clean = not any(r["tmpdir_entries"] or r["unexpected_files"] for r in backups)
    return 0 if same and clean else 1


if __name__ == "__main__":
    sys.exit(main())
