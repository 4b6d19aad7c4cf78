"""The public API refuses keywords it does not understand, and keeps 0.6's working."""

from __future__ import annotations

import logging

import pytest

import bakthat
from bakthat import models
from bakthat.helper import BakHelper

FAST = {"scrypt_work_factor": 10}


def stored(home) -> list[str]:
    store = home / ".bakthat_store"
    return sorted(p.name for p in store.iterdir() if p.is_file()) if store.exists() else []


def test_a_misspelt_password_is_refused_before_anything_is_stored(tree, home):
    with pytest.raises(TypeError, match=r"backup\(\) got an unexpected keyword argument 'passwrod' \(did you mean 'password'\?\)"):
        bakthat.backup(str(tree), passwrod="x")
    assert stored(home) == []
    assert not (home / ".bakthat.sqlite").exists()


def test_delete_with_an_unknown_keyword_deletes_nothing(tree, home):
    row = bakthat.backup(str(tree), password="")
    with pytest.raises(TypeError, match="'dryrun' .*did you mean 'dry_run'"):
        bakthat.delete("mydir", dryrun=True)
    assert models.Backups.get_by_id(row.id).state == "ok"
    assert row.stored_filename in stored(home)


@pytest.mark.parametrize(
    "call, wrong, right",
    [
        (lambda **kw: bakthat.restore("mydir", **kw), "overwite", "overwrite"),
        (lambda **kw: bakthat.delete_older_than("mydir", "1D", **kw), "destinaton", "destination"),
        (lambda **kw: bakthat.rotate_backups("mydir", **kw), "dry_runn", "dry_run"),
        (lambda **kw: bakthat.search(**kw), "tag", "tags"),
        (lambda **kw: bakthat.show(**kw), "profil", "profile"),
        (lambda **kw: bakthat.ls(**kw), "querry", "query"),
        (lambda **kw: models.Backups.search(**kw), "destination_", "destination"),
    ],
)
def test_every_public_action_names_the_unknown_keyword_and_the_closest_valid_one(home, call, wrong, right):
    with pytest.raises(TypeError) as caught:
        call(**{wrong: 1})
    assert repr(wrong) in str(caught.value) and f"did you mean {right!r}" in str(caught.value)


def test_a_keyword_with_no_close_valid_name_is_still_refused(home):
    with pytest.raises(TypeError, match="unexpected keyword argument 'zzz'$"):
        bakthat.search(zzz=1)


def test_bakhelper_methods_refuse_unknown_keywords(tmp_path, home):
    source = tmp_path / "f.txt"
    source.write_text("x")
    helper = BakHelper("named", password="")
    with pytest.raises(TypeError, match="did you mean 'password'"):
        helper.backup(str(source), pasword="secret")
    with pytest.raises(TypeError, match="did you mean 'overwrite'"):
        helper.restore("named", overwrit=True)
    with pytest.raises(TypeError, match="did you mean 'dry_run'"):
        helper.rotate("named", dry=True)
    with pytest.raises(TypeError, match="did you mean 'force'"):
        helper.delete_older_than("named", "1D", forc=True)
    assert stored(home) == []


def test_every_0_6_keyword_is_accepted(tree, tmp_path, home, caplog):
    """The keyword names of bakthat 0.6's functions (reference section 2) all still work."""
    conf = {**FAST, "rotation": {"days": 3}}
    row = bakthat.backup(
        filename=str(tree), destination="local", profile="default", config=None, prompt="no", tags=["a", "b"],
        key="k", exclude_file=None, s3_reduced_redundancy=False, password="pw", custom_filename="named", conf=conf,
    )
    assert row.filename == "named" and row.tags == "a b"
    with caplog.at_level(logging.WARNING, logger="bakthat"):
        restored = bakthat.restore(
            filename="named", destination="local", profile="default", config=None, password="pw", job_check=False,
            conf=conf, target=tmp_path / "out",
        )
    assert restored.id == row.id
    assert "restore ignores job_check=" in caplog.text
    assert bakthat.show(query="nam", destination="local", tags="a", profile="default", config=None, conf=conf) == [row]
    assert models.Backups.search(query="named", destination="local", profile="default", config=None) .count() == 1
    with caplog.at_level(logging.WARNING, logger="bakthat"):
        assert bakthat.rotate_backups(
            filename="named", destination="local", profile="default", config=None, conf=conf,
            days=1, weeks=2, months=3, first_week_day=5,
        ) == []
    assert "rotate_backups ignores days=, first_week_day=, months=, weeks=" in caplog.text
    assert bakthat.delete_older_than(
        filename="named", interval="1Y", profile="default", config=None, destination="local", conf=conf
    ) == []
    assert bakthat.delete(filename="named", destination="local", profile="default", config=None, conf=conf).id == row.id
