"""The periodic re-read of subscriptions whose Stripe events may have been missed (billing.services.
subscriptions_resync, beat: billing.subscriptions_resync), against the FAKE Stripe API
(tests/billing/fake_stripe.py: Stripe's servers cannot be reached from here). The fake changes a
subscription without sending any event, as a webhook endpoint that was down would have seen it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

pytestmark = pytest.mark.saas_only

NOTHING = {"synced": 0, "unchanged": 0, "failed": 0}


def _price(fake, lookup_key: str) -> dict:
    return next(p for p in fake.prices.values() if p["lookup_key"] == lookup_key)


def _subscribe(fake, account, tenant, *, trial_days: int = 0) -> dict:
    return fake.subscription_create(
        customer=account.stripe_customer_id,
        prices=[_price(fake, "tessera_starter_monthly")],
        trial_days=trial_days,
        metadata={"workspace_id": str(tenant.pk)},
    )


def test_a_checkout_whose_events_never_came_is_found_by_the_resync(fake_stripe, tenant):
    from billing.services import customer_ensure, subscriptions_resync
    from tenants.models import Tenant

    account = customer_ensure(workspace=tenant, email="admin@alpha.test")
    sub = _subscribe(fake_stripe, account, tenant, trial_days=14)  # paid on Checkout; no event delivered
    assert subscriptions_resync() == {**NOTHING, "synced": 1}
    account.refresh_from_db()
    assert (account.status, account.plan, account.stripe_subscription_id) == ("trialing", "starter", sub["id"])
    assert Tenant.objects.get(pk=tenant.pk).plan == "starter"  # the plan's limits follow at once
    # Read now: the next run leaves it alone (no request to Stripe at all).
    asked = len(fake_stripe.requests)
    assert subscriptions_resync() == NOTHING
    assert len(fake_stripe.requests) == asked


def test_a_missed_payment_failure_and_a_missed_trial_end_are_caught_up(fake_stripe, tenant):
    from audit.models import AuditEvent
    from billing.entitlements import standing
    from billing.models import BillingAccount
    from billing.services import customer_ensure, subscription_sync, subscriptions_resync

    account = customer_ensure(workspace=tenant, email="admin@alpha.test")
    sub = _subscribe(fake_stripe, account, tenant)
    subscription_sync(subscription_id=sub["id"])
    # Stripe marks it past due; the endpoint was down and the event's retries ran out. A day later:
    fake_stripe.subscription_set(sub["id"], status="past_due")
    BillingAccount.objects.filter(pk=account.pk).update(synced_at=timezone.now() - timedelta(hours=25))
    assert subscriptions_resync() == {**NOTHING, "synced": 1}
    now = standing(tenant)
    assert now.status == "past_due" and now.in_grace  # the banner and the grace period start
    assert AuditEvent.objects.filter(action="billing.payment_failed").exists()  # Admins are told
    # A trial's end is a moment Stripe changes the subscription by itself: read again once it passed,
    # however recently it was read before.
    trial = _subscribe(fake_stripe, account, tenant, trial_days=14)
    subscription_sync(subscription_id=trial["id"])
    fake_stripe.subscription_set(trial["id"], status="active", trial_end=None)
    BillingAccount.objects.filter(pk=account.pk).update(
        trial_end=timezone.now() - timedelta(minutes=1), synced_at=timezone.now() - timedelta(hours=1)
    )
    assert subscriptions_resync() == {**NOTHING, "synced": 1}
    assert standing(tenant).status == "active"


def test_stripe_unreachable_fails_quietly_and_changes_nothing(fake_stripe, tenant, settings):
    from billing import stripe_api
    from billing.models import BillingAccount
    from billing.services import customer_ensure, subscription_sync, subscriptions_resync
    from tests.live_server import free_port

    account = customer_ensure(workspace=tenant, email="admin@alpha.test")
    sub = _subscribe(fake_stripe, account, tenant)
    subscription_sync(subscription_id=sub["id"])
    BillingAccount.objects.filter(pk=account.pk).update(synced_at=timezone.now() - timedelta(days=2))
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    stripe_api._clients.clear()
    assert subscriptions_resync() == {**NOTHING, "failed": 1}
    account.refresh_from_db()
    assert account.status == "active" and account.synced_at < timezone.now() - timedelta(days=1)  # tried again next run
