"""Stripe events of workspaces that other cells hold. One Stripe account serves every cell of an
installation, so a cell's webhook endpoint receives events about customers billed in other cells. The
directory maps each Stripe customer to its workspace (set when the customer is created, kept through
moves), and the event is handed on to that workspace's cell: POSTed to its receiver (`/stripe/webhooks`
on its public site, at its internal address if TESSERA_CELLS gives one) signed as Stripe signs, with
the endpoint secret every cell shares, and marked inside the signed body as forwarded, so the
receiving cell never hands it on again (a stale directory cannot make two cells bounce an event). The
processing task does the forwarding: a cell that is down is retried with the task's backoff, and the
event waits in this cell's table meanwhile.

Desktop and a lone cell: nothing is ever elsewhere."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

import requests
from django.conf import settings
from django.db import DatabaseError

from billing.models import BillingAccount
from tenants.topology import Cell, workspace_elsewhere

if settings.TESSERA_DIRECTORY_ENABLED:
    from directory import services as directory_services
    from directory.selectors import workspace_of_customer

logger = logging.getLogger(__name__)

FORWARDED_KEY = "tessera_forwarded_by"  # top-level key of a forwarded event's (re-signed) body
FORWARD_TIMEOUT = 10.0


class ForwardFailed(Exception):
    """The cell the event belongs to did not take it (down, or refused): retried by the task."""


def event_customer(event: dict) -> str | None:
    """The Stripe customer an event is about: the object's `customer`, or the customer itself."""
    obj = ((event.get("data") or {}).get("object")) or {}
    if obj.get("object") == "customer":
        return obj.get("id") if isinstance(obj.get("id"), str) else None
    customer = obj.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    return customer if isinstance(customer, str) and customer else None


def event_cell_elsewhere(event: dict) -> Cell | None:
    """The other cell that bills the event's customer, or None (this cell, nobody, no directory)."""
    if not settings.TESSERA_DIRECTORY_ENABLED:
        return None
    customer = event_customer(event)
    if customer is None or BillingAccount.objects.filter(stripe_customer_id=customer).exists():
        return None
    slug = workspace_of_customer(customer)
    elsewhere = workspace_elsewhere(slug) if slug else None
    return elsewhere.cell if elsewhere else None


def event_forward(*, event: dict, cell: Cell) -> None:
    """Hand `event` to `cell`'s receiver, signed with this installation's endpoint secret."""
    payload = json.dumps({**event, FORWARDED_KEY: settings.TESSERA_CELL}).encode()
    timestamp = int(time.time())
    secret = settings.STRIPE_WEBHOOK_SECRETS[0]
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    url, host = cell.public_site_request_target("/stripe/webhooks")
    headers = {"Host": host, "Content-Type": "application/json", "Stripe-Signature": f"t={timestamp},v1={mac}"}
    try:
        response = requests.post(
            url,
            data=payload,
            headers=headers,
            timeout=FORWARD_TIMEOUT,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise ForwardFailed(f"cell {cell.name} unreachable: {exc!r}") from exc
    if response.status_code != 200:
        raise ForwardFailed(f"cell {cell.name} answered {response.status_code}: {response.text[:300]}")


def customer_location_set(*, workspace_slug: str, stripe_customer_id: str) -> None:
    """Note in the directory which workspace Stripe bills as `stripe_customer_id` (what routes its events)."""
    if not settings.TESSERA_DIRECTORY_ENABLED or not stripe_customer_id:
        return
    try:
        directory_services.workspace_location_customer_set(slug=workspace_slug, stripe_customer_id=stripe_customer_id)
    except DatabaseError:  # the billing change stands; directory_register fills it in later
        logger.exception("the cells' directory is unreachable: customer %s not recorded", stripe_customer_id)
