"""What webhooks do while a record's processing is restricted (GDPR art. 18): the deliveries of events
about it that are still to go out are held (no attempt is made, their bodies stay in the outbox), and
go out when the restriction is lifted. No new `record.*` event can be made about a restricted record
(the write spine refuses its edits); its erasure's `record.deleted` still goes out."""

from __future__ import annotations

from django.utils import timezone

from core.events import DomainEvent
from webhooks.models import Delivery, Event
from webhooks.outbox import deliveries_enqueue_on_commit

HELD = "held: the data subject's processing is restricted (GDPR art. 18)"


def record_restriction_deliveries(event: DomainEvent) -> None:
    """Subscriber (in the transaction) of `record.restricted` and `record.restriction_lifted`."""
    record_id = getattr(event, "record_id", "")
    if event.type not in ("record.restricted", "record.restriction_lifted") or not record_id:
        return
    events = Event.objects.filter(
        livemode=event.livemode, type__startswith="record.", payload__data__object__id=record_id
    ).values_list("pk", flat=True)
    pending = Delivery.objects.filter(event_id__in=list(events), status=Delivery.Status.PENDING)
    if event.type == "record.restricted":
        pending.update(next_attempt_at=None, locked_until=None, last_error=HELD)
        return
    held = pending.filter(last_error=HELD)
    ids = list(held.values_list("pk", flat=True))
    held.update(next_attempt_at=timezone.now(), last_error="")
    deliveries_enqueue_on_commit(ids)
