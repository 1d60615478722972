"""Domain events: one object per thing that happened in a workspace that others must hear about.

A service builds the event and calls `event_emit(event)` inside the transaction of the change; the
subscribers listed in settings.TESSERA_EVENT_SUBSCRIBERS (config/settings/base.py, the one table of
who listens) hear it:

- "in_transaction" subscribers run at once, in that transaction (the audit log appends the event to
  its hash chain, the webhook outbox writes it): if one fails, the change fails with it;
- "on_commit" subscribers run when the transaction commits (phone sync fans the change out).

An event has one id and one body — the object `/api/v1/events` lists and a webhook delivers:
`{"id", "object": "event", "type", "created", "livemode", "data"}`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from ulid import ULID

from core.actors import Actor


def event_id_new() -> str:
    return f"evt_{str(ULID()).lower()}"


def instant(value: datetime) -> str:
    """A moment as the API writes it: ISO 8601 in UTC with `Z` (as DRF's DateTimeField does)."""
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def target_of(obj) -> tuple[str, str, str]:
    """A model instance as an audit target: (its model's name, its key, how it reads)."""
    return obj._meta.model_name, str(obj.pk), str(obj)[:255]


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """What the audit log records of an event."""

    target: tuple[str, str, str]  # (kind, id, label)
    changes: dict[str, Any] = field(default_factory=dict)
    # The data subject whose personal values `changes["before"]` / `changes["after"]` hold: the audit
    # log seals them with that subject's vault key, so they never enter the hash chain in clear.
    personal_subject: str = ""


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    """Something that happened to an object other than a record (collections, members, API keys,
    devices, test pings). `data` is the event's public `data`: `{"object": {...}}` and, for a change,
    `previous_attributes`."""

    type: str
    actor: Actor
    data: dict[str, Any]
    target: tuple[str, str, str] = ("", "", "")
    changes: dict[str, Any] | None = None  # what the audit log keeps; None: not audited
    # Whose personal values `changes["before"]` / `changes["after"]` hold (AuditEntry.personal_subject).
    personal_subject: str = ""
    livemode: bool = True
    id: str = field(default_factory=event_id_new)
    occurred_at: datetime = field(default_factory=timezone.now)
    # Shared by every event of one bulk write (None otherwise): subscribers may keep there what they
    # would otherwise look up again for each event of the same transaction.
    batch: dict | None = field(default=None, compare=False, repr=False)

    def payload(self) -> dict[str, Any]:
        return self.data

    def body(self) -> dict[str, Any]:
        """The event as the API lists it and a webhook delivers it."""
        return {
            "id": self.id,
            "object": "event",
            "type": self.type,
            "created": instant(self.occurred_at),
            "livemode": self.livemode,
            "data": self.payload(),
        }

    def audit_entry(self) -> AuditEntry | None:
        if self.changes is None:
            return None
        return AuditEntry(target=self.target, changes=self.changes, personal_subject=self.personal_subject)


_resolved: dict[str, list] = {}
_resolve_lock = threading.Lock()


def _subscribers(phase: str) -> list:
    found = _resolved.get(phase)
    if found is None:
        with _resolve_lock:
            paths = settings.TESSERA_EVENT_SUBSCRIBERS.get(phase, [])
            found = _resolved[phase] = [import_string(path) for path in paths]
    return found


def event_emit(event: DomainEvent) -> None:
    """Hand `event` to its subscribers: the in-transaction ones now, the on-commit ones at commit.
    Call it inside the transaction of the change the event describes."""
    for subscriber in _subscribers("in_transaction"):
        subscriber(event)
    for subscriber in _subscribers("on_commit"):
        transaction.on_commit(lambda subscriber=subscriber: subscriber(event))
