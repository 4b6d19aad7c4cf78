"""Ping the profile's ``heartbeat_url`` after backups made from Python (successor of BakManager).

``bakthat backup`` already pings ``heartbeat_url`` by itself (see ``docs/cli.md``,
periodic_backups).  This plugin gives the same pings to backups made through the
Python API (``bakthat.backup(...)``, BakHelper scripts, plugin commands): the URL on
success, the URL with ``/fail`` appended when a backup fails or skipped unreadable
entries (``{status}`` and ``{key}`` in the URL are replaced as for the command).  Under
``bakthat backup`` it stays quiet, so a backup is never pinged twice; a dry run
(``dry_run=True``) sends no ping.

Enable it with ``plugins_dir`` pointing at this directory and::

    default:
      heartbeat_url: https://hc-ping.com/<your check's uuid>
      plugins: [heartbeat_plugin.HeartbeatPlugin]

A ping never fails a backup: errors are warnings that name only the URL's host.
"""

from bakthat import heartbeat
from bakthat.plugin import Plugin, cli_command


class HeartbeatPlugin(Plugin):
    def activate(self):
        self.url = self.settings.get("heartbeat_url")
        self.pings = []  # (status, delivered), for scripts and tests
        if not self.url:
            self.log.warning("heartbeat_url is not set in this profile: the heartbeat plugin sends no ping")
            return
        self.on_backup += self.backed_up
        self.on_failure += self.failed

    def _command_pings(self):
        """True when ``bakthat backup`` runs: it sends the ping itself."""
        return cli_command() == "backup"

    def backed_up(self, session_id, backup):
        if self._command_pings() or backup.dry_run:  # a dry run stored nothing: no ping
            return
        metadata = backup.metadata or {}
        status = "fail" if metadata.get("skipped") else "success"
        self._ping(status, metadata.get("key"))

    def failed(self, session_id, action, exception):
        if action != "backup" or self._command_pings():
            return
        # The key of a failed backup is not known here: a {key} URL gets no failure ping.
        self._ping("fail", None)

    def _ping(self, status, key):
        if heartbeat.url_for(self.url, status, key) is None:
            self.log.debug("heartbeat_url needs a key and this backup has none: no ping")
            return
        delivered = heartbeat.ping(self.url, status, key=key)
        self.pings.append((status, delivered))
