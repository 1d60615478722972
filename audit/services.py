"""The one way to record an audit event (and to compute its place in the hash chain)."""

from __future__ import annotations

import hashlib
import ipaddress
import json
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audit.models import AuditChainHead, AuditEvent
from audit.registry import action_check
from audit.vault import changes_seal, vault_shred
from core.actors import Actor, Principal
from core.events import DomainEvent
from core.request_context import request_context_get

GENESIS_HASH = "0" * 64


def changes_diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Only the keys whose value changed, as {"before": {...}, "after": {...}}."""
    keys = [k for k in {**before, **after} if before.get(k) != after.get(k)]
    return {"before": {k: before.get(k) for k in keys}, "after": {k: after.get(k) for k in keys}}


def _json_normal(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def _ip_normal(ip: str | None) -> str | None:
    if not ip:
        return None
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return None


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_canonical_bytes(event: AuditEvent) -> bytes:
    """The serialization the hash covers: every field but the hash itself, keys sorted, UTF-8."""
    body = {
        "seq": event.seq,
        "occurred_at": _instant(event.occurred_at),
        "actor": [event.actor_type, event.actor_id, event.actor_label],
        "action": event.action,
        "target": [event.target_type, event.target_id, event.target_label],
        "ip": _ip_normal(event.ip),
        "user_agent": event.user_agent,
        "request_id": event.request_id,
        "changes": event.changes,
        "prev_hash": event.prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(event: AuditEvent) -> str:
    return hashlib.sha256(event.prev_hash.encode() + b"\n" + event_canonical_bytes(event)).hexdigest()


def _target_parts(target: Any) -> tuple[str, str, str]:
    if target is None:
        return "", "", ""
    if isinstance(target, tuple):
        kind, ident, label = [*list(target), "", "", ""][:3]
        return str(kind), str(ident), str(label)[:255]
    meta = getattr(target, "_meta", None)
    kind = meta.model_name if meta is not None else type(target).__name__.lower()
    return kind, str(getattr(target, "pk", "")), str(target)[:255]


def _head_advance() -> tuple[int, str] | None:
    """Move the chain head's seq on by one and read it with the hash before it, in one statement
    (RETURNING: PostgreSQL, and SQLite since 3.35); None while there is no head yet."""
    table = connection.ops.quote_name(AuditChainHead._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")  # noqa: S608
        row = cursor.fetchone()
    return (row[0], row[1]) if row is not None else None


def audit_event_record(
    *,
    action: str,
    actor: Actor | Principal | None = None,
    target: Any = None,
    changes: dict[str, Any] | None = None,
    personal_subject: str = "",
) -> AuditEvent:
    """Append one event to the current tenant's chain, inside the caller's transaction.

    `target` is a model instance or a (type, id, label) tuple. IP, user agent and request id come
    from the current request's context. With `personal_subject`, the values under `changes["before"]`
    and `changes["after"]` are personal data of that subject: sealed in the audit vault, never hashed
    in clear (audit.vault).
    """
    action_check(action)
    actor = Actor.of(actor)
    ctx = request_context_get()
    target_type, target_id, target_label = _target_parts(target)
    # No savepoint of its own inside the caller's transaction: if the event cannot be written, the
    # change it records must not commit either (and a caller outside any transaction gets one).
    if personal_subject:
        changes = changes_seal(personal_subject, changes or {}, ("before", "after"))
    with transaction.atomic(savepoint=False):
        # The UPDATE takes the row lock first, so concurrent writers form a queue, not a fork.
        head = _head_advance()
        if head is None:
            try:
                with transaction.atomic():
                    AuditChainHead.objects.create(pk=1, seq=1, hash=GENESIS_HASH)
                head = (1, GENESIS_HASH)
            except IntegrityError:
                head = _head_advance()
        seq, prev_hash = head
        event = AuditEvent(
            seq=seq,
            occurred_at=timezone.now(),
            actor_type=actor.type,
            actor_id=actor.id,
            actor_label=actor.label[:255],
            action=action,
            target_type=target_type,
            target_id=target_id,
            target_label=target_label,
            ip=_ip_normal(ctx.ip),
            user_agent=ctx.user_agent[:512],
            request_id=ctx.request_id,
            changes=_json_normal(changes or {}),
            prev_hash=prev_hash,
        )
        event.hash = event_hash(event)
        event.save(force_insert=True)
        AuditChainHead.objects.filter(pk=1).update(hash=event.hash)
    return event


def event_audit(event: DomainEvent) -> None:
    """Subscriber (in the transaction): append a domain event that asks to be audited to the chain."""
    entry = event.audit_entry()
    if entry is None:
        return
    audit_event_record(
        action=event.type,
        actor=event.actor,
        target=entry.target,
        changes=entry.changes,
        personal_subject=entry.personal_subject,
    )


def subject_erased_shred(event: DomainEvent) -> None:
    """Subscriber (in the transaction): an erased subject's vault key is destroyed, so the values its
    audit events sealed are gone for good while the chain still verifies."""
    subject = getattr(event, "subject", "")
    if event.type == "record.erased" and subject:
        vault_shred([subject])
