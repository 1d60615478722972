"""Billing fixtures: put workspace alpha on a plan and a subscription status (rolled back with the test)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest


@pytest.fixture
def standing_set(tenant, monkeypatch):
    """standing_set(plan="starter", status="active", past_due_days=0) -> BillingAccount of alpha (SaaS).

    The tenant row changes inside the test's transaction; the session's Tenant object is patched for
    the test only."""
    from django.utils import timezone

    from billing.models import BillingAccount
    from tenants.models import Tenant

    def make(plan: str = "starter", status: str = "active", past_due_days: float = 0, **fields):
        Tenant.objects.filter(pk=tenant.pk).update(plan=plan)
        monkeypatch.setattr(tenant, "plan", plan)
        past_due_since = timezone.now() - timedelta(days=past_due_days) if status == "past_due" else None
        account, _ = BillingAccount.objects.update_or_create(
            workspace=tenant,
            defaults={
                "plan": plan,
                "status": status,
                "stripe_customer_id": "cus_test_alpha",
                "stripe_subscription_id": "sub_test_alpha",
                "past_due_since": past_due_since,
                **fields,
            },
        )
        return account

    return make


@pytest.fixture
def small_limits(monkeypatch):
    """small_limits(plan, **limits): shrink one plan's limits for the test (a test of a limit need not
    create 10,000 records to reach it)."""
    from billing.plans import PLANS

    def make(plan: str, **limits):
        monkeypatch.setitem(PLANS, plan, replace(PLANS[plan], **limits))

    return make


@pytest.fixture
def fake_stripe(settings):
    """A FAKE Stripe API (tests/billing/fake_stripe.py: Stripe's servers cannot be reached from here),
    the SDK pointed at it, its catalogue synced by billing's own command code."""
    from billing import stripe_api
    from billing.catalogue import catalogue_sync
    from tests.billing.fake_stripe import FakeStripe

    fake = FakeStripe().start()
    settings.STRIPE_API_BASE = fake.url
    settings.STRIPE_SECRET_KEY = "sk_test_fake"
    settings.STRIPE_WEBHOOK_SECRETS = [fake.webhook_secret]
    stripe_api._clients.clear()
    catalogue_sync()
    yield fake
    fake.stop()
    stripe_api._clients.clear()
