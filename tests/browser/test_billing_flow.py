"""A workspace's whole billing life in a real browser (Debian's chromium through Playwright), against a
real server, a real Celery worker and real PostgreSQL schemas — and a FAKE Stripe.

Stripe's servers cannot be reached from the machines the tests run on, so Stripe is played by
tests/billing/fake_stripe.py: a small HTTP server speaking the endpoints Tessera uses, with Stripe's
published example objects, serving a stand-in Checkout page and sending webhook events signed exactly
as Stripe signs them. Everything on Tessera's side is real: the official `stripe` SDK (pointed at the
fake by TESSERA_STRIPE_API_BASE), the webhook receiver, the Celery worker that processes each event by
re-reading the subscription, the console and the API.

The life: sign up (Free) → the billing page's usage bars → a limit reached (Free's one scheduled
report) → upgrade through Checkout → trial → the limit lifted at once → the trial ends and an invoice
is paid (active) → a payment fails (past due: a banner, still writable) → the grace period ends
(read-only: the console offers no write and says why, the API refuses with 402 payment_required) →
another workspace is unaffected → the invoice is paid → writable again at once.

What the model leaves out: payments themselves (the test decides when Stripe says an invoice failed or
was paid, as Stripe's dunning would), the seven days of grace (the test moves the start of the past-due
period back, as time would), and the Customer Portal's own pages. The sync websocket's refusal of a
read-only workspace is tested in tests/sync/test_plan_limits.py.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from datetime import time as clock

import pytest
from playwright.sync_api import expect

from tests.live_server import database_env, start_server

pytestmark = [pytest.mark.browser, pytest.mark.saas_only]

PASSWORD = "Tessera-billing-pass-42"
WAIT_S = 60  # for the worker to process a Stripe event on a busy machine


@pytest.fixture
def stripe_world(tessera_server, db_commit, settings, tmp_path, django_db_blocker):
    """The fake Stripe with the plan catalogue synced into it (by billing's own command code), a private
    Redis as the Celery broker, a server of this test's own pointed at both, and a Celery worker."""
    from django.db import connection

    from billing import stripe_api
    from billing.catalogue import catalogue_sync
    from tests.billing.fake_stripe import FakeStripe
    from tests.webhooks.conftest import Broker, RedisServer, Worker

    fake = FakeStripe().start()
    settings.STRIPE_API_BASE, settings.STRIPE_SECRET_KEY = fake.url, "sk_test_fake"
    stripe_api._clients.clear()
    catalogue_sync()
    redis_server = RedisServer(tmp_path / "redis")
    redis_server.start()
    broker = Broker(tmp_path / "broker", redis_server)
    stripe_env = {
        "TESSERA_STRIPE_API_BASE": fake.url,
        "TESSERA_STRIPE_SECRET_KEY": "sk_test_fake",
        "TESSERA_STRIPE_WEBHOOK_SECRETS": fake.webhook_secret,
        "TESSERA_SECRET_KEY": settings.SECRET_KEY,  # the worker's: one key for secrets at rest
        **broker.worker_env(),
    }
    server = start_server(database_env(connection), settings.TESSERA_BASE_DOMAIN, extra_env=stripe_env)
    worker = Worker(broker, tmp_path / "worker", connection, concurrency=1, extra_env=stripe_env)
    try:
        worker.start(timeout=120)
        fake.webhook_url = server.url("/stripe/webhooks")
        fake.webhook_host = f"{settings.TESSERA_BASE_DOMAIN}:{server.port}"  # the public host
        yield fake, server, worker
    finally:
        worker.stop()
        server.stop()
        redis_server.stop()
        fake.stop()
        stripe_api._clients.clear()


@pytest.fixture
def new_slug(db_commit):
    slug = "bill-" + uuid.uuid4().hex[:10]
    yield slug

    def drop():
        from tenants.models import Tenant
        from tenants.services import tenant_drop

        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is not None:
            tenant_drop(tenant=tenant)

    db_commit(drop)


def reload_until(page, url: str, locator_of, *, timeout: float = WAIT_S) -> None:
    """Open `url` again until `locator_of(page)` shows (an event's processing is asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        page.goto(url)
        if locator_of(page).count():
            return
        if time.monotonic() > deadline:
            expect(locator_of(page)).to_be_visible(timeout=1)  # fails with Playwright's own message
        time.sleep(0.5)


def api_post(server, slug: str, key: str, path: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        server.url(path),
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Host": f"{slug}.{server.base_domain}:{server.port}",
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
        },
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_workspace_billing_life_from_free_to_read_only_and_back(
    stripe_world, browser_context, db_commit, new_slug, snap
):
    fake, server, _worker = stripe_world
    slug, uid = new_slug, new_slug[5:]
    url = lambda path: server.tenant_url(slug, path)  # noqa: E731

    # 1. Sign up on the public site (the Free plan); land logged in on the workspace.
    page = browser_context().new_page()
    page.goto(server.public_url("/"))
    page.get_by_label("Business name").fill(f"Billing Co {uid}")
    page.get_by_label("Workspace address").fill(slug)
    page.get_by_label("Your name").fill("Bea Owner")
    page.get_by_label("Work e-mail").fill(f"owner-{uid}@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    # Provisioning clones a schema: slow on a busy machine.
    page.get_by_role("button", name="Create workspace").click(timeout=120_000)
    page.wait_for_url(url("/"), timeout=120_000)

    # Data of the workspace's own, through the services: a collection, a saved query with the one
    # scheduled report Free allows, and a live API key.
    def seed():
        from accounts.models import User
        from analytics.reports import report_schedule_create
        from analytics.services import saved_query_create
        from partners.services import api_key_create
        from records.services import collection_create
        from tenants.models import Tenant
        from tenants.runtime import workspace_context

        with workspace_context(Tenant.objects.get(slug=slug)):
            owner = User.objects.get(email=f"owner-{uid}@example.com")
            collection_create(actor=owner, name="Orders", slug="orders", fields=[{"key": "item", "type": "text"}])
            saved = saved_query_create(actor=owner, name="All orders", spec={"collection": "orders"})
            report_schedule_create(
                actor=owner, query=saved, frequency="daily", at_time=clock(7), recipients=["b@x.test"]
            )
            _, raw = api_key_create(actor=owner, name="shop", mode="live", scopes=["records:read", "records:write"])
            return saved.pk, raw

    query_pk, api_key = db_commit(seed)

    # 2. The billing page: the Free plan, no subscription, usage bars against every limit.
    page.goto(url("/billing/"))
    expect(page.get_by_test_id("billing-plan")).to_contain_text("Free")
    expect(page.get_by_test_id("billing-status")).to_have_text("No subscription")
    reports_row = page.locator('tr[data-limit="scheduled_reports"]')
    expect(reports_row.locator("meter")).to_have_attribute("value", "1")
    expect(reports_row.locator("meter")).to_have_attribute("max", "1")
    expect(page.locator('tr[data-limit="records"] meter')).to_have_attribute("max", "10000")
    snap(page, "free")

    # 3. The plan's limit reached: a second scheduled report is refused, saying why.
    page.goto(url(f"/analytics/queries/{query_pk}/"))
    page.get_by_test_id("schedule-recipients").fill("boss@example.com")
    page.get_by_test_id("schedule-add").click()
    expect(page.get_by_text("The Free plan allows 1 reports")).to_be_visible()

    # 4. Upgrade through (the fake's) Checkout: a 14-day trial of Starter.
    page.goto(url("/billing/"))
    page.get_by_test_id("checkout-starter").click()
    expect(page.get_by_role("heading", name="Fake Stripe Checkout")).to_be_visible()
    page.get_by_role("button", name="Subscribe").click()
    page.wait_for_url(url("/billing/?checkout=done"))
    reload_until(page, url("/billing/"), lambda p: p.get_by_test_id("billing-status").filter(has_text="Trialing"))
    expect(page.get_by_test_id("billing-plan")).to_contain_text("Starter")
    expect(page.get_by_test_id("trial-days")).to_have_text("Trial: 14 days left.")
    expect(page.locator('tr[data-limit="scheduled_reports"] meter')).to_have_attribute("max", "10")
    (subscription_id,) = fake.subscriptions

    # 5. The upgrade lifted the limit at once.
    page.goto(url(f"/analytics/queries/{query_pk}/"))
    page.get_by_test_id("schedule-recipients").fill("boss@example.com")
    page.get_by_test_id("schedule-add").click()
    expect(page.get_by_text("Scheduled “All orders”.")).to_be_visible()
    expect(page.get_by_test_id("schedules").locator("tbody tr")).to_have_count(2)

    # 6. The trial ends and the first invoice is paid: active.
    sub = fake.subscription_set(subscription_id, status="active", trial_end=None)
    fake.deliver("customer.subscription.updated", sub)
    fake.deliver("invoice.paid", fake.invoice_create(subscription_id=subscription_id, status="paid"))
    reload_until(page, url("/billing/"), lambda p: p.get_by_test_id("billing-status").filter(has_text="Active"))
    expect(page.get_by_test_id("invoices")).to_contain_text("FAKE-0001")

    # 7. A payment fails: past due, a banner with the day writes stop, still writable.
    fake.subscription_set(subscription_id, status="past_due")
    fake.deliver("invoice.payment_failed", fake.invoice_create(subscription_id=subscription_id, status="open"))
    reload_until(page, url("/records/orders/"), lambda p: p.get_by_test_id("billing-banner"))
    banner = page.get_by_test_id("billing-banner")
    expect(banner).to_contain_text("Payment failed.")
    expect(banner).to_contain_text("Writes stop on")
    expect(page.get_by_role("link", name="New record")).to_be_visible()
    snap(page, "past-due")

    # 8. The grace period ends (the test moves its start back seven days and more, as time would).
    def grace_over():
        from datetime import timedelta

        from django.utils import timezone

        from billing.models import BillingAccount
        from tenants.hostcache import workspace_changed

        BillingAccount.objects.filter(workspace__slug=slug).update(past_due_since=timezone.now() - timedelta(days=8))
        # Time passing changes no row; moving the row does, and API processes remember the workspace with
        # its billing account (tenants.hostcache) until told, as every real change tells them.
        workspace_changed(BillingAccount.objects.get(workspace__slug=slug).workspace_id)

    db_commit(grace_over)
    page.goto(url("/records/orders/"))
    expect(banner).to_contain_text("Read-only.")
    expect(page.locator("#billing-reason")).to_contain_text("Reading and exporting still work")
    expect(page.get_by_role("link", name="New record")).to_have_count(0)
    expect(page.get_by_role("link", name="Import CSV")).to_have_count(0)
    expect(page.get_by_test_id("export-csv")).to_be_visible()  # reads and exports go on
    page.goto(url("/records/orders/new/"))
    create = page.get_by_role("button", name="Create record")
    expect(create).to_be_disabled()
    expect(create).to_have_accessible_description(page.locator("#billing-reason").inner_text())
    page.goto(url("/members/"))
    expect(page.get_by_role("button", name="Send invitation")).to_be_disabled()
    snap(page, "read-only")
    status, body = api_post(server, slug, api_key, "/api/v1/collections/orders/records", {"data": {"item": "x"}})
    assert (status, body["code"]) == (402, "payment_required"), body
    assert body["billing_url"].endswith(f"{slug}.{server.base_domain}:{server.port}/billing/")

    # 9. Another workspace (beta, with an Admin of this test's own) is unaffected: it writes.
    beta_admin = f"beta-{uid}@example.com"

    def beta_admin_create():
        from django.contrib.auth.hashers import Argon2PasswordHasher  # the server's hasher (tests use MD5)

        from accounts.services import user_create
        from rbac.roles import Role
        from tenants.models import Tenant
        from tenants.runtime import workspace_context

        with workspace_context(Tenant.objects.get(slug="beta")):
            user = user_create(email=beta_admin, password=None, full_name="Beta Owner", role=Role.ADMIN)
            hasher = Argon2PasswordHasher()
            user.password = hasher.encode(PASSWORD, hasher.salt())
            user.save(update_fields=["password"])

    db_commit(beta_admin_create)
    other = browser_context().new_page()
    other.goto(server.tenant_url("beta", "/records/"))
    other.get_by_label("E-mail").fill(beta_admin)
    other.get_by_label("Password").fill(PASSWORD)
    other.get_by_role("button", name="Log in").click()
    other.wait_for_url(server.tenant_url("beta", "/records/"))
    expect(other.get_by_test_id("billing-banner")).to_have_count(0)
    other.get_by_label("Name", exact=True).fill(f"Beta things {uid}")
    other.get_by_role("button", name="Create collection").click()
    expect(other.get_by_text(f"Collection “Beta things {uid}” created.")).to_be_visible()

    # 10. The invoice is paid: full service at once.
    fake.subscription_set(subscription_id, status="active")
    fake.deliver("invoice.paid", fake.invoice_create(subscription_id=subscription_id, status="paid"))
    reload_until(page, url("/records/orders/"), lambda p: p.get_by_role("link", name="New record"))
    expect(page.get_by_test_id("billing-banner")).to_have_count(0)
    page.get_by_role("link", name="New record").click()
    page.locator('[name="f-item"]').fill("Paid again")
    page.get_by_role("button", name="Create record").click()
    expect(page.get_by_text("Record created.")).to_be_visible()
    status, body = api_post(server, slug, api_key, "/api/v1/collections/orders/records", {"data": {"item": "y"}})
    assert status == 201, body
    assert not fake.errors, fake.errors
