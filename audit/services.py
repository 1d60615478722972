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
from audit.vault import ERASED, changes_seal, emails_seal, text_subject, value_seal, vault_shred
from core.actors import Actor, ActorType, Principal
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


PERSONAL_COLUMNS = ("actor_label", "target_label", "ip", "user_agent")


def _personal_of(event: AuditEvent) -> dict[str, Any]:
    return event.personal or {}


def event_canonical_bytes(event: AuditEvent) -> bytes:
    """The serialization the hash covers: every field but the hash itself, keys sorted, UTF-8; a column
    sealed in `personal` is covered by its sealed value, not its clear copy."""
    sealed = _personal_of(event)
    body = {
        "seq": event.seq,
        "occurred_at": _instant(event.occurred_at),
        "actor": [event.actor_type, event.actor_id, sealed.get("actor_label", event.actor_label)],
        "action": event.action,
        "target": [event.target_type, event.target_id, sealed.get("target_label", event.target_label)],
        "ip": sealed["ip"] if "ip" in sealed else _ip_normal(event.ip),
        "user_agent": sealed.get("user_agent", event.user_agent),
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


def actor_subject(actor: Actor) -> str:
    """The vault subject whose personal data an actor's label, address and client are: a member's or a
    phone's own; for anyone else, the e-mail address in the label (a failed log-in's typed address)."""
    if actor.type == ActorType.USER and actor.id:
        return f"user:{actor.id}"
    if actor.type == ActorType.DEVICE and actor.id:
        return f"device:{actor.id}"
    if actor.type == ActorType.ANONYMOUS:
        return text_subject(actor.label)
    return ""


def target_subject(target_type: str, target_id: str, target_label: str) -> str:
    if target_type == "user" and target_id:
        return f"user:{target_id}"
    if target_type == "device" and target_id:
        return f"device:{target_id}"
    return text_subject(target_label)


def personal_seal(
    *, actor_subject: str, target_subject: str, columns: dict[str, Any], cache: dict | None = None
) -> dict[str, Any]:
    """The `personal` of an event: its actor's label, address and client sealed under the actor's
    subject, its target's label under the target's; empty values are not sealed."""
    cache = {} if cache is None else cache
    out: dict[str, Any] = {}
    for column, value in columns.items():
        subject = target_subject if column == "target_label" else actor_subject
        if subject and value not in (None, ""):
            out[column] = value_seal(subject, value, cache=cache)
    return out


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
    cache: dict = {}
    if personal_subject:
        changes = changes_seal(personal_subject, changes or {}, ("before", "after"))
    else:
        # No record's values here; e-mail addresses (an invitee's, a member's in a SCIM change) are
        # still someone's: sealed under the address, so erasing that person shreds them.
        changes = emails_seal(changes or {}, cache=cache)
    ip = _ip_normal(ctx.ip)
    user_agent = ctx.user_agent[:512]
    actor_label = actor.label[:255]
    personal = personal_seal(
        actor_subject=actor_subject(actor),
        target_subject=target_subject(target_type, target_id, target_label),
        columns={"actor_label": actor_label, "target_label": target_label, "ip": ip, "user_agent": user_agent},
        cache=cache,
    )
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
            actor_label=actor_label,
            action=action,
            target_type=target_type,
            target_id=target_id,
            target_label=target_label,
            ip=ip,
            user_agent=user_agent,
            request_id=ctx.request_id,
            changes=_json_normal(changes or {}),
            personal=personal,
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


def audit_subjects_erase(subjects: list[str]) -> int:
    """Erase people from the audit log: their vault keys destroyed (what their events sealed is gone
    for good) and the clear copies of their sealed columns set to "[erased]" (the one update the table
    allows; the chain hashes the sealed values, so it still verifies). Returns the events touched."""
    subjects = [s for s in dict.fromkeys(subjects) if s]
    if not subjects:
        return 0
    vault_shred(subjects)
    touched: set[int] = set()
    for column in PERSONAL_COLUMNS:
        rows = AuditEvent.objects.filter(**{f"personal__{column}__$vault__in": subjects})
        erased = None if column == "ip" else ERASED
        touched.update(rows.values_list("pk", flat=True))
        rows.update(**{column: erased})
    return len(touched)


def subject_erased_shred(event: DomainEvent) -> None:
    """Subscriber (in the transaction): an erased subject's vault keys are destroyed, so the values its
    audit events sealed are gone for good while the chain still verifies — a record's (`record.erased`)
    or a person's (`member.erased`, `subject.erased`: `event.vault_subjects`)."""
    subject = getattr(event, "subject", "")
    if event.type == "record.erased" and subject:
        vault_shred([subject])
    audit_subjects_erase(list(getattr(event, "vault_subjects", ()) or ()))
