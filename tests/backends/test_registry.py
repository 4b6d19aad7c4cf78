"""The registry of backends: checked registration, the from_settings factory, declared capabilities."""

from __future__ import annotations

import pytest

from bakthat import backends
from bakthat.backends import base, get_backend, get_backend_class, glacier, local, register, registry, swift, vault
from bakthat.errors import ConfigError
from bakthat.testing.memory import MemoryBackend


class Incomplete(base.Backend):
    """Lists and reads nothing: no primitive is implemented."""

    name = "incomplete"


@pytest.fixture
def scratch_name():
    """A destination name removed from the registry after the test."""
    yield "scratch_store"
    registry.pop("scratch_store", None)


def test_the_built_in_destinations_are_found_by_name():
    assert get_backend_class("local") is local.Backend
    assert get_backend_class("glacier") is glacier.Backend
    assert get_backend_class("swift") is swift.Backend
    assert get_backend_class("memory") is MemoryBackend


def test_an_unknown_destination_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown destination 'nowhere' \(known: .*glacier.*local.*memory.*s3.*swift"):
        get_backend_class("nowhere")


def test_a_helper_module_is_not_a_destination():
    for name in ("aws", "retrieval", "vault", "base"):
        with pytest.raises(ConfigError, match="unknown destination"):
            get_backend_class(name)


def test_registering_checks_the_class_and_the_name(scratch_name):
    with pytest.raises(ConfigError, match="does not implement open_upload, open_read, stat, list, delete, container"):
        register(scratch_name, Incomplete)
    with pytest.raises(ConfigError, match="not a subclass"):
        register(scratch_name, dict)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="lowercase"):
        register("Bad-Name", MemoryBackend)
    with pytest.raises(ConfigError, match="not a subclass"):
        registry[scratch_name] = object  # type: ignore[assignment]
    assert scratch_name not in registry


def test_a_registered_backend_is_built_by_get_backend(scratch_name):
    class Scratch(MemoryBackend):
        name = "scratch_store"

    assert register(scratch_name, Scratch) is Scratch
    assert isinstance(get_backend(scratch_name, {}), Scratch)


def test_a_taken_name_is_refused_unless_replaced(scratch_name):
    with pytest.raises(ConfigError, match="already registered"):
        register("local", MemoryBackend)
    assert get_backend_class("local") is local.Backend
    register(scratch_name, MemoryBackend)
    register(scratch_name, MemoryBackend, replace=True)


def test_glacier_builds_the_vault_backend_for_a_profile_with_a_vault():
    assert isinstance(get_backend("glacier", {"glacier_vault": "old-vault"}), vault.VaultBackend)
    assert type(get_backend("glacier", {"s3_bucket": "b"})) is glacier.Backend
    assert type(get_backend("glacier", {"s3_bucket": "b", "glacier_vault": "v", "glacier_mode": "s3"})) is glacier.Backend
    with pytest.raises(ConfigError, match="from_settings"):
        glacier.Backend({"glacier_vault": "old-vault"})


@pytest.mark.parametrize(
    ("name", "settings", "declared"),
    [
        ("local", {}, {"cheap_reads"}),
        ("memory", {}, {"cheap_reads", "conditional_writes"}),
        ("s3", {"s3_bucket": "b"}, {"conditional_writes", "lists_stale_uploads", "archive_retrievals"}),
        ("glacier", {"s3_bucket": "b"}, {"conditional_writes", "lists_stale_uploads", "archive_retrievals"}),
        ("glacier", {"glacier_vault": "v"}, {"archive_retrievals", "vault_inventory"}),
        ("swift", {"auth_url": "http://x/auth/v1.0", "access_key": "a:u", "secret_key": "s", "swift_container": "c"}, {"lists_stale_uploads"}),
    ],
)
def test_each_backend_declares_its_capabilities(name, settings, declared):
    backend = get_backend(name, settings)
    capabilities = {"cheap_reads", "conditional_writes", "lists_stale_uploads", "archive_retrievals", "vault_inventory"}
    assert {capability for capability in capabilities if getattr(backend, capability)} == declared


def test_keyvalue_refuses_a_destination_without_conditional_writes(bakthat_catalog):
    from bakthat.helper import KeyValue

    with pytest.raises(ConfigError, match="conditional writes"):
        KeyValue(destination="local")


def test_cleaning_uploads_of_a_store_without_them_is_a_config_error():
    from bakthat.commands.cleanup_uploads import abort_stale_uploads

    with pytest.raises(ConfigError, match="no multipart uploads"):
        abort_stale_uploads(get_backend("memory", {}), 0)


def test_a_plugin_replacing_a_backend_goes_through_the_same_check(monkeypatch):
    with pytest.raises(ConfigError):
        monkeypatch.setitem(backends.registry, "local", Incomplete)
    assert get_backend_class("local") is local.Backend
