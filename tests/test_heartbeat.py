"""The heartbeat is a subscriber of the backup's events: it pings while subscribed, and only then."""

from __future__ import annotations

import pytest

import bakthat
from bakthat import heartbeat
from bakthat.conf import get_profile
from bakthat.tarwriter import SourceError
from bakthat.eventing import events
from tests.heartbeat_server import monitor, url  # noqa: F401 - fixture


@pytest.fixture
def settings(home, monitor):
    (home / ".bakthat.yml").write_text(
        f"default:\n  heartbeat_url: '{url(monitor, '/ping/check')}'\n"
    )
    return get_profile()


def test_a_subscribed_heartbeat_pings_success_for_a_backup_made_through_the_api(settings, monitor, tree):
    with heartbeat.subscribed(settings, "mykey") as subscriber:
        bakthat.backup(str(tree), password="")
    assert monitor.paths == ["/ping/check"] and subscriber.sent == ["success"]
    from bakthat import models

    assert models.Config.get_key("heartbeat_last_ping")["status"] == "success"


def test_a_subscribed_heartbeat_pings_fail_for_a_failed_backup(settings, monitor, tmp_path):
    with heartbeat.subscribed(settings) as subscriber:
        with pytest.raises(SourceError):
            bakthat.backup(str(tmp_path / "missing"), password="")
    assert monitor.paths == ["/ping/check/fail"] and subscriber.sent == ["fail"]


def test_a_failure_of_another_action_is_not_the_heartbeats_business(settings, monitor):
    with heartbeat.subscribed(settings):
        with pytest.raises(bakthat.BakthatError):
            bakthat.restore("nothing-of-that-name", password="")
    assert monitor.paths == []


def test_nothing_is_pinged_for_a_dry_run_or_after_the_block(settings, monitor, tree):
    with heartbeat.subscribed(settings, dry_run=True) as subscriber:
        bakthat.backup(str(tree), password="", dry_run=True)
    assert subscriber is None
    with heartbeat.subscribed(settings):
        pass
    bakthat.backup(str(tree), password="")
    assert monitor.paths == []
    assert len(events.on_backup) == 0 and len(events.on_failure) == 0


def test_without_a_heartbeat_url_nothing_is_subscribed(home):
    with heartbeat.subscribed(get_profile()) as subscriber:
        assert subscriber is None
        assert len(events.on_backup) == 0
