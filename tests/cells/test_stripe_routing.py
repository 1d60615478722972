"""Stripe events about customers another cell bills (billing.routing): never handed on twice, kept and
retried while that cell is down. The hand-over itself, to a real second cell, is in
tests/cells/test_moves.py. Events are Stripe's fixture objects, signed as Stripe signs."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from billing import routing
from billing.models import StripeEvent
from billing.services import event_process
from directory.models import WorkspaceLocation
from directory.selectors import workspace_location_forget
from tests.billing.conftest import fake_stripe  # noqa: F401 (fixture)
from tests.billing.fake_stripe import fixture, new_id
from tests.live_server import free_port

pytestmark = pytest.mark.saas_only


@pytest.fixture
def customer_in_us(fake_stripe, tenants_provisioned, db, settings):  # noqa: F811
    """A Stripe customer whose workspace (omega) the directory places in cell us-1, which is down."""
    settings.TESSERA_CELLS = {
        **settings.TESSERA_CELLS,
        "us-1": {"region": "us", "public_url": "https://us1.tessera.example", "internal_url": f"http://127.0.0.1:{free_port()}"},
    }  # fmt: skip
    customer = new_id("cus")
    WorkspaceLocation.objects.create(
        slug="omega", cell="us-1", region="us", status="active", stripe_customer_id=customer
    )
    workspace_location_forget("omega")
    yield customer
    workspace_location_forget("omega")


def _post(settings, stripe, event: dict):
    payload, signature = stripe.signed(event)
    return Client(HTTP_HOST=settings.TESSERA_BASE_DOMAIN).post(
        "/stripe/webhooks", payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
    )


def test_an_event_for_a_cell_that_is_down_waits_and_is_retried(customer_in_us, fake_stripe, settings):  # noqa: F811
    invoice = fixture("invoice", id=new_id("in"), customer=customer_in_us, subscription=None, parent=None)
    event = fake_stripe.event("invoice.paid", invoice)
    assert _post(settings, fake_stripe, event).status_code == 200
    with pytest.raises(routing.ForwardFailed, match="us-1 unreachable"):
        event_process(event["id"])  # the task retries it with its backoff
    stored = StripeEvent.objects.get(pk=event["id"])
    assert stored.processed_at is None and stored.forwarded_to == ""


def test_an_event_another_cell_handed_on_is_never_handed_on_again(customer_in_us, fake_stripe, settings):  # noqa: F811
    """Cell us-1 forwarded it here (its directory was stale): processed here, not sent back."""
    invoice = fixture("invoice", id=new_id("in"), customer=customer_in_us, subscription=None, parent=None)
    event = {**fake_stripe.event("invoice.paid", invoice), routing.FORWARDED_KEY: "us-1"}
    assert _post(settings, fake_stripe, event).status_code == 200
    assert event_process(event["id"]) == "no subscription"
    stored = StripeEvent.objects.get(pk=event["id"])
    assert (stored.forwarded_from, stored.forwarded_to) == ("us-1", "")
    assert routing.FORWARDED_KEY not in stored.payload  # Stripe's event, as Stripe sent it


def test_the_forwarded_mark_cannot_be_added_without_the_signing_secret(customer_in_us, fake_stripe, settings):  # noqa: F811
    invoice = fixture("invoice", id=new_id("in"), customer=customer_in_us, subscription=None, parent=None)
    event = fake_stripe.event("invoice.paid", invoice)
    payload, signature = fake_stripe.signed(event)
    tampered = json.dumps({**json.loads(payload), routing.FORWARDED_KEY: "us-1"})
    response = Client(HTTP_HOST=settings.TESSERA_BASE_DOMAIN).post(
        "/stripe/webhooks", tampered, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
    )
    assert response.status_code == 400


def test_a_new_customer_is_noted_in_the_directory(tenant, fake_stripe):  # noqa: F811
    from billing.services import customer_ensure

    account = customer_ensure(workspace=tenant, email="admin@alpha.test")
    location = WorkspaceLocation.objects.get(slug=tenant.slug)
    assert location.stripe_customer_id == account.stripe_customer_id
