"""The Stripe webhook receiver on the public host, and what events do to a workspace.

Stripe itself cannot be reached from here: the official `stripe` SDK talks to a FAKE Stripe API
(tests/billing/fake_stripe.py, see its docstring for what it leaves out), and events are signed as
Stripe signs them. The receiver, the SDK's signature check, the database and the processing are real;
the Celery task's body (`event_process`) runs in the test's process."""

from __future__ import annotations

import json
import time

import pytest
from django.core import mail
from django.test import Client

from tests.billing.fake_stripe import fixture, signature_header

pytestmark = pytest.mark.saas_only
URL = "/stripe/webhooks"


@pytest.fixture
def public(settings):
    return Client(HTTP_HOST=settings.TESSERA_BASE_DOMAIN)


@pytest.fixture
def queued(monkeypatch):
    """The ids handed to the Celery task (the receiver answers before anything is processed)."""
    from billing import tasks

    ids: list[str] = []
    monkeypatch.setattr(tasks.stripe_event_process_task, "delay", lambda event_id: ids.append(event_id))
    return ids


def event_process(event_id: str) -> str:
    """The Celery task's body (billing.tasks.stripe_event_process_task), run here."""
    from billing.services import event_process as process

    return process(event_id)


def stored(event_id: str):
    from billing.models import StripeEvent

    return StripeEvent.objects.filter(pk=event_id)


def account_of(tenant):
    from billing.models import BillingAccount

    return BillingAccount.objects.filter(workspace=tenant).first()


