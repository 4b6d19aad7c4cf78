"""A plugin as a third party would write it: an audit trail of bakthat's actions.

Every backup, restore and delete is appended as one JSON line (event, session id, stored
file name) to the file named by the profile's ``extra: {audit_log: PATH}``; a backup is
refused while the file named by ``extra: {audit_freeze: PATH}`` exists.  It is tested in
test_bakthat_audit.py with bakthat's kit (``bakthat.testing``) and nothing else.
"""

from __future__ import annotations

import json
import os
from typing import Any

from bakthat.plugin import Plugin


class Audit(Plugin):
    """Append one JSON line per completed action; veto backups during a freeze."""

    def activate(self) -> None:
        extra = self.conf.get("extra") or {}
        self.log_path = os.path.expanduser(extra["audit_log"])
        self.freeze_path = os.path.expanduser(extra.get("audit_freeze", "~/.audit-freeze"))
        self.before_backup += self.refuse_during_freeze
        self.on_backup += self.record
        self.on_restore += self.record
        self.on_delete += self.record

    def refuse_during_freeze(self, session_id: str) -> None:
        if os.path.exists(self.freeze_path):
            raise RuntimeError(f"backups are frozen ({self.freeze_path} exists)")

    def record(self, session_id: str, backup: Any) -> None:
        line = {"session_id": session_id, "stored_filename": backup.stored_filename, "deleted": bool(backup.is_deleted)}
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
