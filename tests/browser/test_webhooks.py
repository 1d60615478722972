"""Webhooks in a real browser against the real server: an Admin makes an inspector URL, adds a test
endpoint pointing at it, reveals the signing secret, sends a test event and finds it in the delivery
log and in the inspector, signed. The delivery itself is run here, as the worker would run it
(webhooks.delivery.delivery_attempt): tests/webhooks has the real-worker tests.

The server encrypts signing secrets with a key derived from its own (random) SECRET_KEY, which a real
worker shares and this test process does not: standing in for the worker, the test stores the secret
the browser revealed under its own key first."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect
from standardwebhooks import Webhook

from tests.conftest import SAAS

pytestmark = pytest.mark.browser

PASSWORD = "Hook-admin-browser-47"


def url_of(server, path: str) -> str:
    return server.tenant_url("alpha", path) if SAAS else server.url(path)


@pytest.fixture
def webhook_admin(tessera_server, tenants_provisioned, db_commit):
    """A committed Admin of alpha the server can verify (Argon2); removed afterwards with what the
    test made (endpoints, inspector URLs)."""
    email = f"hooks-{uuid.uuid4().hex[:10]}@example.com"
    tenant = tenants_provisioned["alpha"]

    def create():
        from django.contrib.auth.hashers import Argon2PasswordHasher

        from accounts.services import user_create
        from rbac.roles import Role
        from tenants.runtime import workspace_context

        with workspace_context(tenant):
            user = user_create(email=email, password=None, full_name="Hana Hooks", role=Role.ADMIN)
            hasher = Argon2PasswordHasher()
            user.password = hasher.encode(PASSWORD, hasher.salt())
            user.save(update_fields=["password"])

    db_commit(create)
    yield email

    def remove():
        from accounts.models import User
        from tenants.runtime import workspace_context
        from webhooks.models import Endpoint, Event, InspectorBin

        with workspace_context(tenant):
            user = User.objects.get(email=email)
            Event.objects.filter(deliveries__endpoint__created_by=user).delete()
            Endpoint.objects.filter(created_by=user).delete()
            InspectorBin.objects.filter(created_by=user).delete()
            user.delete()

    db_commit(remove)


def run_delivery(tenant, endpoint_id: str, secret: str) -> dict:
    """What the worker does with the pending test delivery; returns what the inspector recorded."""
    from core.secrets_at_rest import secret_encrypt
    from tenants.runtime import workspace_context
    from webhooks.delivery import delivery_attempt
    from webhooks.models import Delivery, EndpointSecret, InspectorRequest
    from webhooks.selectors import endpoint_secrets_valid

    with workspace_context(tenant):
        EndpointSecret.objects.filter(endpoint_id=endpoint_id).update(secret_encrypted=secret_encrypt(secret))
        delivery = Delivery.objects.select_related("endpoint").get(endpoint_id=endpoint_id)
        delivery_attempt(delivery.pk)
        received = InspectorRequest.objects.get(headers__icontains=delivery.event_id)
        return {
            "event_id": delivery.event_id,
            "secret": endpoint_secrets_valid(delivery.endpoint)[0],
            "headers": {k.lower(): v for k, v in received.headers.items()},
            "body": received.body,
        }


def test_an_endpoint_at_the_inspector_receives_a_signed_test_event(
    tessera_server, browser_context, webhook_admin, tenants_provisioned, db_commit
):
    server, page = tessera_server, browser_context().new_page()
    page.goto(url_of(server, "/webhooks/"))
    page.get_by_label("E-mail").fill(webhook_admin)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url_of(server, "/webhooks/"))

    tabs = page.get_by_role("navigation", name="Webhooks")
    tabs.get_by_role("link", name="Inspector").click()
    page.get_by_label("Name").fill("Browser sandbox")
    page.get_by_role("button", name="Create inspector URL").click()
    inspector_url = page.get_by_test_id("inspector-url").input_value()
    assert re.fullmatch(re.escape(url_of(server, "/webhooks/inspect/")) + r"[\w-]{16,64}", inspector_url)
    inspector_page = page.url

    page.get_by_role("link", name="Add a test endpoint with this URL").click()
    expect(page.get_by_label("Endpoint URL")).to_have_value(inspector_url)
    expect(page.get_by_label("Test — receives sandbox events only")).to_be_checked()
    page.get_by_role("textbox", name="Description").fill("Browser test")
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.get_by_test_id("endpoint-url")).to_have_text(inspector_url)
    endpoint_id = page.url.rstrip("/").rsplit("/", 1)[-1]

    page.get_by_role("button", name="Reveal secret").click()
    secret = page.get_by_test_id("signing-secret").input_value()
    assert secret.startswith("whsec_")
    page.get_by_role("link", name="Back to the endpoint").click()

    page.get_by_role("button", name="Send test event").click()
    expect(page.get_by_text("Test event test.ping sent")).to_be_visible()

    received = db_commit(run_delivery, tenants_provisioned["alpha"], endpoint_id, secret)
    assert received["secret"] == secret
    event = Webhook(secret).verify(received["body"], received["headers"])
    assert event["type"] == "test.ping"

    page.reload()
    row = page.get_by_test_id("deliveries").locator("tr", has_text="test.ping")
    expect(row.get_by_test_id("delivery-status")).to_have_text("Succeeded")
    page.get_by_role("link", name="The whole log of this endpoint").click()
    expect(page.get_by_test_id("deliveries").get_by_text(received["event_id"])).to_be_visible()

    page.goto(inspector_page)
    expect(page.get_by_test_id("inspector-request").first).to_contain_text(received["event_id"])
    expect(page.get_by_test_id("inspector-request").first).to_contain_text("Hello from Tessera")
