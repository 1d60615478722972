"""The plan catalogue: every plan, its limits and its Stripe prices (found by lookup key), in code.

The catalogue is the one source of truth: `manage.py billing_catalogue_sync` makes a Stripe account's
Products, Prices and Meter match it, and every limit check reads it through `billing.entitlements`.
`None` as a limit means unlimited.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models

from core.token_buckets import Limit


class Plan(models.TextChoices):
    FREE = "free", "Free"
    STARTER = "starter", "Starter"
    PRO = "pro", "Pro"
    ENTERPRISE = "enterprise", "Enterprise"


class Interval(models.TextChoices):
    MONTH = "month", "Monthly"
    YEAR = "year", "Yearly"


# The limits a plan sets, as people read them: (field of PlanLimits, label, unit).
LIMIT_NAMES: dict[str, tuple[str, str]] = {
    "members": ("Members", "members"),
    "records": ("Records", "records"),
    "api_calls_month": ("API calls this month", "calls"),
    "devices": ("Paired devices", "devices"),
    "webhook_endpoints": ("Webhook endpoints (per mode)", "endpoints"),
    "scheduled_reports": ("Scheduled reports", "reports"),
}


@dataclass(frozen=True)
class PlanLimits:
    api_key: Limit  # each API key's rate
    api_workspace: Limit  # all the workspace's keys together
    members: int | None  # active members
    records: int | None  # live records (not deleted), live and test data together
    api_calls_month: int | None  # included API calls per calendar month (UTC); paid plans bill the rest
    devices: int | None  # paired devices not revoked
    webhook_endpoints: int | None  # per workspace and mode (live / test)
    scheduled_reports: int | None


@dataclass(frozen=True)
class PlanOffer:
    """What a plan costs and how Stripe knows it: prices in the smallest currency unit (cents)."""

    monthly_cents: int | None  # None: not sold through Checkout (Free; Enterprise is sold by people)
    yearly_cents: int | None
    overage_cents_per_1000_calls: int | None  # metered API calls above the included amount
    self_serve: bool


PLANS: dict[str, PlanLimits] = {
    Plan.FREE: PlanLimits(
        api_key=Limit(rate=10, burst=20),
        api_workspace=Limit(rate=20, burst=40),
        members=5,
        records=10_000,
        api_calls_month=100_000,
        devices=5,
        webhook_endpoints=5,
        scheduled_reports=1,
    ),
    Plan.STARTER: PlanLimits(
        api_key=Limit(rate=25, burst=50),
        api_workspace=Limit(rate=50, burst=100),
        members=20,
        records=100_000,
        api_calls_month=1_000_000,
        devices=25,
        webhook_endpoints=20,
        scheduled_reports=10,
    ),
    Plan.PRO: PlanLimits(
        api_key=Limit(rate=100, burst=200),
        api_workspace=Limit(rate=200, burst=400),
        members=100,
        records=2_000_000,
        api_calls_month=10_000_000,
        devices=250,
        webhook_endpoints=50,
        scheduled_reports=100,
    ),
    Plan.ENTERPRISE: PlanLimits(
        api_key=Limit(rate=500, burst=1000),
        api_workspace=Limit(rate=1000, burst=2000),
        members=None,
        records=None,
        api_calls_month=None,
        devices=None,
        webhook_endpoints=None,
        scheduled_reports=None,
    ),
}

OFFERS: dict[str, PlanOffer] = {
    Plan.FREE: PlanOffer(monthly_cents=None, yearly_cents=None, overage_cents_per_1000_calls=None, self_serve=True),
    Plan.STARTER: PlanOffer(monthly_cents=2900, yearly_cents=29000, overage_cents_per_1000_calls=50, self_serve=True),
    Plan.PRO: PlanOffer(monthly_cents=9900, yearly_cents=99000, overage_cents_per_1000_calls=20, self_serve=True),
    Plan.ENTERPRISE: PlanOffer(
        monthly_cents=49900, yearly_cents=499000, overage_cents_per_1000_calls=None, self_serve=True
    ),
}

ORDER = [Plan.FREE, Plan.STARTER, Plan.PRO, Plan.ENTERPRISE]
PAID_PLANS = [Plan.STARTER, Plan.PRO, Plan.ENTERPRISE]
# The Billing Meter API calls above a plan's included amount are reported to (its event_name).
METER_EVENT_NAME = "tessera_api_calls"
METER_LOOKUP_KEY_SUFFIX = "api_calls"


def plan_limits_of(plan: str) -> PlanLimits:
    """A plan's limits; an unknown plan code gets the Free plan's."""
    return PLANS.get(plan, PLANS[Plan.FREE])


def price_lookup_key(plan: str, interval: str) -> str:
    """The lookup key of a plan's flat price: `tessera_<plan>_monthly` / `tessera_<plan>_yearly`."""
    return f"tessera_{plan}_{interval}ly"


def metered_price_lookup_key(plan: str, interval: str) -> str:
    """The lookup key of a plan's metered price for API calls above the included amount."""
    return f"tessera_{plan}_{METER_LOOKUP_KEY_SUFFIX}_{interval}ly"


def plan_of_lookup_key(lookup_key: str | None) -> tuple[str, str] | None:
    """(plan, interval) of one of our flat prices' lookup keys, else None."""
    for plan in PAID_PLANS:
        for interval in Interval.values:
            if lookup_key == price_lookup_key(plan, interval):
                return plan, interval
    return None


def plan_rank(plan: str) -> int:
    return ORDER.index(plan) if plan in ORDER else 0
