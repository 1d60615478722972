"""Make a Stripe account's Products, Prices and Meter match the plan catalogue (billing.plans), so that
Checkout finds every plan's prices by lookup key. Idempotent: what matches is left alone; a price whose
amount changed gets a new Price that takes over the lookup key (Stripe's prices are immutable)."""

from __future__ import annotations

from decimal import Decimal

from billing import stripe_api
from billing.plans import (
    METER_EVENT_NAME,
    OFFERS,
    PAID_PLANS,
    PLANS,
    Interval,
    Plan,
    metered_price_lookup_key,
    price_lookup_key,
)


def _tiers(included: int, cents_per_1000: int) -> list[dict]:
    per_call = (Decimal(cents_per_1000) / 1000).normalize()
    return [
        {"up_to": included, "unit_amount": 0},
        {"up_to": "inf", "unit_amount_decimal": str(per_call)},
    ]


def catalogue_sync() -> list[str]:
    """Create or update what is missing or different; a line per change (empty: all in step)."""
    changes: list[str] = []
    meter = stripe_api.meter_by_event_name(METER_EVENT_NAME)
    if meter is None:
        meter = stripe_api.meter_create(
            {
                "display_name": "Tessera API calls",
                "event_name": METER_EVENT_NAME,
                "default_aggregation": {"formula": "sum"},
                "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
                "value_settings": {"event_payload_key": "value"},
            }
        )
        changes.append(f"meter {METER_EVENT_NAME} created")
    products = {p["metadata"].get("tessera_plan"): p for p in stripe_api.products_list() if p.get("metadata")}
    keys = [price_lookup_key(plan, i) for plan in PAID_PLANS for i in Interval.values]
    keys += [metered_price_lookup_key(plan, i) for plan in PAID_PLANS for i in Interval.values]
    prices = {p["lookup_key"]: p for p in stripe_api.prices_list(keys)}
    for plan in PAID_PLANS:
        offer, label = OFFERS[plan], f"Tessera {Plan(plan).label}"
        product = products.get(plan)
        if product is None:
            product = stripe_api.product_create({"name": label, "metadata": {"tessera_plan": plan}})
            changes.append(f"product {label} created")
        elif product["name"] != label:
            stripe_api.product_update(product["id"], {"name": label})
            changes.append(f"product {label} renamed")
        for interval in Interval.values:
            amount = offer.monthly_cents if interval == Interval.MONTH else offer.yearly_cents
            key = price_lookup_key(plan, interval)
            existing = prices.get(key)
            if amount is not None and (existing is None or existing["unit_amount"] != amount):
                stripe_api.price_create(
                    {
                        "product": product["id"],
                        "currency": "usd",
                        "unit_amount": amount,
                        "recurring": {"interval": interval},
                        "lookup_key": key,
                        "transfer_lookup_key": True,
                        "metadata": {"tessera_plan": plan},
                    }
                )
                changes.append(f"price {key} {'created' if existing is None else 'replaced'}")
            included = PLANS[plan].api_calls_month
            metered_key = metered_price_lookup_key(plan, interval)
            if offer.overage_cents_per_1000_calls is not None and included is not None and metered_key not in prices:
                stripe_api.price_create(
                    {
                        "product": product["id"],
                        "currency": "usd",
                        "billing_scheme": "tiered",
                        "tiers_mode": "graduated",
                        "tiers": _tiers(included, offer.overage_cents_per_1000_calls),
                        "recurring": {"interval": interval, "usage_type": "metered", "meter": meter["id"]},
                        "lookup_key": metered_key,
                        "transfer_lookup_key": True,
                        "metadata": {"tessera_plan": plan},
                    }
                )
                changes.append(f"price {metered_key} created")
    return changes
