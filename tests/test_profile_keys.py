"""The profile keys declared in bakthat.profile_keys: complete, shared with their modules, light to read."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys

from bakthat import conf, profile_keys
from tests.conftest import ROOT

PACKAGE = ROOT / "bakthat"


def _modules_declaring_settings() -> set[str]:
    """Return the modules of the package that assign a module-level ``SETTINGS`` (read with ast)."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            if any(isinstance(target, ast.Name) and target.id == "SETTINGS" for target in targets):
                parts = list(path.relative_to(ROOT).with_suffix("").parts)
                found.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def test_every_module_that_reads_profile_keys_shares_its_declarations_with_profile_keys():
    for name, declared in profile_keys.BY_MODULE.items():
        assert importlib.import_module(name).SETTINGS is declared, name
    shared = [id(declared) for declared in profile_keys.BY_MODULE.values()]
    for name in sorted(_modules_declaring_settings() - {"bakthat.conf"}):
        assert id(importlib.import_module(name).SETTINGS) in shared, f"{name} declares keys outside bakthat.profile_keys"


def test_reading_the_declarations_imports_nothing_but_the_setting_class():
    code = (
        "import json, sys; from bakthat import conf; before = set(sys.modules); conf.collect_settings();"
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(result.stdout) == ["bakthat.profile_keys"]


def test_the_collected_keys_name_the_module_that_reads_them_and_keep_the_later_declaration():
    modules = conf.settings_by_module()
    assert "s3_bucket" in modules["bakthat.backends.s3"] and "jobs" in modules["bakthat.jobs"]
    # secret_key is a 0.6 key that the AWS backend declares again: its help wins, its secrecy stays
    merged = conf.collect_settings()["secret_key"]
    assert merged.help == profile_keys.AWS["secret_key"].help and merged.secret


def test_a_deferred_check_imports_its_module_when_a_value_is_checked():
    jobs = profile_keys.JOBS["jobs"]
    assert jobs.check({"nightly": {"sources": 3}}) is not None
    assert jobs.check({}) is None
    assert profile_keys.LEVELS["full_every"].check("not an interval") is not None
    assert profile_keys.LEVELS["max_chain"].check(-1) is not None
    assert profile_keys.HEARTBEAT["heartbeat_url"].display("https://hc-ping.com/secret-uuid") == "https://hc-ping.com/…"


def test_the_choices_declared_are_those_the_modules_accept():
    from bakthat import levels
    from bakthat.index_records import LEVELS

    assert profile_keys.LEVEL_REQUESTS == levels.REQUESTS == ("auto", *LEVELS)
