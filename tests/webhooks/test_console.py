"""The console's webhook pages, driven as a browser without JavaScript would: endpoints with their
health, create/edit with inline errors, the signing secret (reveal, rotate with an overlap), test
events, the delivery log with its filters, resend, recover, retention, the disabled banner; Admins
only, every action audited, another workspace's objects never reachable."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks import Webhook

from audit.models import AuditEvent
from rbac.roles import Role
from tests.conftest import host_of
from tests.html_forms import form_with_button
from webhooks import maintenance, selectors, services
from webhooks.delivery import delivery_attempt
from webhooks.inspector import inspector_bin_create
from webhooks.models import Delivery, Endpoint, Event, WebhookSettings

LIST = "/webhooks/"
NEW = "/webhooks/endpoints/new/"


def text(response) -> str:
    return html.unescape(response.content.decode())


@pytest.fixture
def browser(tenant, admin_user, client_for):
    """The Admin, with CSRF checks on, as in a real browser."""
    return client_for(tenant, admin_user, enforce_csrf_checks=True)


@pytest.fixture
def inspector_url(tenant, admin_user):
    bin = inspector_bin_create(actor=admin_user, name="Sandbox")
    return bin, f"http://{host_of(tenant)}/webhooks/inspect/{bin.token}"


def add_endpoint(browser, **changes):
    form = form_with_button(browser.get(NEW), "Add endpoint")
    return form.submit(browser, NEW, **changes)


def secret_shown(response) -> str:
    match = re.search(r'value="(whsec_[^"]+)" data-testid="signing-secret"', response.content.decode())
    assert match, "the page shows no signing secret"
    return match.group(1)


def endpoint_of(admin_user, url: str, *, livemode: bool = False, **kw) -> Endpoint:
    endpoint, _ = services.endpoint_create(actor=admin_user, url=url, livemode=livemode, **kw)
    return endpoint


# --- who may see it ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ANALYST, Role.VIEWER])
def test_only_admins_reach_any_webhooks_page(tenant, admin_user, client_for, make_user, inspector_url, role):
    bin, url = inspector_url
    endpoint = endpoint_of(admin_user, url)
    maintenance.test_event_send(actor=admin_user, endpoint=endpoint)
    delivery = Delivery.objects.get(endpoint=endpoint)
    member = client_for(tenant, make_user(role=role))

    pages = [
        LIST,
        NEW,
        f"/webhooks/endpoints/{endpoint.pk}/",
        f"/webhooks/endpoints/{endpoint.pk}/edit/",
        f"/webhooks/endpoints/{endpoint.pk}/delete/",
        f"/webhooks/endpoints/{endpoint.pk}/rotate/",
        f"/webhooks/endpoints/{endpoint.pk}/recover/",
        "/webhooks/deliveries/",
        f"/webhooks/deliveries/{delivery.pk}/",
        "/webhooks/settings/",
        "/webhooks/docs/",
        "/webhooks/inspector/",
        f"/webhooks/inspector/{bin.pk}/",
    ]
    for path in pages:
        assert member.get(path).status_code == 403, path
    posts = [
        NEW,
        f"/webhooks/endpoints/{endpoint.pk}/secret/",
        f"/webhooks/endpoints/{endpoint.pk}/test/",
        f"/webhooks/endpoints/{endpoint.pk}/delete/",
        f"/webhooks/deliveries/{delivery.pk}/resend/",
        "/webhooks/settings/",
        f"/webhooks/inspector/{bin.pk}/delete/",
    ]
    for path in posts:
        assert member.post(path, {"url": "https://example.com/x", "retention_days": "5"}).status_code == 403, path
    assert Endpoint.objects.filter(pk=endpoint.pk).exists()
    assert WebhookSettings.objects.filter(retention_days=5).count() == 0
    assert "/webhooks/" not in text(member.get("/"))  # nor is it in their navigation


def test_admins_find_webhooks_in_the_navigation(browser):
    assert 'href="/webhooks/"' in browser.get("/").content.decode()


# --- endpoints -----------------------------------------------------------------------------------


def test_add_an_endpoint_reveal_its_secret_and_see_it_audited(browser, inspector_url):
    _, url = inspector_url
    response = add_endpoint(
        browser, url=url, description="Sandbox receiver", event_types=["record.*", "test.ping"], headers="X-Token: abc"
    )
    assert response.status_code == 302
    endpoint = Endpoint.objects.get()
    assert (endpoint.url, endpoint.livemode, endpoint.enabled) == (url, False, True)  # test mode by default
    assert endpoint.event_types == ["record.*", "test.ping"] and endpoint.headers == {"X-Token": "abc"}

    page = browser.get(response["Location"])
    assert url in text(page) and "Sandbox receiver" in text(page) and "whsec_" not in text(page)
    revealed = form_with_button(page, "Reveal secret").submit(browser, response["Location"])
    assert revealed.status_code == 200 and "no-store" in revealed["Cache-Control"]
    secret = secret_shown(revealed)
    assert selectors.endpoint_secrets_valid(endpoint) == [secret]
    assert AuditEvent.objects.filter(action="webhook_endpoint.created", target_id=endpoint.pk).exists()

    assert browser.get(f"/webhooks/endpoints/{endpoint.pk}/secret/").status_code == 405  # never by a link


@pytest.mark.parametrize(
    ("changes", "field_error"),
    [
        ({"url": ""}, "Enter the URL"),
        ({"url": "ftp://example.com/hook"}, "http:// or https://"),
        ({"url": "not a url"}, "http:// or https://"),
        ({"url": "http://127.0.0.1:8000/hook"}, "loopback"),
        ({"url": "http://169.254.169.254/latest/meta-data"}, "link-local"),
        ({"url": "http://10.1.2.3/hook"}, "private"),
        ({"headers": "webhook-signature: forged"}, "webhook-* headers"),
        ({"headers": "Webhook-Id: 1"}, "webhook-* headers"),
        ({"headers": "Connection: close"}, "connection-level header"),
        ({"headers": "Transfer-Encoding: chunked"}, "connection-level header"),
        ({"headers": "Bad Name: x"}, "not a valid header name"),
        ({"headers": "just text"}, "“Name: value”"),
        ({"headers": "X-A: 1\nX-A: 2"}, "given twice"),
        ({"rate_limit_per_second": "0"}, "greater than or equal to 1"),
        ({"rate_limit_per_second": "many"}, "whole number"),
        ({"event_types": ["nothing.here"]}, "Select a valid choice"),
        ({"description": "nul\x00byte"}, "Null characters are not allowed"),
    ],
)
def test_bad_endpoint_input_is_a_form_error_not_a_500(browser, changes, field_error):
    data = {"url": "https://example.com/hook", **changes}
    response = add_endpoint(browser, **data)
    assert response.status_code == 400
    assert field_error in text(response)
    assert 'class="field invalid"' in response.content.decode() or "field invalid" in response.content.decode()
    assert not Endpoint.objects.exists()


def test_edit_an_endpoint_and_its_form_errors(browser, admin_user, inspector_url):
    _, url = inspector_url
    endpoint = endpoint_of(admin_user, url, headers={"X-Token": "abc"})
    page = browser.get(f"/webhooks/endpoints/{endpoint.pk}/edit/")
    assert "X-Token: abc" in text(page)
    form = form_with_button(page, "Save")

    bad = form.submit(browser, page.request["PATH_INFO"], headers="Host: evil.example")
    assert bad.status_code == 400 and "connection-level header" in text(bad)

    ok = form.submit(browser, page.request["PATH_INFO"], description="Renamed", rate_limit_per_second="5", enabled="")
    assert ok.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.description, endpoint.rate_limit_per_second, endpoint.enabled) == ("Renamed", 5, False)
    assert AuditEvent.objects.filter(action="webhook_endpoint.updated", target_id=endpoint.pk).exists()


def test_rotate_the_secret_keeps_the_old_one_for_the_overlap(browser, admin_user, inspector_url):
    _, url = inspector_url
    endpoint, old = services.endpoint_create(actor=admin_user, url=url, livemode=False)
    path = f"/webhooks/endpoints/{endpoint.pk}/rotate/"
    assert (
        form_with_button(browser.get(path), "Rotate secret").submit(browser, path, overlap="bogus").status_code == 400
    )
    response = form_with_button(browser.get(path), "Rotate secret").submit(browser, path, overlap="3600")
    assert response.status_code == 302

    valid = selectors.endpoint_secrets_valid(endpoint)
    assert len(valid) == 2 and valid[1] == old
    detail = f"/webhooks/endpoints/{endpoint.pk}/"
    revealed = form_with_button(browser.get(detail), "Reveal secret").submit(browser, detail)
    assert secret_shown(revealed) == valid[0] != old
    assert "previous secret stays valid" in text(revealed)
    assert AuditEvent.objects.filter(action="webhook_endpoint.secret_rotated", target_id=endpoint.pk).exists()


def test_malformed_ids_in_urls_are_404(browser):
    for path in (
        "/webhooks/endpoints/%00/",
        "/webhooks/endpoints/ep_x%00y/edit/",
        "/webhooks/endpoints/%F0%9F%92%A9/",
        "/webhooks/deliveries/99999999999999999999999/",
        "/webhooks/inspector/99999999999999999999999/",
    ):
        assert browser.get(path).status_code == 404, path


def test_delete_an_endpoint_after_confirming(browser, admin_user, inspector_url):
    endpoint = endpoint_of(admin_user, inspector_url[1])
    path = f"/webhooks/endpoints/{endpoint.pk}/delete/"
    response = form_with_button(browser.get(path), "Delete endpoint").submit(browser, path)
    assert response.status_code == 302 and not Endpoint.objects.filter(pk=endpoint.pk).exists()
    assert AuditEvent.objects.filter(action="webhook_endpoint.deleted", target_id=endpoint.pk).exists()
    assert browser.get(f"/webhooks/endpoints/{endpoint.pk}/").status_code == 404


# --- test events, the delivery log, health ---------------------------------------------------------


def test_a_test_event_reaches_the_inspector_signed_and_shows_in_the_log_and_health(browser, admin_user, inspector_url):
    bin, url = inspector_url
    endpoint, secret = services.endpoint_create(actor=admin_user, url=url, livemode=False)
    detail = f"/webhooks/endpoints/{endpoint.pk}/"
    sent = form_with_button(browser.get(detail), "Send test event").submit(browser, detail)
    assert sent.status_code == 302
    delivery = Delivery.objects.get(endpoint=endpoint)
    assert delivery.event.type == "test.ping" and delivery.status == Delivery.Status.PENDING

    delivery_attempt(delivery.pk)  # what the worker does with it (the inspector records it in-process)

    received = bin.requests.get()
    headers = {k.lower(): v for k, v in received.headers.items()}
    assert headers["webhook-id"] == delivery.event_id
    event = Webhook(secret).verify(received.body, headers)  # a partner's verification passes
    assert event["type"] == "test.ping" and event["data"]["object"]["endpoint"] == endpoint.pk

    log = text(browser.get(detail))
    assert "test.ping" in log and "Succeeded" in log
    listing = text(browser.get(LIST))
    assert 'data-testid="success-rate">100%' in listing
    attempt_page = text(browser.get(f"/webhooks/deliveries/{delivery.pk}/"))
    assert "webhook-signature" in attempt_page and "200" in attempt_page and '"received": true' in attempt_page
    bin_page = text(browser.get(f"/webhooks/inspector/{bin.pk}/"))
    assert delivery.event_id in bin_page and "Hello from Tessera" in bin_page


def _delivery(endpoint, type_: str, status: str, *, created_at=None) -> Delivery:
    now = created_at or timezone.now()
    event = Event.objects.create(
        type=type_, livemode=endpoint.livemode, payload={"type": type_, "timestamp": "t", "data": {}}, created_at=now
    )
    return Delivery.objects.create(
        event=event, endpoint=endpoint, livemode=endpoint.livemode, status=status, created_at=now, attempts=1
    )


def test_the_delivery_log_filters_by_status_event_and_endpoint(browser, admin_user, inspector_url):
    one = endpoint_of(admin_user, inspector_url[1])
    two = endpoint_of(admin_user, inspector_url[1], description="second")
    ok = _delivery(one, "record.created", Delivery.Status.SUCCEEDED)
    failed = _delivery(one, "record.deleted", Delivery.Status.FAILED)
    other = _delivery(two, "member.joined", Delivery.Status.FAILED)

    def shown(query: str) -> set[int]:
        response = browser.get("/webhooks/deliveries/" + query)
        assert response.status_code == 200
        return {int(pk) for pk in re.findall(r'data-delivery="(\d+)"', response.content.decode())}

    assert shown("") == {ok.pk, failed.pk, other.pk}
    assert shown("?status=failed") == {failed.pk, other.pk}
    assert shown("?event_type=record.deleted") == {failed.pk}
    assert shown("?event_type=record.*") == {ok.pk, failed.pk}
    assert shown(f"?endpoint={two.pk}&status=failed") == {other.pk}
    assert browser.get("/webhooks/deliveries/?status=bogus").status_code == 400  # a filter error, not a 500


def test_resend_one_and_recover_a_window(browser, admin_user, inspector_url):
    endpoint = endpoint_of(admin_user, inspector_url[1])
    old = _delivery(endpoint, "record.created", Delivery.Status.FAILED, created_at=timezone.now() - timedelta(days=3))
    recent = _delivery(
        endpoint, "record.updated", Delivery.Status.FAILED, created_at=timezone.now() - timedelta(hours=2)
    )

    page = browser.get(f"/webhooks/deliveries/{old.pk}/")
    assert form_with_button(page, "Resend").submit(browser, page.request["PATH_INFO"]).status_code == 302
    old.refresh_from_db()
    assert old.status == Delivery.Status.PENDING
    assert AuditEvent.objects.filter(action="webhook_delivery.resent").exists()

    path = f"/webhooks/endpoints/{endpoint.pk}/recover/"
    form = form_with_button(browser.get(path), "Recover")
    bad = form.submit(browser, path, since="2026-01-02T10:00", until="2026-01-01T10:00")
    assert bad.status_code == 400 and "after “From”" in text(bad)
    since = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = form.submit(browser, path, since=since, until="")
    assert response.status_code == 302
    assert "1 failed delivery queued" in text(browser.get(response["Location"]))
    recent.refresh_from_db()
    assert recent.status == Delivery.Status.PENDING
    assert AuditEvent.objects.filter(action="webhook_deliveries.recovered", target_id=endpoint.pk).exists()


def test_payload_retention_is_1_to_90_days(browser):
    path = "/webhooks/settings/"
    form = form_with_button(browser.get(path), "Save")
    for bad in ("0", "91", "ten", ""):
        response = form.submit(browser, path, retention_days=bad)
        assert response.status_code == 400, bad
    assert form.submit(browser, path, retention_days="7").status_code == 302
    assert WebhookSettings.objects.get().retention_days == 7
    assert 'value="7"' in browser.get(path).content.decode()
    assert AuditEvent.objects.filter(action="webhook_settings.changed").exists()


def test_a_disabled_endpoint_shows_a_banner_with_its_reason(browser, admin_user, inspector_url):
    endpoint = endpoint_of(admin_user, inspector_url[1])
    services.endpoint_disable_for_failures(endpoint=endpoint, reason="410 Gone")
    for path in (LIST, f"/webhooks/endpoints/{endpoint.pk}/"):
        page = text(browser.get(path))
        assert 'data-testid="endpoint-disabled"' in page and "410 Gone" in page, path


def test_the_developer_docs_show_verification_snippets_and_the_catalogue(browser):
    page = text(browser.get("/webhooks/docs/"))
    assert "from standardwebhooks import Webhook" in page
    assert 'import { Webhook } from "standardwebhooks"' in page
    assert "idempotency key" in page and "Order is not guaranteed" in page
    assert 'id="record.created"' in page and 'id="test.ping"' in page


# --- isolation -------------------------------------------------------------------------------------


@pytest.mark.saas_only
def test_another_workspaces_endpoints_and_deliveries_are_404(browser, admin_client, tenant, tenant_b):
    from accounts.models import User
    from tenants.runtime import workspace_context

    with workspace_context(tenant_b):
        b_admin = User.objects.get(email="admin@beta.test")
        theirs, _ = services.endpoint_create(actor=b_admin, url="https://example.com/beta", livemode=False)
        maintenance.test_event_send(actor=b_admin, endpoint=theirs)
        their_delivery = Delivery.objects.get(endpoint=theirs)
        their_bin = inspector_bin_create(actor=b_admin)
    for path in (
        f"/webhooks/endpoints/{theirs.pk}/",
        f"/webhooks/endpoints/{theirs.pk}/edit/",
        f"/webhooks/deliveries/{their_delivery.pk}/",
        f"/webhooks/inspector/{their_bin.pk}/",
    ):
        assert browser.get(path).status_code == 404, path
    for action in ("secret", "delete", "test", "rotate"):
        assert admin_client.post(f"/webhooks/endpoints/{theirs.pk}/{action}/").status_code == 404, action
    assert admin_client.post(f"/webhooks/deliveries/{their_delivery.pk}/resend/").status_code == 404
    assert "example.com/beta" not in text(browser.get(LIST))
    with workspace_context(tenant_b):
        assert Endpoint.objects.filter(pk=theirs.pk).exists()
