"""bakthat.sources: every form of source a user writes is found by scheme or key, or refused by name."""

from __future__ import annotations

import io

import pytest

from bakthat import sources
from bakthat.errors import ConfigError

ISSUE_EXAMPLE = [
    "/etc",
    "postgresql://postgres@127.0.0.1:5432/app",
    "mysql://root@127.0.0.1:3306/shop",
    "sqlite:///var/lib/app/app.db",
    {"name": "pool", "command": ["zfs", "send", "tank@today"]},
    {"path": "/srv/www", "hooks": {"before": [{"run": "touch /srv/www/.snap"}]}},
]


def test_the_issue_example_sources_parse_to_their_kinds_and_names():
    parsed = [sources.parse(spec, f"jobs.nightly.sources[{index}]") for index, spec in enumerate(ISSUE_EXAMPLE)]
    assert [(source.kind, source.name, source.extension) for source in parsed] == [
        ("path", "etc", "tar"),
        ("postgresql", "app", "pgdump"),
        ("mysql", "shop", "sql"),
        ("sqlite", "app.db", "sqlite"),
        ("command", "pool", "bin"),
        ("path", "www", "tar"),
    ]
    assert parsed[5].hooks == {"before": [{"run": "touch /srv/www/.snap"}]}
    assert parsed[1].display == "postgresql://postgres@127.0.0.1:5432/app"


def test_scheme_aliases_and_explicit_names_are_honoured():
    assert sources.parse("postgres://db/app").kind == "postgresql"
    assert sources.parse("mariadb://db/shop").kind == "mysql"
    assert sources.parse({"url": "postgresql://db/app", "name": "app-prod"}).name == "app-prod"
    assert sources.parse("postgresql://db/*").name == "postgresql-all"
    assert sources.parse("/").name == "root"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ftp://host/file", r"jobs\.a\.sources\[0\]\.url: unknown source scheme 'ftp' \(known: mariadb, mysql, postgres, postgresql, sqlite\)"),
        ({"url": "postgresql://h/app", "path": "/x"}, r"give exactly one of url, command or path \(found url, path\)"),
        ({"name": "x"}, r"give exactly one of url, command or path \(found none\)"),
        (42, r"jobs\.a\.sources\[0\]: a source is a path, a URL or a mapping, not int"),
        ({"url": "postgresql://h/app", "pasword": "x"}, r"unknown key 'pasword' \(did you mean 'password'\?\)"),
        ({"url": "postgresql://h/app", "name": "a/b"}, r"jobs\.a\.sources\[0\]\.name: 'a/b' cannot be a backup name"),
        ("postgresql://h:99999/app", r"jobs\.a\.sources\[0\]\.url: Port out of range"),
        ("postgresql://h/", r"\.url: give one database"),
        ("mysql://h/*", r"\.url: give one database \(mysql://host/dbname\)"),
        ("mysql://h/shop?ssl=1", r"\.url: unknown parameter 'ssl'"),
        ("sqlite://host/app.db", r"\.url: write sqlite:///absolute/path\.db"),
        ({"command": ["zfs", "send"]}, r"jobs\.a\.sources\[0\]: a command source needs a name"),
        ({"command": [], "name": "x"}, r"\.command: the command is empty"),
        ({"command": "x", "name": "x", "extension": "../x"}, r"\.extension: '\.\./x' is not a file extension"),
        ({"path": ""}, r"\.path: must be a non-empty path"),
    ],
)
def test_a_bad_source_is_a_config_error_naming_its_place(spec, message):
    with pytest.raises(ConfigError, match=message):
        sources.parse(spec, "jobs.a.sources[0]")


def test_a_path_source_is_archived_not_dumped():
    with pytest.raises(ConfigError, match="a path source is archived, not dumped"):
        sources.open_dump(sources.parse("/etc"), {})


def test_a_command_source_cannot_be_restored_into():
    source = sources.parse({"command": ["zfs", "send", "tank@x"], "name": "pool"})
    with pytest.raises(ConfigError, match="cannot restore into a command source"):
        sources.restore_into(source, io.BytesIO(b""), {})


def test_passwords_are_kept_out_of_the_display_and_repr():
    source = sources.parse({"url": "postgresql://app:url-secret-1@db/app", "password": "spec-secret-2"})
    assert source.password == "spec-secret-2"
    for text in (source.display, repr(source)):
        assert "url-secret-1" not in text and "spec-secret-2" not in text
    from_url = sources.parse("mysql://root:url-secret-3@db/shop")
    assert from_url.password == "url-secret-3" and "url-secret-3" not in repr(from_url)
    assert from_url.secrets() == ("url-secret-3",)
