"""What webhooks forget when a record is erased: its values in the outbox's event bodies, in the
delivery log's request and response bodies, and in the sandbox inspector's captured requests.

The erasure's own `record.deleted` event (a tombstone without values) is written by the outbox in the
same transaction and still goes out, so partners can erase downstream; a delivery of an older event
that is still pending goes out with the values removed.
"""

from __future__ import annotations

from core.events import DomainEvent
from webhooks.models import Attempt, Event, InspectorRequest
from webhooks.outbox import event_body


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
