"""The manifest (bakthat.manifest): its key, building it, parsing it with a cap, and turning
an untrusted one into catalog row fields with every field checked."""

from __future__ import annotations

import copy
import hashlib
import io
import json
from datetime import datetime
from types import SimpleNamespace

import pytest

from bakthat import manifest
from bakthat.errors import IntegrityError
from bakthat.index_store import index_key
from bakthat.testing import memory
from bakthat.testing.memory import MemoryBackend

STORED = "www.20261122120000.tar.zst.age"
SHA = hashlib.sha256(b"archive").hexdigest()
HEADER_SHA = hashlib.sha256(b"header").hexdigest()


def a_plan(**changes) -> SimpleNamespace:
    """What :func:`manifest.build` reads of a backup's plan."""
    fields = dict(
        name="www", stored_filename=STORED, backup_date=1_795_000_000, tags="daily db", compression="zstd",
        encryption="age-scrypt", profile="default", source_path="/srv/www", session_id="session-1",
        key=None, warnings=["one warning"], level="full", base=None, index=None, level_reason="first backup",
        dump=None,
    )
    fields.update(changes)
    return SimpleNamespace(**fields)


def a_stats(**changes) -> SimpleNamespace:
    """What :func:`manifest.build` reads of the tar walk's stats."""
    fields = dict(bytes=1234, files=7, partial=False, excluded=2, excluded_names=["a.log", "b.log"],
                  skipped=["/srv/www/unreadable"], changed=[])
    fields.update(changes)
    return SimpleNamespace(**fields)


def built(plan=None, stats=None) -> dict:
    return manifest.build(plan or a_plan(), stats or a_stats(), size=4096, sha256=SHA, host="web1",
                          header_sha256=HEADER_SHA, version="1.0.0")


def stored(data: dict) -> dict:
    """Return ``data`` as a store hands it back: encoded, then parsed."""
    return manifest.parse(manifest.encode(data))


def reason(data: dict) -> str:
    with pytest.raises(IntegrityError) as raised:
        manifest.row_fields(data)
    return str(raised.value)


# -- the key -----------------------------------------------------------------------------


def test_a_manifest_key_is_the_archive_name_plus_the_suffix_and_back():
    key = manifest.key_for(STORED)
    assert key == STORED + ".manifest.json"
    assert manifest.is_manifest(key) and not manifest.is_manifest(STORED)
    assert manifest.archive_of(key) == STORED
    assert manifest.archive_of(STORED) == STORED  # not a manifest key: unchanged


# -- building ----------------------------------------------------------------------------


def test_a_built_manifest_names_its_format_version_and_what_the_backup_stored():
    data = built()
    assert list(data)[:3] == ["format", "name", "stored_filename"]
    assert data["format"] == "bakthat-manifest" and data["format_version"] == manifest.FORMAT_VERSION == 1
    assert data["tags"] == ["daily", "db"]
    assert (data["size"], data["sha256"], data["header_sha256"], data["host"]) == (4096, SHA, HEADER_SHA, "web1")
    assert (data["source_size"], data["file_count"]) == (1234, 7)
    assert data["entries"] == {"excluded": 2, "skipped": 1, "changed": 0}
    assert data["source_kind"] is None and data["extension"] is None
    assert datetime.fromisoformat(data["backup_date_iso"]).timestamp() == 1_795_000_000


def test_a_dump_backup_records_its_source_kind_and_extension():
    data = built(a_plan(dump=SimpleNamespace(kind="postgresql", extension="pgdump")))
    assert (data["source_kind"], data["extension"]) == ("postgresql", "pgdump")
    fields = manifest.row_fields(stored(data))
    assert (fields["metadata"]["source_kind"], fields["metadata"]["extension"]) == ("postgresql", "pgdump")


def test_a_built_manifest_read_back_gives_the_row_the_backup_wrote():
    data = built()
    own = manifest.own_row_fields(data)
    read = manifest.row_fields(stored(data))
    for field in ("filename", "stored_filename", "backup_date", "size", "sha256", "tags", "compression",
                  "encryption", "host", "profile", "source_path", "source_size", "file_count", "session_id",
                  "format_version", "level", "base"):
        assert read[field] == own[field], field
    assert own["tags"] == "daily db"
    for key in ("is_enc", "is_gzipped", "client", "manifest", "header_sha256", "skipped"):
        assert read["metadata"][key] == own["metadata"][key], key
    assert own["metadata"]["manifest"] == manifest.key_for(STORED) and own["metadata"]["is_enc"] is True


def test_own_row_fields_leave_out_metadata_that_is_empty():
    own = manifest.own_row_fields(built(stats=a_stats(skipped=[], excluded=0, excluded_names=[])))
    assert "skipped" not in own["metadata"] and "excluded" not in own["metadata"] and "partial" not in own["metadata"]
    assert own["metadata"]["warnings"] == ["one warning"]


