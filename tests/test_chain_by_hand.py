"""docs/format.md "Restoring a chain by hand" works as written: its shell block, run with
GNU tar, zstd, jq and base64 over archives and index files, gives the tree at each
point of a chain, odd names included."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from bakthat.index_file import write_index
from tests.chains import evolve
from tests.conftest import ROOT, snapshot
from tests.services import require_binary

MARKER = "<!-- the block below is run by tests/test_chain_by_hand.py -->"


def documented_block() -> str:
    text = (ROOT / "docs" / "format.md").read_text(encoding="utf-8")
    found = re.search(re.escape(MARKER) + r"\n```sh\n(.*?)```", text, re.DOTALL)
    assert found, "the by-hand recipe is missing from docs/format.md"
    return found.group(1)


def test_the_documented_recipe_restores_each_point_of_a_chain(tmp_path):
    require_binary("tar", "zstd", "jq", "base64", "bash")
    backups, snapshots = evolve(tmp_path, odd_names=True)
    assert any(b"\n" in key or b"\xe9" in key for made in backups for key in made.delta.deletions)
    store = tmp_path / "store-by-hand"
    store.mkdir()
    for made in backups:
        subprocess.run(["zstd", "-q", "-o", str(store / made.name), str(made.archive)], check=True)
        with open(store / f"{made.name}.index.jsonl.zst", "wb") as handle:
            write_index(made.delta, handle)
    script = documented_block()
    for point in range(len(backups)):
        target = tmp_path / f"by-hand-{point}"
        target.mkdir()
        chain = " ".join(made.name for made in backups[: point + 1])  # full, diff, incr, incr: each on the last
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], cwd=target, capture_output=True,
            env={**os.environ, "STORE": str(store), "CHAIN": chain},
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        assert snapshot(target / "www") == snapshots[point], f"state at {backups[point].name}"


def test_the_recipe_skips_nothing_it_cannot_read(tmp_path):
    """A damaged index stops the recipe (pipefail) rather than restoring without deletions."""
    require_binary("tar", "zstd", "jq", "base64", "bash")
    backups, _ = evolve(tmp_path)
    store = tmp_path / "store-by-hand"
    store.mkdir()
    for made in backups[:2]:
        subprocess.run(["zstd", "-q", "-o", str(store / made.name), str(made.archive)], check=True)
        (store / f"{made.name}.index.jsonl.zst").write_bytes(b"damaged")
    target = tmp_path / "by-hand"
    target.mkdir()
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", documented_block()], cwd=target, capture_output=True,
        env={**os.environ, "STORE": str(store), "CHAIN": " ".join(made.name for made in backups[:2])},
    )
    assert done.returncode != 0


@pytest.mark.parametrize("name", ["plain.txt", "with space", "trailing newline\n", "-dash"])
def test_the_base64_step_gives_rm_the_exact_name(tmp_path, name):
    require_binary("base64", "bash", "jq")
    where = tmp_path / "names"
    where.mkdir()
    (where / name).write_text("x")
    (where / "other").write_text("y")
    line = subprocess.run(["jq", "-r", ".deleted | @base64"], input=json.dumps({"deleted": name}),
                          capture_output=True, text=True, check=True).stdout
    loop = documented_block().split("| while read -r encoded; do", 1)[1].split("done", 1)[0]
    subprocess.run(["bash", "-c", f"while read -r encoded; do {loop} done"], input=line, text=True, cwd=where,
                   check=True)
    assert os.listdir(where) == ["other"]
