"""Destination memory (bakthat.testing.memory): the conformance suite, in-process state, KeyValue."""

from __future__ import annotations

import subprocess
import sys

import pytest

import bakthat
from bakthat.backends import get_backend
from bakthat.testing import memory
from bakthat.testing.conformance import conformance_tests
from tests.conftest import snapshot


@pytest.fixture(autouse=True)
def empty_store():
    memory.reset()
    yield
    memory.reset()


TestMemoryConformance = conformance_tests(lambda tmp_path: get_backend("memory", {}))


def test_a_backup_to_memory_restores_exactly_in_the_same_process(tree, tmp_path):
    row = bakthat.backup(str(tree), destination="memory", prompt="no")
    assert row.stored_filename in memory.objects()
    bakthat.restore("mydir", destination="memory", target=str(tmp_path / "out"), prompt="no")
    assert snapshot(tmp_path / "out" / "mydir") == snapshot(tree)


def test_every_instance_of_a_process_shares_one_store_and_reset_empties_it():
    get_backend("memory", {}).put("shared", b"x")
    assert get_backend("memory", {}).exists("shared")
    memory.reset()
    assert not get_backend("memory", {}).exists("shared")


def test_another_process_sees_an_empty_store():
    get_backend("memory", {}).put("only-here", b"x")
    code = "from bakthat.backends import get_backend; print(sorted(i.key for i in get_backend('memory', {}).list()))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_keyvalue_works_on_memory_because_it_declares_conditional_writes():
    from bakthat.helper import KeyValue

    first, second = KeyValue(destination="memory"), KeyValue(destination="memory")
    first.set_key("counter", {"n": 1})
    assert second.get_key("counter") == {"n": 1}
    second.set_key("counter", {"n": 2})
    assert first.get_key("counter") == {"n": 2}