def test_an_adopted_06_backup_is_format_version_0_and_may_be_raw():
    row = SimpleNamespace(filename="notes.txt", stored_filename="notes.txt.20140101", backup_date=1_388_534_400,
                          size=10, sha256=SHA, compression="raw", encryption="beefish", profile="default")
    data = manifest.build_adopted(row, "0.6", "host-a", 0)
    assert data["format_version"] == 0 and data["adopted"] == "0.6" and data["adopted_by"] == "host-a"
    fields = manifest.row_fields(stored(data))
    assert (fields["format_version"], fields["compression"], fields["host"]) == (0, "raw", None)
    assert fields["metadata"]["adopted"] == "0.6" and fields["metadata"]["is_enc"] is True
    data["format_version"] = 1
    assert reason(data) == "unknown compression 'raw'"  # raw is a 0.6 file only


def test_the_encoding_is_indented_json_that_parses_to_the_same_mapping():
    data = built()
    encoded = manifest.encode(data)
    assert encoded.startswith(b'{\n  "format": "bakthat-manifest"')
    assert manifest.parse(encoded) == data


# -- parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, message",
    [
        (b'{"format": "bakthat-manifest", "name": "www", "si', "it is not JSON"),
        (b"", "it is not JSON"),
        (b"\xff\xfe not text", "it is not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "it is not JSON"),
        (b'["format", "bakthat-manifest"]', "not a bakthat manifest"),
        (b'"bakthat-manifest"', "not a bakthat manifest"),
        (b'{"name": "www"}', "not a bakthat manifest"),
        (b'{"format": "restic-snapshot"}', "not a bakthat manifest"),
        (b" " * manifest.CAP + b"{}", "more than the 1048576 bytes a manifest may hold"),
    ],
    ids=["truncated", "empty", "binary", "nested", "list", "string", "no format", "other format", "over the cap"],
)
def test_bytes_that_are_not_a_manifest_are_an_integrity_error_saying_why(data, message):
    with pytest.raises(IntegrityError, match=message):
        manifest.parse(data)


@pytest.fixture
def store():
    memory.reset()
    yield MemoryBackend()
    memory.reset()


def test_read_refuses_an_object_listed_over_the_cap_without_opening_it(store):
    info = SimpleNamespace(key="never-opened.manifest.json", size=manifest.CAP + 1)  # not in the store
    with pytest.raises(IntegrityError, match=f"it is {manifest.CAP + 1} bytes, more than the {manifest.CAP}"):
        manifest.read(store, info)


class CountingBackend(MemoryBackend):
    """The memory backend, counting the bytes its readers hand out."""

    handed_out = 0

    def open_read(self, key):
        handle = super().open_read(key)
        real_read = handle.read

        def read(size=-1):
            data = real_read(size)
            CountingBackend.handed_out += len(data)
            return data

        handle.read = read
        return handle


def test_read_reads_at_most_one_byte_over_the_cap_when_the_listed_size_lies(store):
    key = manifest.key_for(STORED)
    store.put(key, io.BytesIO(b" " * (3 * manifest.CAP) + manifest.encode(built())))
    with pytest.raises(IntegrityError, match="holds more than the 1048576 bytes"):
        manifest.read(CountingBackend(), SimpleNamespace(key=key, size=100))
    assert CountingBackend.handed_out == manifest.CAP + 1


def test_read_returns_the_stored_manifest(store):
    key = manifest.key_for(STORED)
    info = store.put(key, io.BytesIO(manifest.encode(built())))
    assert manifest.read(store, info) == built()


# -- validating a manifest from a store ------------------------------------------------------

