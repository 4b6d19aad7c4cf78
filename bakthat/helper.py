"""Helpers for backup scripts (0.6's ``bakthat.helper``): the KeyValue store."""

from __future__ import annotations

from bakthat.keyvalue import KeyValue

__all__ = ["KeyValue"]
