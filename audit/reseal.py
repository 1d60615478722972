"""Sealing the personal values of audit events written before the vault existed (migration 0005 runs
it once in each workspace).

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
from audit.services import GENESIS_HASH, _json_normal, audit_event_record, event_hash
from audit.vault import changes_seal, is_sealed
from core.actors import Actor

_append_only = importlib.import_module("audit.migrations.0002_append_only")


class ChainBroken(RuntimeError):
    pass


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
            for sql in _append_only.SQLITE_DOWN:
                cursor.execute(sql)
            try:
                yield
            finally:
                for sql in _append_only.SQLITE_UP:
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


def audit_chain_reseal() -> int:
    """Seal the clear record values of the current workspace's audit events; returns how many events
    were sealed (0: nothing to do, nothing changed)."""
    todo = [
        e.pk
        for e in AuditEvent.objects.filter(action__startswith="record.", target_type="record").only("pk", "changes")
        if _needs_sealing(e.changes)
    ]
    if not todo:
        return 0
    verification = audit_chain_verify()
    if not verification.ok:
        raise ChainBroken(f"The audit chain is broken at event #{verification.broken_seq}: not re-sealed.")
    todo_set = set(todo)
    head = AuditChainHead.objects.get(pk=1)
    previous = {"seq": head.seq, "hash": head.hash}
    with transaction.atomic(), _append_only_lifted():
        prev_hash = GENESIS_HASH
        for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=2000):
            if event.pk in todo_set:
                event.changes = _json_normal(changes_seal(_record_subject(event), event.changes, ("before", "after")))
            if event.pk in todo_set or event.prev_hash != prev_hash:
                event.prev_hash = prev_hash
                event.hash = event_hash(event)
                AuditEvent.objects.filter(pk=event.pk).update(
                    changes=event.changes, prev_hash=event.prev_hash, hash=event.hash
                )
            prev_hash = event.hash
        AuditChainHead.objects.filter(pk=1).update(hash=prev_hash)
        audit_event_record(
            action="audit.chain_resealed",
            actor=Actor.system("upgrade"),
            changes={"events_sealed": len(todo), "previous_head": previous},
        )
    return len(todo)
