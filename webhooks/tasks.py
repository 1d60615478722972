"""Celery tasks of webhooks: thin wrappers around webhooks.delivery and webhooks.services.

A delivery task is sent when the transaction that wrote the delivery commits, from inside the
workspace, so the tenant-aware Celery app (SaaS) carries the workspace's schema with it. The task
delivers its delivery and every other due one of the same endpoint, in batches (webhooks.delivery).
Tasks ack late; a message lost with the broker or a worker killed mid-attempt loses nothing, because
the periodic sweeper (beat: `webhooks-sweep`) sends a task again for every endpoint with a delivery
that is due but untouched, or whose worker's lease ran out: one task per endpoint (it carries the
endpoint's whole backlog, in batches), and not again while that task has not started (a sweep flag
per endpoint, cleared by the task, lives one lease at most) — so after an outage the broker gets one
bounded batch, never one task per due delivery re-sent every round, and an endpoint's backlog is one
task in the queue, not thousands in front of the other endpoints' events.

Wake-up flags (TESSERA_WEBHOOK_WAKE_FLAGS, on where the cache is shared by every process: Redis): a
new event's commit sends a task for an endpoint only if the endpoint's flag was not set already (SET
NX); the task clears the flag before each claim. A delivery whose commit found the flag set is
therefore claimed by the task that clears it next, so under load one task carries many deliveries
instead of one task per delivery. A flag outlives a lost task by WAKE_FLAG_SECONDS at most, and the
sweeper still finds what is due.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db.models import Min, Q
from django.utils import timezone

from tenants.runtime import task_in_each_workspace, workspace_context, workspace_list
from webhooks.delivery import endpoint_deliveries_attempt
from webhooks.maintenance import webhook_retention_clean
from webhooks.models import Delivery

logger = logging.getLogger(__name__)

SHORT_RETRY_SECONDS = 120  # a retry sooner than this is sent with a countdown; later ones wait for the sweeper
SWEEP_BATCH = 2000
BROKER_CONNECT_TIMEOUT = 2.0
WAKE_FLAG_SECONDS = 10


@shared_task(name="webhooks.delivery_attempt", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def delivery_attempt_task(delivery_id: int, endpoint_id: str | None = None) -> str:
    """Deliver `delivery_id` and the other due deliveries of its endpoint (`endpoint_id` if the sender
    knew it: then the endpoint's wake-up flag is cleared before each claim)."""
    flags = endpoint_id is not None and settings.TESSERA_WEBHOOK_WAKE_FLAGS
    if endpoint_id is not None:
        _sweep_flag_clear(endpoint_id)
    outcomes, more = endpoint_deliveries_attempt(
        delivery_id=delivery_id, endpoint_id=endpoint_id, before_claim=_wake_flag_clear if flags else None
    )
    soon = sorted(
        (o for o in outcomes if o.retry_in is not None and o.retry_in <= SHORT_RETRY_SECONDS), key=lambda o: o.retry_in
    )
    # A task wakes the endpoint when the first of a group is due; it claims the rest of the group too
    # (up to the claim's one-second slack). `more`: out of time with deliveries left: at once.
    groups: list = []
    if more and not (soon and soon[0].retry_in == 0):
        deliveries_enqueue([outcomes[-1].delivery_id])
    for o in soon:
        if not groups or o.retry_in > (groups[-1].retry_in or 0.0) + 1.0:
            groups.append(o)
    for o in groups:
        deliveries_enqueue([o.delivery_id], countdown=o.retry_in or None)
    if not outcomes:
        return "skipped"
    return outcomes[0].result if len(outcomes) == 1 else f"{len(outcomes)} deliveries"


def _wake_flag_key(endpoint_id: str) -> str:
    return f"{settings.TESSERA_COUNTERS_NAMESPACE}:webhooks:wake:{endpoint_id}"


def _wake_flag_clear(endpoint_id: str) -> None:
    try:
        cache.delete(_wake_flag_key(endpoint_id))
    except Exception:  # the cache is down: senders cannot set flags either, so every commit sends a task
        logger.debug("webhooks: could not clear the wake-up flag of %s", endpoint_id)


def _sweep_flag_key(endpoint_id: str) -> str:
    return f"{settings.TESSERA_COUNTERS_NAMESPACE}:webhooks:swept:{endpoint_id}"


def _sweep_flag_clear(endpoint_id: str) -> None:
    try:
        cache.delete(_sweep_flag_key(endpoint_id))
    except Exception:
        logger.debug("webhooks: could not clear the sweep flag of %s", endpoint_id)


def _sweep_flags_set(endpoint_ids: list[str]) -> list[str]:
    """The endpoints the sweeper may send a task for: none of its tasks is waiting in the queue."""
    seconds = int(settings.TESSERA_WEBHOOK_LOCK_SECONDS)
    try:
        return [e for e in endpoint_ids if cache.add(_sweep_flag_key(e), 1, timeout=seconds)]
    except Exception:
        logger.warning("webhooks: sweep flags unavailable (cache down); one task per endpoint each round")
        return endpoint_ids


def _wake_flags_set(endpoint_ids: list[str]) -> list[str]:
    """The endpoints whose flag this call set (the others have a task on the way)."""
    try:
        return [e for e in endpoint_ids if cache.add(_wake_flag_key(e), 1, timeout=WAKE_FLAG_SECONDS)]
    except Exception:
        logger.warning("webhooks: wake-up flags unavailable (cache down); one task per delivery")
        return endpoint_ids


def endpoints_wake(first_of: dict[str, int]) -> int:
    """After a commit: wake each endpoint (endpoint id → one of its new deliveries) with a task, unless its
    wake-up flag says a task is on the way already. Returns how many tasks were sent."""
    if not first_of:
        return 0
    if not settings.TESSERA_WEBHOOK_WAKE_FLAGS:
        return deliveries_enqueue(list(first_of.values()), endpoint_of={d: e for e, d in first_of.items()})
    flagged = _wake_flags_set(list(first_of))
    wake = {e: first_of[e] for e in flagged}
    sent = deliveries_enqueue(list(wake.values()), endpoint_of={d: e for e, d in wake.items()})
    if sent < len(wake):  # not queued: no task will clear these flags; the next commit must send one
        for endpoint_id in flagged[sent:]:
            _wake_flag_clear(endpoint_id)
    return sent


def deliveries_enqueue(
    ids: list[int], *, countdown: float | None = None, endpoint_of: dict[int, str] | None = None
) -> int:
    """Send one task per delivery (from inside the workspace); `endpoint_of` names their endpoints where
    known. A broker that is down is logged, not raised: the deliveries are in the database and the
    sweeper sends them later. Returns how many were sent."""
    app = delivery_attempt_task.app  # the project's Celery app, without importing config

    sent = 0
    try:
        with app.producer_or_acquire() as producer:  # pooled: a connection per publish costs ~3x
            # One quick try: a request that wrote an event must not hang on a broker that is down.
            producer.connection.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0.2, timeout=BROKER_CONNECT_TIMEOUT
            )
            for pk in ids:
                endpoint_id = (endpoint_of or {}).get(pk)
                delivery_attempt_task.apply_async(
                    (pk, endpoint_id) if endpoint_id else (pk,),
                    countdown=countdown,
                    producer=producer,
                    retry=False,
                    ignore_result=True,
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


def endpoints_due(*, now=None, limit: int = SWEEP_BATCH) -> dict[str, int]:
    """Endpoints with a delivery that is due but untouched (see deliveries_due) → their most overdue
    such delivery, at most `limit` endpoints (most overdue first)."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.TESSERA_WEBHOOK_SWEEP_GRACE_SECONDS)
    rows = (
        Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now - grace)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lte=now))
        .values("endpoint_id")
        .annotate(first=Min("next_attempt_at"), pk=Min("pk"))
        .order_by("first")[:limit]
    )
    return {r["endpoint_id"]: r["pk"] for r in rows}


def endpoints_sweep() -> int:
    """The current workspace's sweep: one task per endpoint with due work whose task is not already
    waiting. Returns how many were sent."""
    due = endpoints_due()
    if not due:
        return 0
    wake = {e: due[e] for e in _sweep_flags_set(list(due))}
    sent = deliveries_enqueue(list(wake.values()), endpoint_of={d: e for e, d in wake.items()})
    if sent < len(wake):  # the broker is down: the next round must try these again
        for endpoint_id in list(wake)[sent:]:
            _sweep_flag_clear(endpoint_id)
    return sent


@shared_task(name="webhooks.deliveries_sweep", ignore_result=True)
def deliveries_sweep_task() -> int:
    """One workspace's sweep. The beat's round (deliveries_sweep_all_workspaces) no longer sends it;
    kept so that ones queued by an earlier version still run after an upgrade."""
    return endpoints_sweep()


@shared_task(name="webhooks.retention_clean", ignore_result=True)
def retention_clean_task() -> int:
    result = webhook_retention_clean()
    return result.events_erased + result.attempts_erased


@shared_task(name="webhooks.deliveries_sweep_all_workspaces", ignore_result=True)
def deliveries_sweep_all_workspaces() -> int:
    """The sweeper's round: every workspace looked at here, one query each, and a task sent only for
    the deliveries found due (not a sweep task per workspace every 30 s, which for a thousand
    workspaces was 33 tasks a second that nearly always found nothing). Returns how many were sent."""
    sent = 0
    for tenant in workspace_list():
        with workspace_context(tenant):
            sent += endpoints_sweep()
    return sent


@shared_task(name="webhooks.retention_clean_all_workspaces", ignore_result=True)
def retention_clean_all_workspaces() -> int:
    return task_in_each_workspace(retention_clean_task)
