"""The ledger of metered usage: API calls counted locally (partners.usage) are written here, in the
transaction that moves them out of the counters, before anything is reported to Stripe
(billing.metering). The desktop edition keeps no ledger."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.utils import timezone

if settings.TESSERA_BILLING_ENABLED:  # the desktop does not install billing's models
    from billing.models import BillingAccount, UsageLedgerEntry

# Usage is billed while a subscription runs (a trial too: Stripe bills the period's usage at its end).
METERED_STATUSES = ("trialing", "active", "past_due")


def usage_ledger_add(*, workspace, quantity: int) -> UsageLedgerEntry | None:
    """Keep `quantity` API calls of `workspace` for the meter, if it has a subscription that bills
    them. Each entry gets the identifier its meter event will carry (unique: never billed twice)."""
    if not settings.TESSERA_BILLING_ENABLED or quantity <= 0:
        return None
    account = (
        BillingAccount.objects.filter(workspace_id=workspace.pk, status__in=METERED_STATUSES)
        .exclude(stripe_customer_id="")
        .only("stripe_customer_id")
        .first()
    )
    if account is None:
        return None
    return UsageLedgerEntry.objects.create(
        workspace_id=workspace.pk,
        stripe_customer_id=account.stripe_customer_id,
        quantity=quantity,
        identifier=f"tessera_{workspace.pk}_{uuid.uuid4().hex}",
        occurred_at=timezone.now(),
    )
