"""The inspector: a workspace's test receiver URL that records what it gets (method, headers without
credentials, the body up to a cap), answers 200, refuses floods with 429, never answers 500 whatever
arrives, and belongs to one workspace only. Deliveries of the workspace to it are recorded in-process
(webhooks.inspector.inspector_deliver), never over HTTP."""

from __future__ import annotations

import html

import pytest

from core.token_buckets import Limit
from tests.conftest import host_of
from tests.html_forms import form_with_button
from webhooks import inspector
from webhooks.inspector import inspector_bin_create, inspector_bin_for_url, inspector_deliver
from webhooks.models import InspectorBin, InspectorRequest


@pytest.fixture
def bin(tenant, admin_user):
    return inspector_bin_create(actor=admin_user, name="Sandbox")


@pytest.fixture
def sender(tenant, client_for):
    """Anyone on the internet: no session, CSRF checks on (the receiver is exempt)."""
    return client_for(tenant, enforce_csrf_checks=True)


def path_of(bin: InspectorBin) -> str:
    return f"/webhooks/inspect/{bin.token}"


def test_a_post_is_recorded_with_its_headers_and_body(bin, sender):
    response = sender.post(
        path_of(bin),
        '{"type": "test.ping"}',
        content_type="application/json",
        HTTP_WEBHOOK_ID="msg_1",
        HTTP_AUTHORIZATION="Bearer secret",
        HTTP_COOKIE="sessionid=abc",
    )
    assert response.status_code == 200 and response.json() == {"received": True}
    received = bin.requests.get()
    assert received.method == "POST" and received.body == '{"type": "test.ping"}'
    names = {k.lower() for k in received.headers}
    assert "webhook-id" in names and "content-type" in names
    assert not names & {"authorization", "cookie"}  # credentials of whoever sent it are never kept


def test_any_method_is_recorded_but_a_browser_get_only_reads(bin, sender):
    assert sender.get(path_of(bin)).status_code == 200
    for method in ("put", "patch", "delete"):
        assert getattr(sender, method)(path_of(bin), "x", content_type="text/plain").status_code == 200
    assert sorted(bin.requests.values_list("method", flat=True)) == ["DELETE", "PATCH", "PUT"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", "application/json"),
        (b"\xff\xfe\x00\x01 not utf-8 \x00", "application/octet-stream"),
        (b'{"unterminated": ', "application/json"),
        (b"--nope\r\nContent-Disposition: form-data\r\n\r\nbroken", "multipart/form-data; boundary=nope"),
        (b"multipart without boundary", "multipart/form-data"),
        (b"a=1&b=%zz&&=", "application/x-www-form-urlencoded"),
        ("emoji ✓ and NUL \x00".encode(), "text/plain; charset=utf-8"),
    ],
)
def test_no_body_ever_makes_it_fail(bin, sender, body, content_type):
    response = sender.post(path_of(bin), body, content_type=content_type)
    assert response.status_code == 200
    assert bin.requests.count() == 1
    assert "\x00" not in bin.requests.get().body


def test_a_large_body_is_kept_up_to_the_cap(bin, sender):
    body = b"x" * (inspector.BODY_CAP + 5000)
    assert sender.post(path_of(bin), body, content_type="text/plain").status_code == 200
    kept = bin.requests.get().body
    assert kept.startswith("x" * inspector.BODY_CAP) and f"{len(body)} bytes received" in kept
    assert len(kept) < inspector.BODY_CAP + 200


def test_unknown_tokens_are_404(tenant, sender):
    for token in ("a" * 32, "%00" * 20, "short", "x" * 65):
        assert sender.post("/webhooks/inspect/" + token, "{}", content_type="application/json").status_code == 404
    assert not InspectorRequest.objects.exists()


def test_floods_get_429_and_only_the_latest_requests_are_kept(bin, sender, settings, monkeypatch):
    settings.TESSERA_RATE_LIMIT_SCALE = 1
    settings.TESSERA_COUNTERS_NAMESPACE = f"test-inspector-{bin.token}"
    monkeypatch.setattr(inspector, "LIMIT", Limit(rate=0.01, burst=5))
    monkeypatch.setattr(inspector, "REQUESTS_KEPT", 3)
    answers = [sender.post(path_of(bin), str(n), content_type="text/plain").status_code for n in range(7)]
    assert answers == [200] * 5 + [429] * 2
    assert sorted(bin.requests.values_list("body", flat=True)) == ["2", "3", "4"]


def test_the_workspaces_own_deliveries_are_recorded_without_http(tenant, bin):
    url = f"https://{host_of(tenant)}/webhooks/inspect/{bin.token}"
    assert inspector_bin_for_url(url) == bin
    answer = inspector_deliver(url=url, headers={"webhook-id": "msg_9"}, body='{"a": 1}')
    assert answer is not None and answer.status == 200
    assert bin.requests.get().headers == {"webhook-id": "msg_9"}
    # Anything else is delivered over HTTP (through the SSRF guard): another path, another token.
    for other in (
        f"https://{host_of(tenant)}/webhooks/inspect/{'b' * 32}",
        f"https://{host_of(tenant)}/elsewhere/{bin.token}",
        f"ftp://{host_of(tenant)}/webhooks/inspect/{bin.token}",
        "not a url",
    ):
        assert inspector_deliver(url=other, headers={}, body="{}") is None, other


def test_admins_create_clear_and_delete_inspector_urls(tenant, admin_user, client_for, sender):
    browser = client_for(tenant, admin_user, enforce_csrf_checks=True)
    page = browser.get("/webhooks/inspector/")
    created = form_with_button(page, "Create inspector URL").submit(browser, "/webhooks/inspector/", name="Mine")
    assert created.status_code == 302
    bin = InspectorBin.objects.get(name="Mine")
    sender.post(path_of(bin), "hello", content_type="text/plain")

    detail = browser.get(created["Location"])
    shown = html.unescape(detail.content.decode())
    assert f"/webhooks/inspect/{bin.token}" in shown and "hello" in shown
    form_with_button(detail, "Clear received requests").submit(browser, created["Location"])
    assert not bin.requests.exists()
    form_with_button(browser.get(created["Location"]), "Delete this URL").submit(browser, created["Location"])
    assert sender.post(path_of(bin), "late", content_type="text/plain").status_code == 404


@pytest.mark.saas_only
def test_another_workspaces_inspector_is_not_reachable_here(tenant, tenant_b, sender, admin_user, client_for):
    from accounts.models import User
    from tenants.runtime import workspace_context

    with workspace_context(tenant_b):
        theirs = inspector_bin_create(actor=User.objects.get(email="admin@beta.test"))
    assert sender.post(path_of(theirs), "{}", content_type="application/json").status_code == 404
    assert client_for(tenant, admin_user).get(f"/webhooks/inspector/{theirs.pk}/").status_code == 404
    # Their inspector URL is not "ours" for deliveries either: it would go through the SSRF guard.
    assert inspector_bin_for_url(f"https://{host_of(tenant_b)}/webhooks/inspect/{theirs.token}") is None
    with workspace_context(tenant_b):
        assert not InspectorRequest.objects.exists()
