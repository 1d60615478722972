"""The one door to Stripe's API: the official `stripe` SDK's client, configured from settings (the
secret key; the API's base URL, which tests point at a fake Stripe server). Nothing else in Tessera
imports `stripe`, and only the SaaS loads this module (the desktop has no billing)."""

from __future__ import annotations

import json
from typing import Any

import stripe
from django.conf import settings

from billing.plans import plan_of_lookup_key

# Errors callers may catch without importing stripe themselves.
StripeError = stripe.StripeError
SignatureVerificationError = stripe.SignatureVerificationError

_clients: dict[tuple[str, str], stripe.StripeClient] = {}


def _plain(obj) -> dict:
    """The SDK's object as plain dicts and lists: what the rest of billing reads and stores."""
    return obj.to_dict()


def stripe_client() -> stripe.StripeClient:
    """A client for the configured account (one per key and base URL, reused across requests)."""
    key, base = settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE
    client = _clients.get((key, base))
    if client is None:
        client = _clients[(key, base)] = stripe.StripeClient(
            key or "sk_test_unset",
            base_addresses={"api": base} if base else None,
            max_network_retries=2,  # the SDK retries with the same idempotency key: never a double create
        )
    return client


def event_verify(payload: bytes, signature: str) -> dict:
    """The event `payload` is, if `signature` (the Stripe-Signature header) is a valid signature of it
    by one of the endpoint secrets (several during a rotation) and no older than the tolerance.
    Raises SignatureVerificationError (forged, stale, unsigned) or ValueError (not an event)."""
    secrets = settings.STRIPE_WEBHOOK_SECRETS
    if not secrets:
        raise SignatureVerificationError("No Stripe webhook secret is configured.", signature)
    error: Exception | None = None
    for secret in secrets:
        try:
            stripe.Webhook.construct_event(
                payload, signature, secret, tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS
            )
            return json.loads(payload)  # as sent (the SDK's object turns *_decimal fields into Decimals)
        except SignatureVerificationError as exc:
            error = exc
    raise error  # type: ignore[misc]


def subscription_retrieve(subscription_id: str) -> dict:
    return _plain(stripe_client().v1.subscriptions.retrieve(subscription_id, {"expand": ["items.data.price"]}))


def subscription_items_update(subscription_id: str, *, items: list[dict], idempotency_key: str) -> dict:
    """Change a subscription's items (a plan change), prorated: Stripe credits the unused time of the old
    price and charges the new one's on the next invoice."""
    return _plain(
        stripe_client().v1.subscriptions.update(
            subscription_id,
            {"items": items, "proration_behavior": "create_prorations", "expand": ["items.data.price"]},
            {"idempotency_key": idempotency_key},
        )
    )


def subscriptions_of_customer(customer: str) -> list[dict]:
    """Every subscription of `customer` (canceled ones too), newest first."""
    found = stripe_client().v1.subscriptions.list(
        {"customer": customer, "status": "all", "limit": 100, "expand": ["data.items.data.price"]}
    )
    return sorted((_plain(s) for s in found.auto_paging_iter()), key=lambda s: -s.get("created", 0))


def subscription_plan(subscription: Any) -> tuple[str, str] | None:
    """(plan, interval) of a subscription: the first item whose price has one of our lookup keys."""
    for item in subscription["items"]["data"]:
        found = plan_of_lookup_key(item["price"].get("lookup_key"))
        if found:
            return found
    return None


def customer_create(*, workspace_id: int, name: str, email: str) -> dict:
    return _plain(
        stripe_client().v1.customers.create(
            {"name": name, "email": email, "metadata": {"workspace_id": str(workspace_id)}},
            # Row ids are per cell (one Stripe account serves them all): the cell's name keeps two cells'
            # workspaces of the same id from getting one customer within Stripe's 24 h idempotency window.
            {"idempotency_key": f"tessera-customer-{settings.TESSERA_CELL or 'single'}-{workspace_id}"},
        )
    )


def prices_by_lookup_key(lookup_keys: list[str]) -> dict[str, str]:
    """{lookup key: price id} of the active prices with those keys."""
    found = stripe_client().v1.prices.list({"lookup_keys": lookup_keys, "active": True, "limit": 100})
    return {price["lookup_key"]: price["id"] for price in found["data"]}


def checkout_session_create(params: dict) -> dict:
    return _plain(stripe_client().v1.checkout.sessions.create(params))


def portal_session_create(*, customer: str, return_url: str) -> dict:
    return _plain(stripe_client().v1.billing_portal.sessions.create({"customer": customer, "return_url": return_url}))


def invoices_list(*, customer: str, limit: int = 12) -> list[dict]:
    return [_plain(i) for i in stripe_client().v1.invoices.list({"customer": customer, "limit": limit})["data"]]


def meter_event_create(*, event_name: str, customer: str, value: int, identifier: str, timestamp: int):
    """One meter event. Its `identifier` is also the request's idempotency key: a retry within 24 h
    gets the first answer back, and Stripe refuses a repeated identifier after that."""
    return stripe_client().v1.billing.meter_events.create(
        {
            "event_name": event_name,
            "identifier": identifier,
            "timestamp": timestamp,
            "payload": {"stripe_customer_id": customer, "value": str(value)},
        },
        {"idempotency_key": identifier},
    )


def meter_event_is_duplicate(exc: Exception) -> bool:
    """Whether Stripe refused a meter event because its identifier was reported before."""
    if not isinstance(exc, stripe.InvalidRequestError):
        return False
    text = f"{exc.code or ''} {exc.user_message or ''} {exc}".lower()
    return "identifier" in text and ("already" in text or "duplicate" in text)


def meter_event_summaries(*, meter_id: str, customer: str, start: int, end: int) -> int:
    """The sum Stripe aggregated for `customer` on the meter between two Unix times."""
    found = stripe_client().v1.billing.meters.event_summaries.list(
        meter_id, {"customer": customer, "start_time": start, "end_time": end, "limit": 100}
    )
    return sum(round(float(s["aggregated_value"])) for s in found.auto_paging_iter())


def meter_by_event_name(event_name: str) -> dict | None:
    for meter in stripe_client().v1.billing.meters.list({"limit": 100}).auto_paging_iter():
        if meter["event_name"] == event_name and meter["status"] == "active":
            return _plain(meter)
    return None


# --- the catalogue (manage.py billing_catalogue_sync) ------------------------------------------------


def products_list() -> list[dict]:
    return [_plain(p) for p in stripe_client().v1.products.list({"limit": 100}).auto_paging_iter()]


def product_create(params: dict) -> dict:
    return _plain(stripe_client().v1.products.create(params))


def product_update(product_id: str, params: dict) -> dict:
    return _plain(stripe_client().v1.products.update(product_id, params))


def prices_list(lookup_keys: list[str]) -> list[dict]:
    found = stripe_client().v1.prices.list({"lookup_keys": lookup_keys, "active": True, "limit": 100})
    return [_plain(p) for p in found["data"]]


def price_create(params: dict) -> dict:
    return _plain(stripe_client().v1.prices.create(params))


def meter_create(params: dict) -> dict:
    return _plain(stripe_client().v1.billing.meters.create(params))
