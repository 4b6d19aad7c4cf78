"""The backend conformance suite (bakthat.testing.conformance): three lines run it from the
installed package; a backend that breaks one promise fails that test and no other; a
capability a backend does not declare is skipped with a reason naming it."""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ElementTree

import pytest

from bakthat.testing.conformance import (
    MiB,
    BackendConformance,
    InterruptingReader,
    ShortReader,
    conformance_tests,
)
from bakthat.testing.memory import MemoryBackend
from tests.testing.test_pytest_plugin import installed_entry_point, run_pytest

THREE_LINES = """\
from bakthat.testing.conformance import conformance_tests
from bakthat.backends.local import Backend
TestLocal = conformance_tests(lambda tmp_path: Backend({"local_path": str(tmp_path)}))
"""

BROKEN = '''\
import pytest

from bakthat.testing import memory
from bakthat.testing.conformance import conformance_tests
from bakthat.testing.memory import MemoryBackend, MemoryUpload


@pytest.fixture(autouse=True)
def empty_store():
    memory.reset()


class Replacing(MemoryBackend):
    """Breaks one promise: an upload to an existing key replaces it."""

    def open_upload(self, key, metadata=None, *, if_match=None):
        current = memory._store.get(key)
        return MemoryUpload(key, metadata, if_match or (current.etag if current else None))


class Unsorted(MemoryBackend):
    """Breaks one promise: the listing is not sorted."""

    def list(self, prefix=""):
        return reversed(list(super().list(prefix)))


class WithoutConditionalWrites(MemoryBackend):
    """Keeps every promise, and does not declare conditional writes."""

    conditional_writes = False


TestReplacing = conformance_tests(lambda tmp_path: Replacing(), "TestReplacing")
TestUnsorted = conformance_tests(lambda tmp_path: Unsorted(), "TestUnsorted")
TestWithoutConditionalWrites = conformance_tests(lambda tmp_path: WithoutConditionalWrites(), "TestWithoutConditionalWrites")
'''


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, dict[str, str]]:
    """Run the three-line module and the broken backends' module in one pytest process
    outside bakthat's tests; return {class: {test: outcome, or the skip reason}}."""
    installed_entry_point()
    directory = tmp_path_factory.mktemp("author")
    (directory / "test_three_lines.py").write_text(THREE_LINES)
    (directory / "test_broken.py").write_text(BROKEN)
    result = run_pytest("--junitxml", "report.xml", cwd=directory)
    assert result.returncode == 1, result.stdout + result.stderr  # the broken backends fail
    found: dict[str, dict[str, str]] = {}
    for case in ElementTree.parse(directory / "report.xml").iter("testcase"):
        name = case.get("name", "").split("[")[0]
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = child.tag
            elif child.tag == "skipped":
                outcome = "skipped: " + child.get("message", "")
        cases = found.setdefault(case.get("classname", "").rsplit(".", 1)[-1], {})
        if cases.get(name, "passed") == "passed":  # a parametrized test fails if one of its cases does
            cases[name] = outcome
    return found


def suite_tests() -> set[str]:
    return {name for name in dir(BackendConformance) if name.startswith("test_")}


def failed(cases: dict[str, str]) -> list[str]:
    return sorted(name for name, outcome in cases.items() if outcome in ("failure", "error"))


def test_three_lines_run_the_whole_suite_from_the_installed_package_against_a_local_store(outcomes):
    cases = outcomes["TestLocal"]
    assert set(cases) == suite_tests()
    assert failed(cases) == []
    others = [outcome for outcome in cases.values() if outcome != "passed"]
    assert all(outcome.startswith("skipped: Backend does not declare ") for outcome in others), others


def test_a_backend_that_replaces_an_existing_object_fails_that_test_only(outcomes):
    assert failed(outcomes["TestReplacing"]) == ["test_an_existing_object_is_never_replaced"]


def test_a_backend_whose_listing_is_unsorted_fails_that_test_only(outcomes):
    assert failed(outcomes["TestUnsorted"]) == ["test_listing_is_sorted_filtered_by_prefix_and_shows_committed_objects_only"]


def test_a_capability_not_declared_is_skipped_with_a_reason_naming_it(outcomes):
    cases = outcomes["TestWithoutConditionalWrites"]
    skipped = {name: outcome for name, outcome in cases.items() if outcome.startswith("skipped")}
    assert set(skipped) == {"test_a_conditional_write_replaces_only_the_version_it_names",
                            "test_a_conditional_delete_refuses_a_changed_object"}
    assert all("WithoutConditionalWrites does not declare conditional_writes" in reason for reason in skipped.values())
    assert failed(cases) == []


def test_conformance_tests_makes_a_named_test_class_of_the_suite():
    made = conformance_tests(lambda tmp_path: MemoryBackend(), "TestMine")
    assert made.__name__ == "TestMine" and issubclass(made, BackendConformance)
    assert conformance_tests(lambda tmp_path: MemoryBackend()).__name__ == "TestConformance"
    assert suite_tests() <= set(dir(made))


def test_the_short_reader_ends_early_and_the_interrupting_reader_raises_ctrl_c_after_its_limit():
    assert ShortReader(b"abc").read() == b"abc"
    reader = InterruptingReader(2 * MiB)
    assert len(reader.read()) == MiB and len(reader.read()) == MiB
    with pytest.raises(KeyboardInterrupt):
        reader.read()


def test_the_docstring_shows_the_same_three_lines():
    from bakthat.testing import conformance

    assert textwrap.dedent("""\
        from bakthat.testing.conformance import conformance_tests
        from mypackage import MyBackend

        TestMyBackend = conformance_tests(lambda tmp_path: MyBackend({"my_root": str(tmp_path)}))
    """) in textwrap.dedent(conformance.__doc__.split("Three lines::")[1].split("or, when")[0])
