"""Keeping deliveries going: resending one, recovering an endpoint's failed ones, a test event, and the
payload retention (settings and the daily clean-up)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from audit.services import audit_event_record
from core.actors import Actor, Principal
from core.events import DomainEvent
from rbac.permissions import has_permission
from webhooks.errors import EndpointDisabled, WebhookError, WebhookForbidden
from webhooks.models import Attempt, Delivery, Endpoint, Event, WebhookSettings
from webhooks.outbox import deliveries_enqueue_on_commit, outbox_event_write
from webhooks.services import require_manage

RETENTION_DAYS_RANGE = (1, 90)


# --- resend, recover, test --------------------------------------------------------------------------


def _requeue(deliveries, now: datetime) -> list[int]:
    ids = [d.pk for d in deliveries]
    for d in deliveries:
        Delivery.objects.filter(pk=d.pk).update(
            status=Delivery.Status.PENDING,
            next_attempt_at=now,
            locked_until=None,
            completed_at=None,
            schedule_start=d.attempts,
        )
    return ids


def delivery_resend(*, actor: Actor | Principal, delivery: Delivery) -> Delivery:
    """Send this delivery's event to its endpoint again now (whatever its status); a failure retries
    on the full schedule again."""
    require_manage(actor, livemode=delivery.livemode)
    if not delivery.event.payload:
        raise WebhookError("This event's payload is past the retention period and cannot be sent again.")
    if not delivery.endpoint.enabled:
        raise EndpointDisabled()
    now = timezone.now()
    with transaction.atomic():
        ids = _requeue([delivery], now)
        audit_event_record(
            action="webhook_delivery.resent",
            actor=actor,
            target=("delivery", delivery.pk, f"{delivery.event_id} → {delivery.endpoint.url}"),
        )
        deliveries_enqueue_on_commit(ids)
    delivery.refresh_from_db()
    return delivery


def deliveries_recover(
    *, actor: Actor | Principal, endpoint: Endpoint, since: datetime, until: datetime | None = None
) -> int:
    """Queue again every failed delivery of `endpoint` created in [since, until) (until: now).
    Returns how many. The endpoint must be enabled."""
    require_manage(actor, livemode=endpoint.livemode)
    now = timezone.now()
    until = until or now
    if since >= until:
        raise WebhookError("The start of the window must be before its end.", param="since")
    if since < now - timedelta(days=RETENTION_DAYS_RANGE[1]):
        raise WebhookError("Recover at most 90 days back.", param="since")
    if not Endpoint.objects.filter(pk=endpoint.pk, enabled=True).exists():
        raise EndpointDisabled()
    with transaction.atomic():
        failed = list(
            Delivery.objects.select_for_update()
            .filter(endpoint=endpoint, status=Delivery.Status.FAILED, created_at__gte=since, created_at__lt=until)
            .exclude(event__payload={})
            .only("pk", "attempts")
        )
        ids = _requeue(failed, now)
        audit_event_record(
            action="webhook_deliveries.recovered",
            actor=actor,
            target=endpoint,
            changes={"after": {"since": since.isoformat(), "until": until.isoformat(), "deliveries": len(ids)}},
        )
        deliveries_enqueue_on_commit(ids)
    return len(ids)


def test_event_send(*, actor: Actor | Principal, endpoint: Endpoint) -> Delivery:
    """Send a `test.ping` event to this endpoint only (even if its filter leaves test.ping out)."""
    require_manage(actor, livemode=endpoint.livemode)
    if not endpoint.enabled:
        raise EndpointDisabled()
    ping = DomainEvent(
        type="test.ping",
        actor=Actor.of(actor),
        livemode=endpoint.livemode,
        data={"object": {"object": "test", "message": "Hello from Tessera", "endpoint": endpoint.pk}},
    )
    with transaction.atomic():
        event = outbox_event_write(ping, endpoints=[endpoint])
        return Delivery.objects.get(event=event, endpoint=endpoint)


test_event_send.__test__ = False  # not a pytest test, despite the name


# --- settings and retention ----------------------------------------------------------------------------


def webhook_settings_get() -> WebhookSettings:
    obj, _ = WebhookSettings.objects.get_or_create(pk=1)
    return obj


def webhook_settings_update(*, actor: Actor | Principal, retention_days: int) -> WebhookSettings:
    """Payload retention (1–90 days): older event payloads and attempt bodies are erased daily."""
    if not has_permission(actor, "webhooks.manage"):
        raise WebhookForbidden()
    low, high = RETENTION_DAYS_RANGE
    if isinstance(retention_days, bool) or not isinstance(retention_days, int) or not low <= retention_days <= high:
        raise WebhookError(f"Keep payloads between {low} and {high} days.", param="retention_days")
    with transaction.atomic():
        obj = webhook_settings_get()
        before = obj.retention_days
        if before != retention_days:
            obj.retention_days = retention_days
            obj.save(update_fields=["retention_days"])
            audit_event_record(
                action="webhook_settings.changed",
                actor=actor,
                target=("webhook_settings", 1, "Webhook settings"),
                changes={"before": {"retention_days": before}, "after": {"retention_days": retention_days}},
            )
    return obj


@dataclass(frozen=True)
class RetentionResult:
    events_erased: int
    attempts_erased: int


def webhook_retention_clean(*, now: datetime | None = None) -> RetentionResult:
    """Erase payloads older than the workspace's retention: event bodies (the delivery log keeps
    status and timing) and the request/response bodies of attempts. Pending deliveries keep theirs."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=webhook_settings_get().retention_days)
    pending = Delivery.objects.filter(status=Delivery.Status.PENDING).values("event_id")
    events = Event.objects.filter(created_at__lt=cutoff).exclude(payload={}).exclude(pk__in=pending).update(payload={})
    attempts = (
        Attempt.objects.filter(started_at__lt=cutoff)
        .exclude(request_body="", response_body="")
        .update(request_body="", response_body="")
    )
    return RetentionResult(events_erased=events, attempts_erased=attempts)


def webhook_deliveries_expire(*, cutoff: datetime, dry_run: bool = False) -> int:
    """Log retention (privacy's policy for `webhook_deliveries`): finished deliveries made before
    `cutoff` go with their attempt log, then the events no delivery refers to any more. Pending
    deliveries stay whatever their age (they still owe an attempt). Returns the deliveries taken."""
    finished = Delivery.objects.filter(created_at__lt=cutoff).exclude(status=Delivery.Status.PENDING)
    if dry_run:
        return finished.count()
    taken = finished.count()
    finished.delete()  # with their attempts
    Event.objects.filter(created_at__lt=cutoff, deliveries=None).delete()
    return taken
