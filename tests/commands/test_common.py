"""bakthat.commands._common: the shared options, JSON and table printing, progress bars, source sizes."""

from __future__ import annotations

import argparse
import io
import json
import os
from dataclasses import dataclass
from datetime import datetime

import pytest

from bakthat.commands import _common


def parser_with(*adders) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="test")
    for add in adders:
        add(parser)
    return parser


# -- options ----------------------------------------------------------------------------------


def test_scope_options_are_left_unset_until_their_defaults_are_applied():
    args = parser_with(_common.add_scope).parse_args([])
    assert not hasattr(args, "destination") and not hasattr(args, "profile")
    args.command, args._takes_destination = "show", True
    assert _common.apply_scope_defaults(args) is None
    assert (args.destination, args.profile, args.config) == (None, "default", None)
    given = parser_with(_common.add_scope).parse_args(["-d", "s3", "-p", "work", "-c", "x.yml"])
    given.command = "show"
    assert _common.apply_scope_defaults(given) is None
    assert (given.destination, given.profile, given.config) == ("s3", "work", "x.yml")


def test_a_destination_for_a_command_without_one_is_an_error_message():
    args = argparse.Namespace(command="configure", destination="s3", _takes_destination=False)
    assert _common.apply_scope_defaults(args) == "configure does not take -d/--destination"


def test_a_scope_without_destination_has_no_d_option():
    parser = parser_with(lambda p: _common.add_scope(p, destination=False))
    with pytest.raises(SystemExit):
        parser.parse_args(["-d", "s3"])


def test_prompt_takes_yes_or_no_with_the_given_default_and_help():
    parser = parser_with(lambda p: _common.add_prompt(p, help="ask me", default="no"))
    assert parser.parse_args([]).prompt == "no" and parser.parse_args(["--prompt", "yes"]).prompt == "yes"
    with pytest.raises(SystemExit):
        parser.parse_args(["--prompt", "maybe"])
    assert "ask me" in parser.format_help()
    assert _common.PROMPT_WHEN_NEEDED in parser_with(_common.add_prompt).format_help()


def test_progress_and_json_are_added_together():
    parser = parser_with(lambda p: _common.add_progress_and_json(p, "the row"))
    assert vars(parser.parse_args([])) == {"progress": None, "json": False}
    assert vars(parser.parse_args(["--no-progress", "--json"])) == {"progress": False, "json": True}
    assert "print the row as JSON" in " ".join(parser.format_help().split())


def test_the_index_options_are_prompt_scope_and_json():
    parser = parser_with(lambda p: _common.add_index_options(p, "entries"))
    args = parser.parse_args(["--prompt", "no", "-p", "work", "--json"])
    assert (args.prompt, args.profile, args.json) == ("no", "work", True)
    assert parser.parse_args([]).prompt == "yes"


# -- printing ---------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    size: int

    def to_dict(self) -> dict:
        return {"name": self.name, "size": self.size}


def test_print_json_prints_rows_lists_and_plain_data_on_one_line(capsys):
    _common.print_json([Row("a", 1), {"b": 2}])
    _common.print_json(Row("c", 3))
    _common.print_json({"when": datetime(2026, 1, 2, 3, 4, 5)})  # what JSON cannot hold: its str
    out = capsys.readouterr().out.splitlines()
    assert json.loads(out[0]) == [{"name": "a", "size": 1}, {"b": 2}]
    assert json.loads(out[1]) == {"name": "c", "size": 3}
    assert json.loads(out[2]) == {"when": "2026-01-02 03:04:05"}


def test_print_table_aligns_columns_two_spaces_apart_and_right_aligns_the_given_ones(capsys):
    _common.print_table([("a", "1", "x"), ("bbb", "100", "")], right=[1], header=("NAME", "N", "NOTE"))
    assert capsys.readouterr().out.splitlines() == [
        "NAME    N  NOTE",
        "a       1  x",
        "bbb   100",
    ]
    _common.print_table([])
    assert capsys.readouterr().out == ""


def test_shown_escapes_bytes_that_are_not_utf8():
    assert _common.shown(os.fsdecode(b"caf\xe9.txt")) == "caf\\xe9.txt"
    assert _common.shown("héllo") == "héllo"


def test_print_items_prints_json_or_each_items_lines(capsys):
    items = [Row("a", 1), Row("b", 2)]
    _common.print_items(items, True, lambda item: [item.name])
    assert json.loads(capsys.readouterr().out) == [{"name": "a", "size": 1}, {"name": "b", "size": 2}]
    _common.print_items(items, False, lambda item: [item.name, f"  {item.size}"])
    assert capsys.readouterr().out == "a\n  1\nb\n  2\n"


def test_print_plan_prints_the_description_or_the_json(capsys):
    class Plan(Row):
        def describe(self) -> str:
            return f"would store {self.name}"

    _common.print_plan(Plan("a", 1), False)
    _common.print_plan(Plan("a", 1), True)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "would store a" and json.loads(out[1]) == {"name": "a", "size": 1}


# -- progress ---------------------------------------------------------------------------------


def test_want_progress_follows_the_option_then_quiet_then_the_terminal(monkeypatch):
    assert _common.want_progress(argparse.Namespace(progress=True, quiet=True)) is True
    assert _common.want_progress(argparse.Namespace(progress=False)) is False
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal
    assert _common.want_progress(argparse.Namespace(progress=None)) is False

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", Terminal())
    assert _common.want_progress(argparse.Namespace(progress=None)) is True
    assert _common.want_progress(argparse.Namespace(progress=None, quiet=True)) is False


def test_no_bar_yields_none_and_never_asks_for_the_total():
    asked = []
    with _common.progress_for(argparse.Namespace(progress=False), lambda: asked.append(1), "x") as progress:
        assert progress is None
    assert asked == []


def test_a_bar_is_drawn_at_the_first_byte_with_the_total(capsys):
    with _common.progress_for(argparse.Namespace(progress=True), lambda: 2048, "mydir") as progress:
        assert capsys.readouterr().err == "", "nothing is drawn before the first byte"
        progress(1024)
        progress(1024)
    err = capsys.readouterr().err
    assert "mydir" in err and "100%" in err and "2.00k" in err


def test_source_size_counts_regular_files_once_per_inode(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 100)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * 50)
    os.link(tmp_path / "a", tmp_path / "sub" / "hard")
    os.symlink("a", tmp_path / "link")
    assert _common.source_size(str(tmp_path)) == 150
    assert _common.source_size(str(tmp_path / "sub" / "b")) == 50
    assert _common.source_size(str(tmp_path / "missing")) is None


def test_source_size_gives_up_past_its_budget(tmp_path):
    for index in range(3):
        (tmp_path / f"d{index}").mkdir()
        (tmp_path / f"d{index}" / "f").write_bytes(b"z")
    assert _common.source_size(str(tmp_path), budget=-1) is None
