"""What webhooks forget when a record is erased: its values in the outbox's event bodies, in the
delivery log's request and response bodies, and in the sandbox inspector's captured requests; and,
the same way, what they held of an erased person (a member, a data subject's identifier).

The erasure's own `record.deleted` event (a tombstone without values) is written by the outbox in the
same transaction and still goes out, so partners can erase downstream; a delivery of an older event
that is still pending goes out with the values removed.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, TextField
from django.db.models.functions import Cast

from core.events import DomainEvent
from webhooks.models import Attempt, Event, InspectorRequest
from webhooks.outbox import event_body

ERASED = "[erased]"


def record_erased_forget(event: DomainEvent) -> None:
    """Subscriber (in the transaction) of `record.erased`: all the record's values, or only the
    anonymised fields' (`event.fields`)."""
    record_id = getattr(event, "record_id", "")
    if event.type != "record.erased" or not record_id:
        return
    events = Event.objects.filter(
        livemode=event.livemode, type__startswith="record.", payload__data__object__id=record_id
    )
    only = tuple(getattr(event, "fields", ()) or ())
    for outbox_event in events:
        obj = (outbox_event.payload.get("data") or {}).get("object") or {}
        values = obj.get("data") or {}
        kept = {k: v for k, v in values.items() if k not in only} if only else {}
        if kept != values:
            obj["data"] = kept
            outbox_event.save(update_fields=["payload"])
        body = event_body(outbox_event)
        Attempt.objects.filter(delivery__event=outbox_event).update(request_body=body, response_body="")
    InspectorRequest.objects.filter(body__contains=record_id).delete()


def _values_erased(value: Any, needles: list[str]) -> Any:
    """`value` with every string holding a needle erased; an object naming the person (a member, an
    invitation, their phone) loses its `name` too."""
    if isinstance(value, dict):
        out = {k: _values_erased(v, needles) for k, v in value.items()}
        if out != value and isinstance(out.get("name"), str):
            out["name"] = ERASED
        return out
    if isinstance(value, list):
        return [_values_erased(v, needles) for v in value]
    if isinstance(value, str) and any(n in value.lower() for n in needles):
        return ERASED
    return value


def subject_values_forget(event: DomainEvent) -> None:
    """Subscriber (in the transaction) of `member.erased` and `subject.erased`: event bodies naming the
    person (member, invitation and device events carry e-mail addresses and names), the delivery log's
    copies of them and captured inspector requests lose those values."""
    if event.type not in ("member.erased", "subject.erased"):
        return
    needles = [v.lower() for v in getattr(event, "erased_values", ()) if v]
    if not needles:
        return
    naming = Q()
    for needle in needles:
        naming |= Q(text__icontains=needle)
    for outbox_event in Event.objects.annotate(text=Cast("payload", TextField())).filter(naming):
        outbox_event.payload = _values_erased(outbox_event.payload, needles)
        outbox_event.save(update_fields=["payload"])
        Attempt.objects.filter(delivery__event=outbox_event).update(request_body=event_body(outbox_event))
    for needle in needles:
        Attempt.objects.filter(response_body__icontains=needle).update(response_body="")
        InspectorRequest.objects.filter(body__icontains=needle).delete()