#: (what is changed, the message naming what is wrong); None removes the field
HOSTILE = [
    ({"name": None}, "name must be a non-empty string"),
    ({"name": ""}, "name must be a non-empty string"),
    ({"name": 5}, "name must be a non-empty string"),
    ({"name": "../../etc"}, "name must not contain '/'"),
    ({"name": ".."}, "name must not contain '/'"),
    ({"name": "nul\x00byte"}, "name is malformed"),
    ({"name": "x" * 5000}, "name is malformed"),
    ({"stored_filename": None}, "stored_filename must be a non-empty string"),
    ({"backup_date": 10**15}, "backup_date 1000000000000000 is out of range (0 to 253402300799)"),
    ({"backup_date": 1.5e9}, "backup_date must be a whole number"),
    ({"backup_date": True}, "backup_date must be a whole number"),
    ({"backup_date": None}, "backup_date must be a whole number"),
    ({"size": "12"}, "size must be a whole number"),
    ({"size": -1}, "size -1 is out of range"),
    ({"size": 1 << 63}, "is out of range"),
    ({"source_size": -5}, "source_size -5 is out of range"),
    ({"file_count": "7"}, "file_count must be a whole number"),
    ({"sha256": None}, "sha256 must be a non-empty string"),
    ({"sha256": "zz"}, "sha256 is malformed"),
    ({"sha256": SHA.upper()}, "sha256 is malformed"),
    ({"header_sha256": "abc"}, "header_sha256 is malformed"),
    ({"compression": None}, "compression must be a non-empty string"),
    ({"compression": ["zstd"]}, "compression must be a non-empty string"),
    ({"compression": "lz4"}, "unknown compression 'lz4'"),
    ({"encryption": "rot13"}, "unknown encryption 'rot13'"),
    ({"encryption": None}, "encryption must be a non-empty string"),
    ({"format_version": 99}, "format version 99 is newer than this bakthat's (1)"),
    ({"format_version": "1"}, "format_version must be a whole number"),
    ({"format_version": -1}, "format_version -1 is out of range"),
    ({"tags": 5}, "tags must be a list of words"),
    ({"tags": ["ok", 3]}, "tags must be a list of words"),
    ({"tags": ["x" * 5000]}, "tags must be a list of words"),
    ({"skipped": "/etc/shadow"}, "skipped must be a list of paths"),
    ({"skipped": [None]}, "skipped must be a list of paths"),
    ({"host": 42}, "host must be a string"),
    ({"profile": ["default"]}, "profile must be a string"),
    ({"source_kind": "Postgres SQL"}, "source_kind is malformed"),
    ({"extension": "../x"}, "extension is malformed"),
    ({"level": "weekly"}, "level must be one of full, diff, incr, not 'weekly'"),
    ({"level": "incr"}, "base must be given for a differential or incremental backup"),
    ({"base": "www.1.tar.zst"}, "base must be given for a differential or incremental backup, and only then"),
    ({"level": "diff", "base": STORED}, "base is not the stored filename of another backup"),
    ({"level": "diff", "base": "a/b"}, "base is not the stored filename of another backup"),
    ({"index": "www.index"}, f"index must name '{index_key(STORED)}'"),
    ({"index": {"key": "other.index.jsonl.zst"}}, "index must name"),
    ({"index": {"key": index_key(STORED), "size": -1, "sha256": SHA}}, "size -1 is out of range"),
    ({"index": {"key": index_key(STORED), "size": 10, "sha256": "no"}}, "sha256 is malformed"),
    ({"index": {"key": index_key(STORED), "size": 10, "sha256": SHA, "entries": "many"}}, "entries must be a whole number"),
]


@pytest.mark.parametrize("changes, message", HOSTILE, ids=[f"{next(iter(c))}-{i}" for i, (c, _) in enumerate(HOSTILE)])
def test_a_hostile_or_wrong_typed_field_is_an_integrity_error_naming_it(changes, message):
    data = copy.deepcopy(built())
    for field, value in changes.items():
        if value is None:
            data.pop(field, None)
        else:
            data[field] = value
    assert message in reason(data)


def test_optional_fields_may_be_missing_and_take_their_defaults():
    data = stored(built())
    for field in ("format_version", "profile", "host", "tags", "skipped", "level", "base", "index",
                  "source_size", "file_count", "session_id", "header_sha256", "source_path"):
        data.pop(field)
    fields = manifest.row_fields(data)
    assert fields["format_version"] == 1 and fields["profile"] == "default" and fields["level"] == "full"
    assert fields["tags"] == "" and fields["host"] is None and fields["base"] is None
    assert "index" not in fields["metadata"] and "header_sha256" not in fields["metadata"]


def test_tags_written_as_one_string_are_split_into_words():
    data = stored(built())
    data["tags"] = "daily  db"
    assert manifest.row_fields(data)["tags"] == "daily db"


def test_an_incremental_backup_with_its_index_reads_back_its_base_and_index_record():
    index = {"key": index_key(STORED), "size": 321, "sha256": SHA, "entries": 9, "deletions": 1}
    data = stored(built(a_plan(level="incr", base="www.20261121120000.tar.zst.age", index=index)))
    fields = manifest.row_fields(data)
    assert (fields["level"], fields["base"]) == ("incr", "www.20261121120000.tar.zst.age")
    assert fields["metadata"]["index"] == index
    assert manifest.level_fields(data, STORED) == ("incr", "www.20261121120000.tar.zst.age", index)


def test_an_index_record_keeps_only_the_fields_it_knows():
    index = {"key": index_key(STORED), "size": 321, "sha256": SHA, "note": "x" * 100}
    data = stored(built(a_plan(index=index)))
    assert manifest.row_fields(data)["metadata"]["index"] == {"key": index_key(STORED), "size": 321, "sha256": SHA}


def test_a_manifest_older_than_levels_is_a_full_backup_without_an_index():
    data = stored(built())
    for field in ("level", "base", "index", "level_reason"):
        data.pop(field)
    assert manifest.level_fields(data, STORED) == ("full", None, None)


def test_every_encryption_a_manifest_may_name_is_accepted():
    for encryption in manifest.ENCRYPTIONS:
        data = stored(built(a_plan(encryption=encryption)))
        fields = manifest.row_fields(data)
        assert fields["encryption"] == encryption
        assert fields["metadata"]["is_enc"] is (encryption != "none")


def test_row_fields_never_hand_back_the_destinations_fields():
    fields = manifest.row_fields(stored(built()))
    assert not {"backend", "backend_hash", "is_deleted", "last_updated"} & set(fields)
    assert json.dumps(fields)  # plain data, ready for the catalog
