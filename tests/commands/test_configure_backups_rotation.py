"""``bakthat configure_backups_rotation``: the profile's ``rotation:`` block, from flags or 0.6's questions."""

from __future__ import annotations

import json
import stat

import pytest
import yaml

from tests.commands.conftest import expect


def rotation(home, profile="default"):
    return yaml.safe_load((home / ".bakthat.yml").read_text())[profile]["rotation"]


@pytest.mark.parametrize("name", ["configure_backups_rotation", "configure-backups-rotation"])
def test_flags_write_the_block_and_change_only_what_they_name(cli, home, name):
    result = cli.ok(name, "--days", "7", "--weeks", "4", "--months", "6", "--first-week-day", "saturday")
    assert "Wrote ~/.bakthat.yml (profile 'default'): rotation" in result.stderr and result.stdout == ""
    assert yaml.safe_load((home / ".bakthat.yml").read_text()) == {
        "default": {"rotation": {"days": 7, "weeks": 4, "months": 6, "first_week_day": 5}}
    }
    cli.ok(name, "--first-week-day", "0", "--keep-last", "2")
    assert rotation(home) == {"days": 7, "weeks": 4, "months": 6, "first_week_day": 0, "keep_last": 2}
    replaced = cli.ok(name, "--replace", "--months", "1", "--json")
    assert json.loads(replaced.stdout) == {"months": 1}
    assert rotation(home) == {"months": 1}


def test_every_unit_and_policy_option_is_written_under_its_key(cli, home):
    cli.ok(
        "configure_backups_rotation", "--years", "2", "--hours", "24", "--minutes", "0", "--seconds", "0",
        "--keep", "oldest", "--pin-tag", "forever", "--first-week-day", "Sun",
    )
    assert rotation(home) == {
        "years": 2, "hours": 24, "minutes": 0, "seconds": 0, "keep": "oldest", "pin_tag": "forever", "first_week_day": 6,
    }


def test_the_questions_are_06s_and_a_wrong_answer_is_asked_again(cli, home):
    result = cli.ok("configure_backups_rotation", "--interactive", input="7\nx\n4\n\nsunday\n")
    assert "Number of days to keep [0]: " in result.stderr and "First week day [saturday]: " in result.stderr
    assert "'x' is not a whole number" in result.stderr
    assert rotation(home) == {"days": 7, "weeks": 4, "first_week_day": 6}


def test_questions_cancelled_by_end_of_input_write_nothing(cli, home):
    assert cli("configure_backups_rotation", "--interactive", input="7\n").returncode == 130
    assert not (home / ".bakthat.yml").exists()


def test_without_flags_and_without_a_terminal_nothing_is_written(cli, home):
    expect(cli("configure_backups_rotation", input=""), 2, "nothing to change")
    assert not (home / ".bakthat.yml").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--first-week-day", "someday"), "is not a day"),
        (("--first-week-day", "7"), "is not a day"),
        (("--days", "-1"), "'-1' is below 0"),
        (("--weeks", "two"), "'two' is not a whole number"),
        (("--keep", "middle"), "invalid choice: 'middle'"),
        (("--days", "0"), "keeps nothing"),
    ],
)
def test_a_bad_value_is_refused_before_writing(cli, home, args, message):
    expect(cli("configure_backups_rotation", *args), 2, message)
    assert not (home / ".bakthat.yml").exists()


def test_c_selects_the_file_that_is_written_0600(cli, home, tmp_path):
    target = tmp_path / "etc" / "bakthat.yml"
    assert str(target) in cli.ok("configure_backups_rotation", "-c", str(target), "--days", "3").stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert yaml.safe_load(target.read_text()) == {"default": {"rotation": {"days": 3}}}
    assert not (home / ".bakthat.yml").exists()


def test_a_missing_profile_is_created_and_the_rest_of_the_file_kept(cli, home):
    path = home / ".bakthat.yml"
    path.write_text("default:\n  compression: gzip\n")
    cli.ok("configure_backups_rotation", "-p", "new", "--days", "2")
    assert yaml.safe_load(path.read_text()) == {"default": {"compression": "gzip"}, "new": {"rotation": {"days": 2}}}


def test_a_destination_is_refused(cli):
    expect(cli("configure_backups_rotation", "-d", "s3", "--days", "1"), 2, "unrecognized arguments: -d")
