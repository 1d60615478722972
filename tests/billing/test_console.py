"""The console's billing page with Stripe Checkout and the Customer Portal, against the FAKE Stripe
API (tests/billing/fake_stripe.py: Stripe's servers cannot be reached from here). The end-to-end
browser run is tests/browser/test_billing_flow.py's job; here: the page, the redirects, the trial."""

from __future__ import annotations

import pytest

from rbac.roles import Role

pytestmark = pytest.mark.saas_only


def deliver_to(public, fake):
    """Post the events the fake has sent since the last call to the receiver and process them (the
    Celery task's body, in this process)."""
    from billing.services import event_process

    sent = getattr(fake, "_posted", 0)
    for event in fake.delivered[sent:]:
        payload, header = fake.signed(event)
        response = public.post(
            "/stripe/webhooks", payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
        )
        assert response.status_code == 200, response.content
        event_process(event["id"])
    fake._posted = len(fake.delivered)


def test_checkout_starts_a_trial_then_the_page_shows_plan_days_left_portal_and_invoices(
    admin_client, fake_stripe, tenant, settings
):
    from django.test import Client

    public = Client(HTTP_HOST=settings.TESSERA_BASE_DOMAIN)
    page = admin_client.get("/billing/").content.decode()
    assert 'data-testid="checkout-starter"' in page and "(14-day trial)" in page
    assert 'data-testid="portal"' not in page  # no customer yet
    response = admin_client.post("/billing/checkout/", {"plan": "starter", "interval": "year"})
    assert response.status_code == 302 and response["Location"].startswith(fake_stripe.url + "/pay/cs_test_")
    session = fake_stripe.sessions[response["Location"].rsplit("/", 1)[1]]
    assert session["client_reference_id"] == str(tenant.pk)
    assert session["_subscription_data"]["trial_period_days"] == "14"
    prices = {fake_stripe.prices[i["price"]]["lookup_key"] for i in session["_line_items"]}
    assert prices == {"tessera_starter_yearly", "tessera_starter_api_calls_yearly"}
    sub = fake_stripe.checkout_complete(session["id"])  # the customer pays on Stripe's page
    deliver_to(public, fake_stripe)
    fake_stripe.invoice_create(subscription_id=sub["id"], status="paid", amount=29000)
    page = admin_client.get("/billing/?checkout=done").content.decode()
    assert "<strong>Starter</strong>" in page and "Trial: 14 days left." in page
    assert 'data-testid="invoices"' in page and "FAKE-0001" in page and "/invoice/in_" in page
    portal = admin_client.post("/billing/portal/")
    assert portal.status_code == 302 and portal["Location"].startswith(fake_stripe.url + "/portal/")
    assert type(tenant).objects.get(pk=tenant.pk).plan == "starter"  # (the session's Tenant object stays as it was)


def test_checkout_refuses_unknown_plans_and_non_admins(admin_client, fake_stripe, tenant, make_user, client_for):
    bad = admin_client.post("/billing/checkout/", {"plan": "platinum"}, follow=True)
    assert "Choose one of the plans on this page." in bad.content.decode()
    manager = client_for(tenant, make_user(Role.MANAGER))
    assert manager.post("/billing/checkout/", {"plan": "starter"}).status_code == 403
    assert manager.post("/billing/portal/").status_code == 403


def test_stripe_unreachable_is_a_message_not_a_500(admin_client, settings, tenant):
    from billing import stripe_api
    from tests.live_server import free_port

    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    stripe_api._clients.clear()
    response = admin_client.post("/billing/checkout/", {"plan": "pro"}, follow=True)
    assert response.status_code == 200 and "Stripe could not be reached" in response.content.decode()
    stripe_api._clients.clear()


def test_sign_up_with_a_paid_plan_lands_on_the_billing_page_offering_its_trial(tenants_provisioned, db, settings):
    from django.test import Client

    from tests.conftest import ADMIN_PASSWORD

    public = Client(HTTP_HOST=settings.TESSERA_BASE_DOMAIN)
    data = {"name": "Delta", "slug": "delta", "email": "d@delta.test", "password": ADMIN_PASSWORD, "plan": "pro"}
    response = public.post("/", data)
    assert response.status_code == 302 and response["Location"].endswith("/?plan=pro")
    browser = Client(HTTP_HOST=f"delta.{settings.TESSERA_BASE_DOMAIN}")
    landed = browser.get(response["Location"].split(settings.TESSERA_BASE_DOMAIN, 1)[1])
    assert landed.status_code == 302 and landed["Location"] == "/billing/?choose=pro"
    page = browser.get(landed["Location"]).content.decode()
    assert "Start the 14-day trial of Pro" in page and 'data-testid="checkout-pro"' in page


