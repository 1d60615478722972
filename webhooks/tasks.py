"""Celery tasks of webhooks: thin wrappers around webhooks.delivery and webhooks.services.

A delivery task is sent when the transaction that wrote the delivery commits, from inside the
workspace, so the tenant-aware Celery app (SaaS) carries the workspace's schema with it. Tasks ack
late; a message lost with the broker or a worker killed mid-attempt loses nothing, because the
periodic sweeper (beat: `webhooks-sweep`) sends a task again for every delivery that is due but
untouched, or whose worker's lease ran out.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from tenants.runtime import tenant_context, tenant_list
from webhooks.delivery import delivery_attempt
from webhooks.models import Delivery
from webhooks.services import webhook_retention_clean

logger = logging.getLogger(__name__)

SHORT_RETRY_SECONDS = 120  # a retry sooner than this is sent with a countdown; later ones wait for the sweeper
SWEEP_BATCH = 2000
BROKER_CONNECT_TIMEOUT = 2.0


@shared_task(name="webhooks.delivery_attempt", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def delivery_attempt_task(delivery_id: int) -> str:
    outcome = delivery_attempt(delivery_id)
    if outcome.retry_in is not None and outcome.retry_in <= SHORT_RETRY_SECONDS:
        deliveries_enqueue([delivery_id], countdown=outcome.retry_in)
    return outcome.result


def deliveries_enqueue(ids: list[int], *, countdown: float | None = None) -> int:
    """Send one task per delivery (from inside the workspace). A broker that is down is logged, not
    raised: the deliveries are in the database and the sweeper sends them later. Returns how many
    were sent."""
    from config.celery_app import app

    sent = 0
    try:
        with app.producer_or_acquire() as producer:  # pooled: a connection per publish costs ~3x
            # One quick try: a request that wrote an event must not hang on a broker that is down.
            producer.connection.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0.2, timeout=BROKER_CONNECT_TIMEOUT
            )
            for pk in ids:
                delivery_attempt_task.apply_async(
                    (pk,), countdown=countdown, producer=producer, retry=False, ignore_result=True
                )
                sent += 1
    except Exception as exc:  # broker down: the sweeper re-sends from the database
        logger.warning(
            "webhooks: could not queue %d of %d deliveries (%s); the sweeper will", len(ids) - sent, len(ids), exc
        )
    return sent


def deliveries_due(*, now=None, limit: int = SWEEP_BATCH) -> list[int]:
    """Pending deliveries whose own task should have run by now, or whose worker's lease ran out."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.TESSERA_WEBHOOK_SWEEP_GRACE_SECONDS)
    return list(
        Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now - grace)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lte=now))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


@shared_task(name="webhooks.deliveries_sweep", ignore_result=True)
def deliveries_sweep_task() -> int:
    return deliveries_enqueue(deliveries_due())


@shared_task(name="webhooks.retention_clean", ignore_result=True)
def retention_clean_task() -> int:
    result = webhook_retention_clean()
    return result.events_erased + result.attempts_erased


def _for_each_workspace(task) -> int:
    count = 0
    for tenant in tenant_list():
        with tenant_context(tenant):
            task.delay()
        count += 1
    return count


@shared_task(name="webhooks.deliveries_sweep_all_workspaces", ignore_result=True)
def deliveries_sweep_all_workspaces() -> int:
    return _for_each_workspace(deliveries_sweep_task)


@shared_task(name="webhooks.retention_clean_all_workspaces", ignore_result=True)
def retention_clean_all_workspaces() -> int:
    return _for_each_workspace(retention_clean_task)
