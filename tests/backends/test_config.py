"""The backends' profile reading (bakthat/backends/_config.py): a declared default applied
in one place, counts checked within bounds, sizes read with their units."""

from __future__ import annotations

import pytest

from bakthat.backends._config import parse_size, positive_int, setting_value
from bakthat.conf import Setting
from bakthat.errors import ConfigError

MiB = 1 << 20
DECLARED = {"count": Setting(int, 4, "a count"), "name": Setting(str, None, "a name")}


def test_a_value_set_in_the_profile_wins_over_the_declared_default():
    assert setting_value({"count": 9}, DECLARED, "count") == 9


@pytest.mark.parametrize("unset", [{}, {"count": None}, {"count": ""}])
def test_an_unset_none_or_empty_value_gives_the_declared_default(unset):
    assert setting_value(unset, DECLARED, "count") == 4


def test_zero_and_false_are_values_not_unset():
    assert setting_value({"count": 0}, DECLARED, "count") == 0
    assert setting_value({"count": False}, DECLARED, "count") is False


def test_reading_an_undeclared_key_is_a_key_error_naming_it():
    with pytest.raises(KeyError, match="cuont"):
        setting_value({"cuont": 3}, DECLARED, "cuont")


@pytest.mark.parametrize(("value", "expected"), [(1, 1), ("7", 7), (64, 64)])
def test_a_count_within_its_bounds_is_returned_as_an_int(value, expected):
    assert positive_int("concurrency", value, 1, 64) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "concurrency must be from 1 to 64, not 0"),
        (-3, "concurrency must be from 1 to 64, not -3"),
        (65, "concurrency must be from 1 to 64, not 65"),
        (True, "concurrency must be from 1 to 64, not True"),
        ("many", "concurrency must be an integer, not 'many'"),
        (None, "concurrency must be an integer, not None"),
        ("2.5", "concurrency must be an integer, not '2.5'"),
    ],
)
def test_a_count_out_of_bounds_or_not_a_number_is_a_config_error_naming_the_key(value, message):
    with pytest.raises(ConfigError) as caught:
        positive_int("concurrency", value, 1, 64)
    assert str(caught.value) == message


def test_without_an_upper_bound_the_message_gives_the_lower_one():
    assert positive_int("days", 10**6, 0) == 10**6
    with pytest.raises(ConfigError, match="days must be at least 0, not -1"):
        positive_int("days", -1, 0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (16777216, 16 * MiB),
        ("16777216", 16 * MiB),
        ("16MiB", 16 * MiB),
        ("16M", 16 * MiB),
        ("64MB", 64 * MiB),  # MB means MiB here: part sizes are binary
        (" 8 kib ", 8 << 10),
        ("2G", 2 << 30),
        ("5 GiB", 5 << 30),
    ],
)
def test_a_size_is_a_byte_count_or_a_number_with_a_binary_unit(value, expected):
    assert parse_size(value, 0) == expected


@pytest.mark.parametrize("unset", [None, ""])
def test_an_unset_size_gives_the_default(unset):
    assert parse_size(unset, 123) == 123


@pytest.mark.parametrize("value", [True, "16 TB", "sixteen", "1.5M", "-5M", "M"])
def test_anything_else_is_a_config_error_quoting_the_value(value):
    with pytest.raises(ConfigError, match="invalid size"):
        parse_size(value, 0)
