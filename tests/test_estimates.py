"""bakthat.estimates: a backup's expected work comes from the last backup of its name and level."""

from __future__ import annotations

import bakthat
from bakthat import estimates


def test_the_estimate_is_the_newest_backup_of_the_same_name_and_level(home, tmp_path):
    tree = tmp_path / "photos"
    tree.mkdir()
    (tree / "a.jpg").write_bytes(b"a" * 3000)
    bakthat.backup(str(tree), password="")
    (tree / "b.jpg").write_bytes(b"b" * 5000)
    full = bakthat.backup(str(tree), password="")
    (tree / "c.jpg").write_bytes(b"c" * 7)
    incr = bakthat.backup(str(tree), password="", level="incr")
    where = {"destination": full.backend, "profile": "default"}
    found = estimates.previous("photos", level="full", **where)
    assert (found.files, found.bytes) == (3, 8000)  # photos/, a.jpg, b.jpg
    assert found.basis == f"the last full backup of photos ({full.stored_filename}: 3 files, 7.8 KiB)"
    assert estimates.previous("photos", level="incr", **where).files == incr.file_count < 3
    assert estimates.previous("photos", level=None, **where).basis.startswith(f"the last backup of photos ({incr.stored_filename}")
    assert estimates.previous("photos", level="diff", **where) == "no earlier diff backup of photos"
    assert estimates.previous("music", level="full", **where) == "no earlier full backup of music"
    assert estimates.previous("photos", level="full", destination=full.backend, profile="other") == (
        "no earlier full backup of photos")


def test_a_dump_s_estimate_names_its_bytes_only(home, tmp_path):
    from bakthat import sources

    bakthat.backup(sources.parse({"name": "pool", "command": ["printf", "0123456789"]}), password="")
    found = estimates.previous("pool", level="full", dump=True, destination="local", profile="default")
    assert found.bytes == 10 and found.basis.startswith("the last dump of pool (pool.") and found.basis.endswith(": 10 B)")