def post(public, fake, event, **sign):
    payload, header = fake.signed(event, **sign)
    return public.post(URL, payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def subscription_of(fake, tenant, *, plan="starter", status="active", trial_days=0):
    customer = fake.route("POST", "/v1/customers", {"name": tenant.name, "email": "a@x.test"})["id"]
    price = next(p for p in fake.prices.values() if p["lookup_key"] == f"tessera_{plan}_monthly")
    sub = fake.subscription_create(
        customer=customer, prices=[price], trial_days=trial_days, metadata={"workspace_id": str(tenant.pk)}
    )
    return fake.subscription_set(sub["id"], status=status)


# --- the receiver ---------------------------------------------------------------------------------------


def test_forged_unsigned_and_stale_events_are_400_and_not_stored(public, fake_stripe, tenant):
    sub = subscription_of(fake_stripe, tenant)
    event = fake_stripe.event("customer.subscription.updated", sub)
    forged = post(public, fake_stripe, event, secret="whsec_someone_else")
    stale = post(public, fake_stripe, event, timestamp=int(time.time()) - 301)
    unsigned = public.post(URL, json.dumps(event), content_type="application/json")
    garbage_payload = b"not json"
    garbage = public.post(
        URL,
        garbage_payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature_header(garbage_payload, fake_stripe.webhook_secret),
    )
    for response in (forged, stale, unsigned, garbage):
        assert response.status_code == 400, response.content
    assert forged.json()["error"] == "invalid_signature" and garbage.json()["error"] == "invalid_payload"
    assert not stored(event["id"]).exists()
    assert public.get(URL).status_code == 405


def test_a_valid_event_is_stored_once_answered_at_once_and_processed_by_the_task(
    public, fake_stripe, tenant, queued, django_capture_on_commit_callbacks
):
    sub = subscription_of(fake_stripe, tenant, plan="pro", status="active")
    event = fake_stripe.event("customer.subscription.created", sub)
    with django_capture_on_commit_callbacks(execute=True):
        first = post(public, fake_stripe, event)
    assert first.status_code == 200 and first.json() == {"received": True}
    assert queued == [event["id"]]
    assert stored(event["id"]).get().processed_at is None  # not processed in the request
    again = post(public, fake_stripe, event)  # Stripe retries the same event
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert queued == [event["id"]] and stored(event["id"]).count() == 1
    assert event_process(event["id"]) == "active pro"
    assert event_process(event["id"]) == "already processed"
    account = account_of(tenant)
    plan = type(tenant).objects.get(pk=tenant.pk).plan  # (the session's Tenant object stays as it was)
    assert (plan, account.status, account.stripe_subscription_id) == ("pro", "active", sub["id"])


def test_secrets_during_a_rotation_both_verify(public, fake_stripe, tenant, settings, queued):
    settings.STRIPE_WEBHOOK_SECRETS = ["whsec_new_one", fake_stripe.webhook_secret]
    sub = subscription_of(fake_stripe, tenant)
    old = post(public, fake_stripe, fake_stripe.event("customer.subscription.updated", sub))
    new = post(public, fake_stripe, fake_stripe.event("customer.subscription.updated", sub), secret="whsec_new_one")
    assert (old.status_code, new.status_code) == (200, 200)


def test_unknown_event_type_is_accepted_and_changes_nothing(public, fake_stripe, tenant, queued):
    event = fake_stripe.event("charge.dispute.funds_withdrawn", {"id": "du_1", "object": "dispute"})
    assert post(public, fake_stripe, event).status_code == 200
    assert event_process(event["id"]) == "ignored"
    assert stored(event["id"]).get().processed_at is not None
    assert not account_of(tenant) is not None


def test_events_out_of_order_converge_on_the_subscription_as_stripe_has_it(public, fake_stripe, tenant, queued):
    """Stripe sends created (trialing), then updated (active), then updated (past_due); they arrive
    last-first. Each handler re-reads the subscription, so the workspace ends past due whatever the order."""
    sub = subscription_of(fake_stripe, tenant, status="trialing", trial_days=14)
    created = fake_stripe.event("customer.subscription.created", sub)
    active = fake_stripe.event(
        "customer.subscription.updated", fake_stripe.subscription_set(sub["id"], status="active")
    )
    failed = fake_stripe.event(
        "customer.subscription.updated", fake_stripe.subscription_set(sub["id"], status="past_due")
    )
    for event in (failed, active, created):
        response = post(public, fake_stripe, event)
        assert response.status_code == 200, response.content
        event_process(event["id"])
    account = account_of(tenant)
    assert account.status == "past_due" and account.past_due_since is not None
    # Paying again: invoice.paid, whose body says nothing of the status; the re-read does.
    invoice = fake_stripe.invoice_create(subscription_id=sub["id"], status="paid")
    fake_stripe.subscription_set(sub["id"], status="active")
    paid = fake_stripe.event("invoice.paid", invoice)
    post(public, fake_stripe, paid)
    event_process(paid["id"])
    account.refresh_from_db()
    assert (account.status, account.past_due_since) == ("active", None)


def test_checkout_completed_links_the_workspace_and_a_failed_payment_mails_the_admins_once(
    public, fake_stripe, tenant, queued, django_capture_on_commit_callbacks
):
    from billing.entitlements import standing

    customer = fake_stripe.route("POST", "/v1/customers", {"name": tenant.name, "email": "a@x.test"})["id"]
    price = next(p for p in fake_stripe.prices.values() if p["lookup_key"] == "tessera_starter_monthly")
    sub = fake_stripe.subscription_create(customer=customer, prices=[price], trial_days=14)  # no metadata
    session = fixture(
        "checkout.session",
        id="cs_test_1",
        client_reference_id=str(tenant.pk),
        customer=customer,
        subscription=sub["id"],
    )
    completed = fake_stripe.event("checkout.session.completed", session)
    post(public, fake_stripe, completed)
    assert event_process(completed["id"]) == "trialing starter"
    assert standing(tenant).trial_days_left == 14
    fake_stripe.subscription_set(sub["id"], status="past_due")
    invoice = fake_stripe.invoice_create(subscription_id=sub["id"], status="open")
    for _ in range(2):  # the first failure and a retry's failure
        failed = fake_stripe.event("invoice.payment_failed", invoice)
        post(public, fake_stripe, failed)
        with django_capture_on_commit_callbacks(execute=True):  # the e-mail goes on commit
            event_process(failed["id"])
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["admin@alpha.test"] and "Payment failed" in mail.outbox[0].subject
    assert "/billing/" in mail.outbox[0].body
    now = standing(tenant)
    assert now.in_grace and not now.read_only


def test_catalogue_sync_is_idempotent(fake_stripe):
    from billing.catalogue import catalogue_sync

    assert catalogue_sync() == []  # the fixture synced it already
    keys = {p["lookup_key"] for p in fake_stripe.prices.values()}
    assert {"tessera_starter_monthly", "tessera_pro_yearly", "tessera_enterprise_monthly"} <= keys
    assert "tessera_pro_api_calls_monthly" in keys and len(fake_stripe.meters) == 1
