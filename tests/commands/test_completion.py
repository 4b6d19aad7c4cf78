"""bakthat completion and docs: shell completion and the documentation pages, generated from
(or shipped with) the installed package.  The manual page: test_manpage.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from tests.conftest import ROOT, run_cli


def complete_in_bash(script: str, words: list[str]) -> list[str]:
    """Source a bash completion script and return what it offers for ``words``."""
    line = " ".join(words)
    program = f"""
{script}
COMP_WORDS=({line})
COMP_CWORD={len(words) - 1}
COMP_LINE="{line}"
COMP_POINT=${{#COMP_LINE}}
_shtab_bakthat bakthat "{words[-1]}" "{words[-2]}"
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_bash_completion_completes_commands_and_their_options():
    result = run_cli("completion", "bash")
    assert result.returncode == 0, result.stderr
    assert "rotate_backups" in complete_in_bash(result.stdout, ["bakthat", "rot"])
    assert "delete-older-than" in complete_in_bash(result.stdout, ["bakthat", "delete-o"])
    assert "--exclude-file" in complete_in_bash(result.stdout, ["bakthat", "backup", "--excl"])


def test_zsh_completion_names_every_command():
    result = run_cli("completion", "zsh")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("#compdef bakthat")
    for command in ("backup", "restore", "rotate_backups", "delete_older_than", "completion", "docs"):
        assert command in result.stdout
    if shutil.which("zsh"):
        check = subprocess.run(["zsh", "-n"], input=result.stdout, capture_output=True, text=True)
        assert check.returncode == 0, check.stderr


def test_an_unknown_shell_is_a_usage_error():
    result = run_cli("completion", "fish-and-chips")
    assert result.returncode == 2
    assert "fish-and-chips" in result.stderr


def test_docs_lists_the_pages_and_prints_one():
    listing = run_cli("docs")
    assert listing.returncode == 0, listing.stderr
    assert "restore-safety" in listing.stdout.split()
    page = run_cli("docs", "cli")
    assert page.returncode == 0, page.stderr
    assert page.stdout == (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")


def test_docs_of_an_unknown_page_exits_not_found_and_lists_the_pages():
    result = run_cli("docs", "nosuchpage")
    assert result.returncode == 4
    assert "nosuchpage" in result.stderr and "configuration" in result.stderr


def test_help_points_to_documentation_that_exists():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "bakthat docs cli" in " ".join(result.stdout.split())


def test_a_built_wheel_carries_the_documentation_pages(tmp_path):
    """What a plain ``pip install`` installs holds the pages ``--help`` points to."""
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("bakthat-*.whl")
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    for page in (ROOT / "docs").glob("*.md"):
        assert (unpacked / "bakthat" / "docs" / page.name).read_bytes() == page.read_bytes()
    found = subprocess.run(
        [sys.executable, "-c", "from bakthat.commands.docs import docs_directory; print(docs_directory())"],
        capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(unpacked), "PATH": "/usr/bin:/bin"},
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == str(unpacked / "bakthat" / "docs")
