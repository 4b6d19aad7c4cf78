"""Throughput and peak memory of ``bakthat backup -d s3`` / ``restore`` against a moto server.

Run::

    python benchmarks/bench_s3.py [--size 1GiB] [--part-size 16MiB] [--concurrency 4]
                                  [--aws /path/to/aws] [--compression zstd]

What it does, in one run:

1. starts ``moto.server`` in its own process on 127.0.0.1 (so its memory is not ours);
2. writes ``--size`` bytes of random data (incompressible: the archive is as large as
   the source) into a source directory;
3. runs ``bakthat backup <dir> -d s3`` as a child process with an empty ``TMPDIR``,
   measuring wall time and the child's peak RSS (``wait4``), and watching the child's
   open files (``/proc/<pid>/fd``) and ``TMPDIR`` the whole time: any file it opens
   outside the source, the catalog and the Python installation is reported;
4. runs ``bakthat restore`` of that backup the same way;
5. for comparison, uploads and downloads the same archive bytes with ``aws s3 cp``
   (the AWS CLI, found on PATH or given with ``--aws``) or, when there is none, with a
   plain boto3 ``upload_file``/``download_file`` script; the table says which.

Figures depend on the machine and on moto (a Python server: it, not the client, is
usually the bottleneck), so compare the rows of one run, not runs on two machines.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
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
    for _ in range(100):
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


def report(title: str, results: dict[str, dict], archive_size: int, destination: str, checks: str, as_json: bool) -> None:
    """Print the table of a transfer benchmark, what the watchers saw, and optionally JSON."""
    print(f"\n{title}\n")
    print("| command | seconds | MiB/s (archive) | peak RSS (MiB) |")
    print("|---|---:|---:|---:|")
    for name, result in results.items():
        rate = archive_size / MiB / result["seconds"]
        print(f"| {name} | {result['seconds']:.1f} | {rate:.0f} | {result['peak_rss_mib']:.0f} |")
    backup, restore = results[f"bakthat backup -d {destination}"], results[f"bakthat restore -d {destination}"]
    print(f"\n{checks}; this script's own RSS {own_rss_mib():.0f} MiB (a child's peak RSS includes its parent's at spawn)")
    print(f"files created in TMPDIR during backup/restore: {backup['tmpdir_entries'] or 'none'}")
    print(f"files opened by the backup outside the source, catalog and Python: {backup['unexpected_files'] or 'none'}")
    print(f"files opened by the restore outside the target, catalog and Python: {restore['unexpected_files'] or 'none'}")
    if as_json:
        print(json.dumps({name: {k: v for k, v in r.items() if k != "stdout"} for name, r in results.items()}, indent=2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--part-size", default="16MiB")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--compression", default="zstd", choices=["zstd", "gzip", "none"])
    parser.add_argument("--aws", default=shutil.which("aws"), help="the aws CLI (default: found on PATH)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    size = parse_size(args.size)

    work = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    moto, url = start_moto()
    try:
        home, tmpdir, source = work / "home", work / "tmp", work / "src" / "bak"
        home.mkdir()
        tmpdir.mkdir()
        write_source(source, size)
        (home / ".bakthat.yml").write_text(
            "default:\n"
            "  s3_bucket: bench-bucket\n"
            f"  part_size: {args.part_size}\n"
            f"  concurrency: {args.concurrency}\n"
            f"  compression: {args.compression}\n"
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
        }
        prefix = os.path.dirname(os.path.dirname(os.__file__))
        allowed = [str(source), str(home / ".bakthat"), sys.prefix, sys.base_prefix, prefix, str(ROOT)]
        bakthat = [sys.executable, "-m", "bakthat"]
        results = {}
        results["bakthat backup -d s3"] = run_measured(
            [*bakthat, "backup", str(source), "-d", "s3", "--prompt", "no", "--json"], env, tmpdir, allowed
        )
        row = json.loads(results["bakthat backup -d s3"]["stdout"])
        stored, archive_size = row["stored_filename"], row["size"]
        target = work / "restored"
        results["bakthat restore -d s3"] = run_measured(
            [*bakthat, "restore", "bak", "-d", "s3", "--target", str(target), "--prompt", "no"],
            env,
            tmpdir,
            [*allowed, str(target)],
        )
        same = file_sha256(target / "bak" / "random.bin") == file_sha256(source / "random.bin")
        shutil.rmtree(target)

        # The same archive bytes, for the comparison tools (fetched in a child process so
        # this one stays small: a child's peak RSS counts its parent's at spawn time).
        archive = work / "archive.bin"
        fetch = (
            "import sys, boto3; boto3.client('s3').download_file(sys.argv[1], sys.argv[2], sys.argv[3])"
        )
        subprocess.run([sys.executable, "-c", fetch, "bench-bucket", stored, str(archive)], env=env, check=True)
        back = work / "archive.back"
        if args.aws:
            tool = "aws s3 cp"
            aws_env = {**env, "AWS_CONFIG_FILE": str(work / "aws-config")}
            (work / "aws-config").write_text(
                "[default]\n"
                "s3 =\n"
                f"  multipart_chunksize = {parse_size(args.part_size) // MiB}MB\n"
                f"  max_concurrent_requests = {args.concurrency}\n"
            )
            up = [args.aws, "s3", "cp", str(archive), "s3://bench-bucket/compare.bin", "--endpoint-url", url, "--no-progress"]
            down = [args.aws, "s3", "cp", "s3://bench-bucket/compare.bin", str(back), "--endpoint-url", url, "--no-progress"]
        else:
            tool = "boto3 upload_file/download_file"
            aws_env = env
            script = (
                "import sys, boto3; from boto3.s3.transfer import TransferConfig;"
                f"c = boto3.client('s3', endpoint_url='{url}');"
                f"t = TransferConfig(multipart_chunksize={parse_size(args.part_size)}, max_concurrency={args.concurrency});"
                "getattr(c, sys.argv[1])(*sys.argv[2:], Config=t)"
            )
            up = [sys.executable, "-c", script, "upload_file", str(archive), "bench-bucket", "compare.bin"]
            down = [sys.executable, "-c", script, "download_file", "bench-bucket", "compare.bin", str(back)]
        everything = ["/"]
        results[f"{tool} (upload)"] = run_measured(up, aws_env, tmpdir, everything)
        results[f"{tool} (download)"] = run_measured(down, aws_env, tmpdir, everything)
    finally:
        moto.kill()
        moto.wait()

    report(
        f"Source {size / MiB:.0f} MiB of random data; archive {archive_size / MiB:.0f} MiB "
        f"({args.compression}); part size {args.part_size}, concurrency {args.concurrency}; moto server {url}",
        results, archive_size, "s3", f"restored bytes identical: {same}", args.json,
    )
    backup = results["bakthat backup -d s3"]
    shutil.rmtree(work, ignore_errors=True)
    return 0 if same and not backup["tmpdir_entries"] and not backup["unexpected_files"] else 1


if __name__ == "__main__":
    sys.exit(main())
