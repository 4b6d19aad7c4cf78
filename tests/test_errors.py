"""bakthat.errors: one class per kind of failure, each with its own documented exit code."""

from __future__ import annotations

import inspect
import re

from bakthat import errors
from tests.conftest import ROOT


def error_classes():
    return [value for value in vars(errors).values() if inspect.isclass(value) and issubclass(value, errors.BakthatError)]


def test_every_error_is_a_bakthat_error_with_a_documented_exit_code():
    for error in error_classes():
        assert error.exit_code in errors.EXIT_CODES, error
        assert error.__doc__, error


def test_each_exit_code_belongs_to_one_kind_of_failure():
    by_code = {}
    for error in error_classes():
        by_code.setdefault(error.exit_code, []).append(error)
    for code, classes in by_code.items():
        # several classes share a code only when they are one kind: subclasses of the first
        root = min(classes, key=lambda error: len(error.__mro__))
        assert all(issubclass(error, root) for error in classes), (code, classes)
    assert set(errors.EXIT_CODES) - set(by_code) == {0}


def test_the_exit_code_table_of_the_cli_docs_is_the_one_in_the_code():
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    documented = {int(code): meaning.strip() for code, meaning in re.findall(r"^\| (\d+) \| (.+?) \|$", text, flags=re.M)}
    assert set(documented) == set(errors.EXIT_CODES)
    for code, meaning in errors.EXIT_CODES.items():
        first_word = re.match(r"\w+", meaning).group(0)
        assert documented[code].lower().startswith(first_word.lower()), (code, meaning, documented[code])


def test_the_subclasses_keep_their_parent_s_meaning():
    assert issubclass(errors.PasswordRequiredError, errors.WrongPasswordError)
    assert issubclass(errors.AlreadyExistsError, errors.StorageError)
    assert issubclass(errors.TargetFullError, errors.StorageError)
    assert issubclass(errors.EncryptionRequiredError, errors.ConfigError)
    assert errors.PasswordRequiredError.exit_code == errors.WrongPasswordError.exit_code == 5
