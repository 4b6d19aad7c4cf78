"""Throughput and peak memory of ``bakthat backup -d swift`` / ``restore`` against a real
Swift, beside ``swift upload`` / ``swift download`` of the same archive bytes.

Run::

    .ci/swift-start                     # a one-node Swift on 127.0.0.1 (as root: installs it)
    python benchmarks/bench_swift.py [--size 1GiB] [--segment-size 32MiB] [--concurrency 2]
                                     [--compression zstd] [--swift /path/to/swift]

What it does, in one run:

1. writes ``--size`` bytes of random data (incompressible: the archive is as large as
   the source) into a source directory;
2. runs ``bakthat backup <dir> -d swift`` as a child process with an empty ``TMPDIR``,
   measuring wall time and the child's peak RSS (``wait4``), and watching its open
   files and ``TMPDIR`` (see bench_s3.py: the same watcher);
3. runs ``bakthat restore`` of that backup the same way, and compares the bytes;
4. for comparison, uploads and downloads the same archive bytes with the swift CLI
   (python-swiftclient's ``swift``), as a Static Large Object of the same segment size,
   with as many segment threads as bakthat's ``swift_concurrency``.

The Swift server runs on the same machine (proxy, object, container and account
servers; its memory is not counted): it, not the client, is usually the bottleneck, so
compare the rows of one run, not runs on two machines.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_s3 import ROOT, MiB, file_sha256, parse_size, report, run_measured, write_source  # noqa: E402

AUTH_URL = os.environ.get("BAKTHAT_TEST_SWIFT_AUTH_URL", "http://127.0.0.1:18080/auth/v1.0")
USER = os.environ.get("BAKTHAT_TEST_SWIFT_USER", "test:tester")
KEY = os.environ.get("BAKTHAT_TEST_SWIFT_KEY", "testing")


def swift_cli(default: str | None) -> str:
    found = default or shutil.which("swift") or str(Path(sys.executable).with_name("swift"))
    if not Path(found).exists():
        raise SystemExit("no swift CLI: pip install python-swiftclient (or give --swift)")
    return found


def remove_container(swift: str, env: dict[str, str], container: str) -> None:
    for name in (container, f"{container}_segments"):
        subprocess.run([swift, "delete", name], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--segment-size", default="32MiB")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--compression", default="zstd", choices=["zstd", "gzip", "none"])
    parser.add_argument("--swift", default=None, help="the swift CLI (default: found on PATH or beside this python)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    size = parse_size(args.size)
    segment = parse_size(args.segment_size)
    swift = swift_cli(args.swift)
    container = f"bench-{uuid.uuid4().hex[:8]}"

    work = Path(tempfile.mkdtemp(prefix="bench-swift-"))
    home, tmpdir, source = work / "home", work / "tmp", work / "src" / "bak"
    home.mkdir()
    tmpdir.mkdir()
    write_source(source, size)
    (home / ".bakthat.yml").write_text(
        "default:\n"
        "  default_destination: swift\n"
        f"  auth_url: {AUTH_URL}\n"
        "  auth_version: '1'\n"
        f"  access_key: '{USER}'\n"
        f"  secret_key: '{KEY}'\n"
        f"  swift_container: {container}\n"
        f"  swift_segment_size: {segment}\n"
        f"  swift_concurrency: {args.concurrency}\n"
        f"  compression: {args.compression}\n"
    )
    os.chmod(home / ".bakthat.yml", 0o600)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "TMPDIR": str(tmpdir),
        "PYTHONPATH": str(ROOT),
        "ST_AUTH": AUTH_URL,
        "ST_USER": USER,
        "ST_KEY": KEY,
    }
    prefix = os.path.dirname(os.path.dirname(os.__file__))
    allowed = [str(source), str(home / ".bakthat"), sys.prefix, sys.base_prefix, prefix, str(ROOT)]
    bakthat = [sys.executable, "-m", "bakthat"]
    results = {}
    try:
        results["bakthat backup -d swift"] = run_measured(
            [*bakthat, "backup", str(source), "--prompt", "no", "--json"], env, tmpdir, allowed
        )
        row = json.loads(results["bakthat backup -d swift"]["stdout"])
        stored, archive_size = row["stored_filename"], row["size"]
        target = work / "restored"
        results["bakthat restore -d swift"] = run_measured(
            [*bakthat, "restore", "bak", "--target", str(target), "--prompt", "no"], env, tmpdir, [*allowed, str(target)]
        )
        same = file_sha256(target / "bak" / "random.bin") == file_sha256(source / "random.bin")
        shutil.rmtree(target)

        archive = work / "archive.bin"
        subprocess.run([swift, "download", container, stored, "-o", str(archive)], env=env, check=True, stdout=subprocess.DEVNULL)
        back = work / "archive.back"
        everything = ["/"]
        results["swift upload (SLO)"] = run_measured(
            [swift, "upload", container, str(archive), "--object-name", "compare.bin", "--use-slo",
             "--segment-size", str(segment), "--segment-threads", str(args.concurrency)],
            env, tmpdir, everything,
        )
        results["swift download"] = run_measured(
            [swift, "download", container, "compare.bin", "-o", str(back)], env, tmpdir, everything
        )
        same_cli = file_sha256(back) == file_sha256(archive)
    finally:
        remove_container(swift, env, container)

    report(
        f"Source {size / MiB:.0f} MiB of random data; archive {archive_size / MiB:.0f} MiB ({args.compression}); "
        f"segment size {args.segment_size}, concurrency {args.concurrency}; Swift {AUTH_URL}",
        results, archive_size, "swift", f"restored bytes identical: {same} (swift CLI round trip identical: {same_cli})", args.json,
    )
    backup = results["bakthat backup -d swift"]
    shutil.rmtree(work, ignore_errors=True)
    return 0 if same and same_cli and not backup["tmpdir_entries"] and not backup["unexpected_files"] else 1


if __name__ == "__main__":
    sys.exit(main())
