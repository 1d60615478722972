"""Billing's Celery tasks (thin wrappers): act on a stored Stripe event, sweep events whose task was
lost, re-read subscriptions whose events may have been missed, report the usage ledger to Stripe's
Billing Meter. They run in the public schema."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from billing.metering import usage_ledger_report
from billing.models import StripeEvent
from billing.services import event_process, subscriptions_resync


@shared_task(
    name="billing.stripe_event_process",
    autoretry_for=(Exception,),
    retry_backoff=5,
    retry_backoff_max=600,
    max_retries=10,
)
def stripe_event_process_task(event_id: str) -> str:
    try:
        return event_process(event_id)
    except Exception as exc:
        StripeEvent.objects.filter(pk=event_id).update(last_error=repr(exc)[:2000])
        raise


@shared_task(name="billing.stripe_events_sweep")
def stripe_events_sweep_task() -> int:
    """Queue events received over two minutes ago and still unprocessed (their task was lost)."""
    due = StripeEvent.objects.filter(processed_at=None, received_at__lt=timezone.now() - timedelta(minutes=2))
    ids = list(due.values_list("id", flat=True)[:500])
    for event_id in ids:
        stripe_event_process_task.delay(event_id)
    return len(ids)


@shared_task(name="billing.subscriptions_resync")
def subscriptions_resync_task() -> dict[str, int]:
    """Subscriptions whose Stripe events may have been missed, read again (billing.services)."""
    return subscriptions_resync()


@shared_task(name="billing.usage_ledger_report")
def usage_ledger_report_task() -> int:
    return usage_ledger_report()
