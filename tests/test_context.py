"""bakthat.context: one run context for Python handlers and shell hooks, never a secret."""

from __future__ import annotations

import json
import os
import stat
import threading
import uuid

import pytest

from bakthat.context import VARIABLES, RunContext, context_file, current_context, using_context


def make(**changes) -> RunContext:
    fields = {"session_id": str(uuid.uuid4()), "action": "backup", "job": "nightly", "source": "/etc",
              "name": "etc", "destination": "local"}
    fields.update(changes)
    return RunContext(**fields)


def test_environment_holds_exactly_the_documented_variables():
    environment = make().as_environment()
    assert set(environment) == {
        "BAKTHAT_SESSION_ID", "BAKTHAT_ACTION", "BAKTHAT_JOB", "BAKTHAT_SOURCE", "BAKTHAT_NAME",
        "BAKTHAT_DESTINATION", "BAKTHAT_DRY_RUN", "BAKTHAT_STATUS", "BAKTHAT_STORED_FILENAME",
        "BAKTHAT_SIZE", "BAKTHAT_ERROR",
    }
    assert set(environment) == set(VARIABLES.values())
    assert environment["BAKTHAT_JOB"] == "nightly"
    assert environment["BAKTHAT_STATUS"] == ""  # not finished yet: empty, not missing


def test_dry_run_is_true_or_empty_in_the_environment_and_a_boolean_in_json():
    assert make(dry_run=True).as_environment()["BAKTHAT_DRY_RUN"] == "true"
    assert make().as_environment()["BAKTHAT_DRY_RUN"] == ""
    assert json.loads(make(dry_run=True).as_json())["dry_run"] is True


def test_finished_context_carries_status_stored_filename_size_and_error():
    started = make()
    done = started.finished("failed", "etc.20261201000000.tar.zst", 1234, RuntimeError("disk full"))
    assert started.status is None  # immutable: a new object
    environment = done.as_environment()
    assert environment["BAKTHAT_STATUS"] == "failed"
    assert environment["BAKTHAT_STORED_FILENAME"] == "etc.20261201000000.tar.zst"
    assert environment["BAKTHAT_SIZE"] == "1234"
    assert environment["BAKTHAT_ERROR"] == "disk full"
    document = json.loads(done.as_json())
    assert document["context_version"] == 1
    assert document["size"] == 1234 and document["session_id"] == started.session_id


def test_an_unknown_status_or_field_is_refused():
    with pytest.raises(ValueError, match="unknown status 'done'"):
        make(status="done")
    with pytest.raises(TypeError):
        make().replace(password="x")


def test_url_passwords_are_masked_in_every_text_field():
    context = make(source="postgresql://app:s3cr3t-pw@db/app", destination="s3://k:s3cr3t-pw@bucket",
                   error="could not connect to mysql://root:s3cr3t-pw@host/shop")
    for text in (repr(context), context.as_json(), str(context.as_environment())):
        assert "s3cr3t-pw" not in text
    assert context.source == "postgresql://app:***@db/app"


def test_context_file_is_private_holds_the_json_and_is_removed_after():
    context = make()
    with context_file(context) as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        with open(path, encoding="utf-8") as handle:
            assert json.load(handle) == context.as_dict()
    assert not os.path.exists(path)
    assert not os.path.exists(os.path.dirname(path))


def test_current_context_is_set_inside_using_context_nests_and_is_restored_after():
    job, source = make(action="run"), make(source="/srv")
    assert current_context() is None
    with using_context(job):
        assert current_context() is job
        with using_context(source):
            assert current_context() is source
        assert current_context() is job
    assert current_context() is None


def test_current_context_does_not_leak_into_another_thread():
    seen = []
    with using_context(make()):
        thread = threading.Thread(target=lambda: seen.append(current_context()))
        thread.start()
        thread.join()
    assert seen == [None]


def test_no_password_from_settings_or_sources_ever_reaches_a_context(tmp_path):
    from bakthat import sources
    from bakthat.hooks.command import CommandHook, run_hook

    secrets = [f"secret-{index}-{uuid.uuid4().hex[:8]}" for index in range(5)]
    settings = {"postgresql_password": secrets[0], "mysql_password": secrets[1],
                "database_url": f"postgresql://catalog:{secrets[2]}@db/catalog"}
    specs = [
        f"postgresql://app:{secrets[3]}@db:5432/app",
        {"url": "mysql://root@db/shop", "password": secrets[4]},
        {"url": f"mariadb://root:{secrets[3]}@db/shop", "name": "shop"},
    ]
    seen = tmp_path / "seen"
    for spec in specs:
        source = sources.parse(spec, "jobs.nightly.sources[0]")
        started = RunContext.for_source(str(uuid.uuid4()), "run", source, job="nightly", destination="local")
        failed = started.finished("failed", error=f"could not connect to {spec if isinstance(spec, str) else spec['url']}")
        for context in (started, failed):
            texts = [repr(context), context.as_json(), str(context.as_environment())]
            with context_file(context) as path:
                texts.append(open(path).read())
            # What a shell hook and a command source (given the settings) really receive:
            assert run_hook(CommandHook(run=("sh", "-c", f"env > {seen}; cat $BAKTHAT_CONTEXT >> {seen}")),
                            context, "after").ok
            texts.append(seen.read_text())
            with sources.open_dump(sources.parse({"command": "env", "name": "env"}), settings, context) as dump:
                texts.append(dump.read().decode())
                dump.finish()
            assert f"BAKTHAT_NAME={source.name}" in texts[-1]
            for text in texts:
                for secret in secrets:
                    assert secret not in text
