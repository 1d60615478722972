"""The outbox: every domain event a webhook endpoint subscribes to is written, with one delivery per such
endpoint, in the transaction of the change it describes (`event_outbox_write` is an in-transaction
subscriber of core.events); on commit the deliveries are handed to Celery. A lost broker message or a
killed worker loses nothing: the sweeper (webhooks.tasks) finds what is due.

The body a receiver gets is the event's one body (DomainEvent.body), identical on every attempt and
equal to the event `/api/v1/events` lists; its id is the `webhook-id` header.
"""

from __future__ import annotations

import json

from django.db import connection, transaction
from django.utils import timezone

from core.events import DomainEvent
from core.workspace_memo import workspace_memo
from tenants.runtime import workspace_context, workspace_current_or_none
from webhooks.catalogue import CATALOGUE
from webhooks.models import Delivery, Endpoint, Event
from webhooks.selectors import endpoints_enabled


def event_outbox_write(event: DomainEvent) -> None:
    """Subscriber (in the transaction): into the outbox, if it is an event of the catalogue."""
    if event.type in CATALOGUE:
        outbox_event_write(event)


def _workspace_id():
    tenant = workspace_current_or_none()
    return tenant and tenant.pk


def _endpoints_of_batch(event: DomainEvent) -> list[Endpoint]:
    """The enabled endpoints of the event's mode; a bulk write reads them once for all its events, an
    API request's server process remembers them between requests (core.workspace_memo; endpoint changes
    make it forget: webhooks.services)."""
    if event.batch is None:
        livemode = event.livemode
        return workspace_memo(
            _workspace_id, ("webhooks.endpoints", livemode), lambda: endpoints_enabled(livemode=livemode)
        )
    key = ("webhooks.endpoints", event.livemode)
    if key not in event.batch:
        event.batch[key] = endpoints_enabled(livemode=event.livemode)
    return event.batch[key]


def outbox_event_write(event: DomainEvent, *, endpoints: list[Endpoint] | None = None) -> Event | None:
    """Write `event` (its one body, under its one id) and a pending delivery per enabled endpoint of the
    same mode that subscribes to its type, in the caller's transaction; the deliveries go to Celery on
    commit.

    `endpoints` narrows the audience (a test event goes to one endpoint, whatever its filter). Returns
    None, writing nothing, when no endpoint wants the event.
    """
    if event.type not in CATALOGUE:
        raise ValueError(f"{event.type!r} is not in webhooks.catalogue.CATALOGUE")
    livemode = event.livemode
    if endpoints is None:
        candidates = _endpoints_of_batch(event)
        wanted = [e for e in candidates if e.enabled and e.livemode == livemode and e.wants(event.type)]
    else:
        wanted = [e for e in endpoints if e.enabled and e.livemode == livemode]
    if not wanted:
        return None
    now = timezone.now()
    # No savepoint inside the caller's transaction (two statements less per event): if writing the event
    # fails, the change it describes must not commit either.
    with transaction.atomic(savepoint=False):
        event = Event.objects.create(
            id=event.id, type=event.type, livemode=livemode, created_at=event.occurred_at, payload=event.body()
        )
        deliveries = Delivery.objects.bulk_create(
            [Delivery(event=event, endpoint=e, livemode=livemode, next_attempt_at=now, created_at=now) for e in wanted]
        )
        pairs = [(d.endpoint_id, d.pk) for d in deliveries]
        if any(pk is None for _, pk in pairs):  # backends that do not return keys from bulk inserts
            pairs = list(Delivery.objects.filter(event=event).values_list("endpoint_id", "pk"))
        endpoints_wake_on_commit(dict(pairs))
    return event


def event_body(event: Event) -> str:
    """The request body: the envelope as compact JSON, identical bytes on every attempt."""
    return json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def deliveries_enqueue_on_commit(ids: list[int]) -> None:
    """Hand the deliveries to Celery when the current transaction commits, from inside the workspace
    they belong to (the task carries it), wherever the commit itself happens."""
    if not ids:
        return
    from webhooks.tasks import deliveries_enqueue  # tasks import the services that import this module

    tenant = workspace_current_or_none()

    def enqueue() -> None:
        if tenant is None:
            deliveries_enqueue(ids)
            return
        with workspace_context(tenant):
            deliveries_enqueue(ids)

    transaction.on_commit(enqueue)


def endpoints_wake_on_commit(first_of: dict[str, int]) -> None:
    """On commit, wake each endpoint (endpoint id → one of its new deliveries): a task delivers every due
    delivery of it (webhooks.tasks.endpoints_wake), from inside the workspace. The endpoints of one
    transaction are woken together (a bulk write of many records wakes each endpoint once)."""
    if not first_of:
        return
    tenant = workspace_current_or_none()
    pending: dict = getattr(connection, "_webhooks_wake", None) or {}
    if not connection.run_on_commit:  # nothing registered in this transaction: what is left was rolled back
        pending = {}
    for endpoint_id, delivery_id in first_of.items():
        pending.setdefault((tenant, endpoint_id), delivery_id)
    connection._webhooks_wake = pending
    # One callback per call, so a rolled-back savepoint cannot take the wake-up of the rest with it; the
    # first to run wakes everything pending, the others find nothing left.
    transaction.on_commit(lambda: _endpoints_wake_pending(connection))


def _endpoints_wake_pending(connection) -> None:
    from webhooks.tasks import endpoints_wake  # tasks import the services that import this module

    pending, connection._webhooks_wake = getattr(connection, "_webhooks_wake", None) or {}, {}
    by_tenant: dict = {}
    for (tenant, endpoint_id), delivery_id in pending.items():
        by_tenant.setdefault(tenant, {})[endpoint_id] = delivery_id
    for tenant, first_of in by_tenant.items():
        if tenant is None:
            endpoints_wake(first_of)
            continue
        with workspace_context(tenant):
            endpoints_wake(first_of)
