"""Sealing the personal values of audit events written before the vault existed: record values, who
acted and on whom, and e-mail addresses in changes. Migration 0007 runs it once in each workspace
(0005 ran it for record values; on a table without the `personal` column yet it now leaves the work
to 0007, which comes right after the column is added).

Their hashes covered the clear values, so sealing them changes their hashes: the chain is verified
first (a broken chain is refused, never laundered), then each event is sealed and the chain re-hashed
in order, and an `audit.chain_resealed` event records the previous head's seq and hash, so a copy of
that head kept elsewhere still ties to the new chain. `audit_verify` passes before and after.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Any

from django.db import connection, transaction

from audit.models import AuditChainHead, AuditEvent
from audit.selectors import audit_chain_verify
from audit.services import (
    GENESIS_HASH,
    _json_normal,
    actor_subject,
    audit_event_record,
    event_hash,
    personal_seal,
    target_subject,
)
from audit.vault import EMAIL, changes_seal, emails_seal, is_sealed
from core.actors import Actor, ActorType

_append_only = importlib.import_module("audit.migrations.0002_append_only")
_erasure_only = importlib.import_module("audit.migrations.0006_personal_columns")


class ChainBroken(RuntimeError):
    pass


def _has_personal_column() -> bool:
    with connection.cursor() as cursor:
        columns = connection.introspection.get_table_description(cursor, AuditEvent._meta.db_table)
    return any(c.name == "personal" for c in columns)


@contextlib.contextmanager
def _append_only_lifted() -> Iterator[None]:
    """The append-only trigger, lifted for this transaction only (table owner's rights suffice)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
            try:
                yield
            finally:
                cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")
        else:
            for sql in _append_only.SQLITE_DOWN + _erasure_only.SQLITE_DOWN:
                cursor.execute(sql)
            try:
                yield
            finally:
                for sql in _append_only.SQLITE_UP + _erasure_only.SQLITE_UP:
                    cursor.execute(sql)


def _record_subject(event: AuditEvent) -> str:
    live = event.changes.get("livemode", True) is not False
    return "record:" + (event.target_id if live else f"test:{event.target_id}")


def _needs_sealing(changes: Any) -> bool:
    if not isinstance(changes, dict):
        return False
    return any(
        isinstance(changes.get(part), dict) and any(not is_sealed(v) for v in changes[part].values())
        for part in ("before", "after")
    )


def _holds_clear_email(value: Any) -> bool:
    if is_sealed(value):
        return False
    if isinstance(value, dict):
        return any(_holds_clear_email(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_clear_email(v) for v in value)
    return isinstance(value, str) and EMAIL.search(value) is not None


def _is_record_event(event: AuditEvent) -> bool:
    return event.action.startswith("record.") and event.target_type == "record"


def _actor_of(event: AuditEvent) -> Actor:
    try:
        return Actor(ActorType(event.actor_type), event.actor_id, event.actor_label)
    except ValueError:
        return Actor.anonymous(event.actor_label)


def _columns(event: AuditEvent) -> dict[str, Any]:
    return {
        "actor_label": event.actor_label,
        "target_label": event.target_label,
        "ip": event.ip,
        "user_agent": event.user_agent,
    }


def _personal_missing(event: AuditEvent) -> bool:
    if event.personal:
        return False
    subjects = (actor_subject(_actor_of(event)), target_subject(event.target_type, event.target_id, event.target_label))
    values = _columns(event)
    return bool(
        (subjects[0] and any(values[c] not in (None, "") for c in ("actor_label", "ip", "user_agent")))
        or (subjects[1] and values["target_label"])
    )


def _todo(event: AuditEvent) -> bool:
    if _is_record_event(event):
        if _needs_sealing(event.changes):
            return True
    elif _holds_clear_email(event.changes):
        return True
    return _personal_missing(event)


def _seal(event: AuditEvent, cache: dict) -> None:
    if _is_record_event(event):
        if _needs_sealing(event.changes):
            event.changes = _json_normal(changes_seal(_record_subject(event), event.changes, ("before", "after")))
    else:
        event.changes = _json_normal(emails_seal(event.changes, cache=cache))
    if not event.personal:
        event.personal = personal_seal(
            actor_subject=actor_subject(_actor_of(event)),
            target_subject=target_subject(event.target_type, event.target_id, event.target_label),
            columns=_columns(event),
            cache=cache,
        )


def audit_chain_reseal() -> int:
    """Seal the clear personal values of the current workspace's audit events; returns how many events
    were sealed (0: nothing to do, nothing changed)."""
    if not _has_personal_column():
        return 0
    events = AuditEvent.objects.all()
    todo = [e.pk for e in events.iterator(chunk_size=2000) if _todo(e)]
    if not todo:
        return 0
    verification = audit_chain_verify()
    if not verification.ok:
        raise ChainBroken(f"The audit chain is broken at event #{verification.broken_seq}: not re-sealed.")
    todo_set = set(todo)
    head = AuditChainHead.objects.get(pk=1)
    previous = {"seq": head.seq, "hash": head.hash}
    cache: dict = {}
    with transaction.atomic(), _append_only_lifted():
        prev_hash = GENESIS_HASH
        for event in events.order_by("seq").iterator(chunk_size=2000):
            if event.pk in todo_set:
                _seal(event, cache)
            if event.pk in todo_set or event.prev_hash != prev_hash:
                event.prev_hash = prev_hash
                event.hash = event_hash(event)
                AuditEvent.objects.filter(pk=event.pk).update(
                    changes=event.changes, personal=event.personal, prev_hash=event.prev_hash, hash=event.hash
                )
            prev_hash = event.hash
        AuditChainHead.objects.filter(pk=1).update(hash=prev_hash)
        audit_event_record(
            action="audit.chain_resealed",
            actor=Actor.system("upgrade"),
            changes={"events_sealed": len(todo), "previous_head": previous},
        )
    return len(todo)