def test_read_only_console_turns_write_actions_off_and_says_why_but_keeps_reads(
    admin_client, tenant, admin_user, standing_set
):
    """Not only dimmed: in a read-only workspace the console offers no write that would be refused —
    the grid is not editable, "New record" and "Import CSV" are gone, a record opens as details, and a
    form reached by its URL has its submit button disabled and described by the banner's reason."""
    from records.services import collection_create, record_create

    people = collection_create(actor=admin_user, name="People", slug="people", fields=[{"key": "name", "type": "text"}])
    ada = record_create(actor=admin_user, collection=people, data={"name": "Ada"})
    writable = admin_client.get("/records/people/").content.decode()
    assert "New record" in writable and "data-editable" in writable and "Import CSV" in writable
    standing_set(status="unpaid")
    table = admin_client.get("/records/people/").content.decode()
    assert 'id="billing-reason"' in table and "creating, editing and deleting are turned off" in table
    assert "Ada" in table and "Export" in table  # reads and exports stay
    assert "New record" not in table and "data-editable" not in table and "Import CSV" not in table
    assert "Delete selected" not in table
    detail = admin_client.get(f"/records/people/r/{ada.id}/").content.decode()
    assert "Ada" in detail and "Create record" not in detail and ">Save<" not in detail
    new = admin_client.get("/records/people/new/").content.decode()
    button = new.split('class="primary"', 1)[1].split(">", 1)[0]
    assert "disabled" in button and 'aria-describedby="billing-reason"' in button
    for url, label in [("/members/", "Send invitation"), ("/devices/", "Start pairing")]:
        page = admin_client.get(url).content.decode()
        tag = page.split(label, 1)[0].rsplit("<button", 1)[1]
        assert "disabled" in tag and 'aria-describedby="billing-reason"' in tag, (url, tag)
    # Paying again turns them back on at once.
    standing_set(status="active")
    assert "data-editable" in admin_client.get("/records/people/").content.decode()


def test_a_running_subscription_changes_plan_from_the_billing_page_prorated_and_limits_follow_at_once(
    admin_client, fake_stripe, tenant, make_user, client_for
):
    from billing.services import customer_ensure, subscription_sync
    from tenants.models import Tenant

    account = customer_ensure(workspace=tenant, email="admin@alpha.test")
    prices = {p["lookup_key"]: p for p in fake_stripe.prices.values()}
    sub = fake_stripe.subscription_create(
        customer=account.stripe_customer_id,
        prices=[prices["tessera_starter_monthly"], prices["tessera_starter_api_calls_monthly"]],
        metadata={"workspace_id": str(tenant.pk)},
    )
    subscription_sync(subscription_id=sub["id"])
    page = admin_client.get("/billing/").content.decode()
    assert 'data-testid="change-pro"' in page and 'data-testid="checkout-pro"' not in page
    assert 'data-testid="change-starter"' not in page  # the current plan
    manager = client_for(tenant, make_user(Role.MANAGER))
    assert manager.post("/billing/plan/", {"plan": "pro", "interval": "year"}).status_code == 403
    changed = admin_client.post("/billing/plan/", {"plan": "pro", "interval": "year"}, follow=True).content.decode()
    assert "The plan is now Pro; the difference is prorated" in changed
    (update,) = fake_stripe.updates  # one update of the subscription in place, not a new subscription
    assert update["subscription"] == sub["id"] and update["proration_behavior"] == "create_prorations"
    keys = sorted(i["price"]["lookup_key"] for i in fake_stripe.subscriptions[sub["id"]]["items"]["data"])
    assert keys == ["tessera_pro_api_calls_yearly", "tessera_pro_yearly"]  # the metered item follows
    assert len(fake_stripe.subscriptions) == 1
    assert Tenant.objects.get(pk=tenant.pk).plan == "pro"  # Pro's limits apply at once
    assert "<strong>Pro</strong>" in changed and 'data-limit="records"' in changed and 'max="2000000"' in changed
    again = admin_client.post("/billing/plan/", {"plan": "pro", "interval": "year"}, follow=True).content.decode()
    assert "on Pro already" in again and len(fake_stripe.updates) == 1
