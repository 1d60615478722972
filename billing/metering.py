"""Metered usage to Stripe's Billing Meter: the ledger's unreported entries (billing.ledger) are sent
as meter events in batches by a beat task, each with its own identifier.

Exactly once: an entry is marked reported only after Stripe accepted it. A crash between the two
sends it again on the next run with the same identifier, which Stripe (idempotency key for 24 h,
the identifier's uniqueness after that) counts once. `usage_reconcile` compares the ledger with
Stripe's meter event summaries.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Sum
from django.utils import timezone

from billing import stripe_api
from billing.models import UsageLedgerEntry
from billing.plans import METER_EVENT_NAME

logger = logging.getLogger(__name__)

BATCH_SIZE = 100


def usage_ledger_report(*, batch_size: int = BATCH_SIZE, batches: int | None = None) -> int:
    """Send unreported ledger entries, oldest first, `batch_size` at a time; how many were sent."""
    sent = done = 0
    while batches is None or done < batches:
        entries = list(UsageLedgerEntry.objects.filter(reported_at=None).order_by("id")[:batch_size])
        if not entries:
            break
        for entry in entries:
            try:
                stripe_api.meter_event_create(
                    event_name=METER_EVENT_NAME,
                    customer=entry.stripe_customer_id,
                    value=entry.quantity,
                    identifier=entry.identifier,
                    timestamp=int(entry.occurred_at.timestamp()),
                )
            except stripe_api.StripeError as exc:
                if not stripe_api.meter_event_is_duplicate(exc):
                    raise  # the task fails; the next run starts again from this entry
                logger.info("meter event %s was reported before", entry.identifier)
            UsageLedgerEntry.objects.filter(pk=entry.pk).update(reported_at=timezone.now())
            sent += 1
        done += 1
    return sent


@dataclass(frozen=True)
class Reconciliation:
    customer: str
    ledger: int  # reported calls in the ledger
    stripe: int  # what Stripe's meter summed
    unreported: int  # calls still waiting in the ledger

    @property
    def matches(self) -> bool:
        return self.ledger == self.stripe


def usage_reconcile(*, start: datetime, end: datetime) -> list[Reconciliation]:
    """Per customer: the ledger's reported calls against Stripe's meter event summaries."""
    meter = stripe_api.meter_by_event_name(METER_EVENT_NAME)
    if meter is None:
        raise stripe_api.StripeError(f"No active meter for {METER_EVENT_NAME!r}: run billing_catalogue_sync.")
    rows = UsageLedgerEntry.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
    out = []
    for customer in sorted(set(rows.values_list("stripe_customer_id", flat=True))):
        mine = rows.filter(stripe_customer_id=customer)
        reported = mine.exclude(reported_at=None).aggregate(n=Sum("quantity"))["n"] or 0
        waiting = mine.filter(reported_at=None).aggregate(n=Sum("quantity"))["n"] or 0
        theirs = stripe_api.meter_event_summaries(
            meter_id=meter["id"], customer=customer, start=int(start.timestamp()), end=int(end.timestamp())
        )
        out.append(Reconciliation(customer=customer, ledger=reported, stripe=theirs, unreported=waiting))
    return out
