"""Reading the audit log: filtered lists, CSV rows, and chain verification."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time

from django.db.models import QuerySet
from django.utils import timezone

from audit.models import AuditChainHead, AuditEvent
from audit.registry import action_label
from audit.services import GENESIS_HASH, _ip_normal, _personal_of, event_hash
from audit.vault import ERASED, changes_open, value_open


def audit_event_list(
    *, actor: str = "", action: str = "", date_from: date | None = None, date_to: date | None = None
) -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.all().order_by("-seq")
    if actor:
        qs = qs.filter(actor_label__icontains=actor)
    if action:
        qs = qs.filter(action=action) if "." in action else qs.filter(action__startswith=action + ".")
    tz = timezone.get_current_timezone()
    if date_from:
        qs = qs.filter(occurred_at__gte=timezone.make_aware(datetime.combine(date_from, time.min), tz))
    if date_to:
        qs = qs.filter(occurred_at__lte=timezone.make_aware(datetime.combine(date_to, time.max), tz))
    return qs


CSV_HEADER = [
    "seq",
    "occurred_at",
    "actor_type",
    "actor",
    "action",
    "action_label",
    "target_type",
    "target_id",
    "target",
    "ip",
    "user_agent",
    "request_id",
    "changes",
    "hash",
]


def audit_csv_rows(events: QuerySet[AuditEvent]) -> Iterator[list[str]]:
    import json

    yield CSV_HEADER
    keys: dict = {}
    for e in events.iterator(chunk_size=2000):
        yield [
            str(e.seq),
            e.occurred_at.isoformat(),
            e.actor_type,
            e.actor_label,
            e.action,
            action_label(e.action),
            e.target_type,
            e.target_id,
            e.target_label,
            e.ip or "",
            e.user_agent,
            e.request_id,
            json.dumps(changes_open(e.changes, keys=keys), sort_keys=True),
            e.hash,
        ]


@dataclass(frozen=True)
class ChainVerification:
    ok: bool
    checked: int
    broken_seq: int | None = None
    broken_id: int | None = None
    reason: str = ""


def _clear_copies_match(event: AuditEvent, keys: dict) -> bool:
    """Each clear copy of a sealed column says what its sealed value says, or "[erased]" once the
    person's key is destroyed (the hash covers the sealed value only)."""
    for column, sealed in _personal_of(event).items():
        opened = value_open(sealed, keys=keys)
        if column == "ip":
            clear, expected = _ip_normal(event.ip), (None if opened == ERASED else _ip_normal(opened))
        else:
            clear, expected = getattr(event, column), opened
        if clear != expected:
            return False
    return True


def audit_chain_verify() -> ChainVerification:
    """Walk the chain in order; name the first event whose content, link or position is wrong."""
    prev_hash = GENESIS_HASH
    expected_seq = 1
    checked = 0
    keys: dict = {}
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=2000):
        if event.seq != expected_seq:
            # Name the first missing event (as for a truncated tail), not the survivor after the gap.
            return ChainVerification(
                False,
                checked,
                expected_seq,
                None,
                f"event #{expected_seq} is missing (removed); the next event found is #{event.seq}",
            )
        if event.prev_hash != prev_hash:
            return ChainVerification(False, checked, event.seq, event.pk, "link to the previous event is broken")
        if event_hash(event) != event.hash or not _clear_copies_match(event, keys):
            return ChainVerification(False, checked, event.seq, event.pk, "content does not match its hash")
        prev_hash = event.hash
        expected_seq += 1
        checked += 1
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and head.seq >= expected_seq:
        return ChainVerification(
            False, checked, expected_seq, None, f"events #{expected_seq}–#{head.seq} are missing from the end"
        )
    return ChainVerification(True, checked)
