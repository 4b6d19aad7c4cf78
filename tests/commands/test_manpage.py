"""``bakthat manpage``: the bakthat(1) page in roff, generated from the parser."""

from __future__ import annotations

import shutil
import subprocess

from tests.commands.conftest import expect


def test_the_man_page_documents_every_command_and_renders(cli):
    from bakthat.commands import command_modules

    page = cli.ok("manpage").stdout
    assert page.startswith('.TH BAKTHAT "1"')
    for module in command_modules():
        assert f"\\fI\\,{module.NAME}\\/\\fR" in page, module.NAME
    if shutil.which("man") and shutil.which("groff"):
        rendered = subprocess.run(
            ["man", "-l", "-"], input=page, capture_output=True, text=True,
            env={"MANPAGER": "cat", "PAGER": "cat", "PATH": "/usr/bin:/bin", "MANWIDTH": "100"},
        )
        assert rendered.returncode == 0, rendered.stderr
        assert "bakthat backup" in rendered.stdout


def test_the_page_carries_the_installed_version_and_each_commands_options(cli):
    from bakthat import __version__

    page = cli.ok("manpage").stdout
    assert f'"bakthat {__version__}" "bakthat manual"' in page.splitlines()[0]
    for option in ("\\-\\-dry\\-run", "\\-\\-read\\-data\\-subset", "\\-\\-first\\-week\\-day"):
        assert option in page


def test_manpage_takes_no_argument(cli):
    expect(cli("manpage", "backup"), 2, "unrecognized arguments: backup")
