"""The console's API pages, driven as a browser without JavaScript would: list, create (the key shown
once), revoke with a confirmation, rotate with an overlap, usage charts, the first-API-call page;
Admins only."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from partners.models import ApiKey, ApiUsage
from partners.usage import usage_record
from rbac.roles import Role
from tests.conftest import host_of
from tests.html_forms import form_with_button, forms_of, nav_sections
from tests.partners.conftest import PING

pytestmark = [pytest.mark.urls("tests.partners.api_views"), pytest.mark.usefixtures("real_limits")]

LIST = "/api-keys/"


def text(response) -> str:
    return html.unescape(response.content.decode())


@pytest.fixture
def browser(tenant, admin_user, client_for):
    """The Admin, with CSRF checks on, as in a real browser."""
    return client_for(tenant, admin_user, enforce_csrf_checks=True)


def create_key(browser, **changes):
    form = form_with_button(browser.get(LIST), "Create key")
    data = {"name": "ERP sync", "mode": "live", "scopes": ["records:read", "events:read"], **changes}
    return form.submit(browser, LIST, **data)


def raw_key_shown(response) -> str:
    match = re.search(r'value="(tsk_(?:live|test)_[^"]+)" data-testid="raw-key"', response.content.decode())
    assert match, "the page does not show a new key"
    return match.group(1)


# --- who may see it ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ANALYST, Role.VIEWER])
def test_only_admins_reach_the_api_pages(tenant, client_for, make_user, make_key, role):
    key, _ = make_key()
    member = client_for(tenant, make_user(role=role))

    for path in (LIST, "/api-keys/first-call/", f"/api-keys/{key.pk}/", f"/api-keys/{key.pk}/revoke/"):
        assert member.get(path).status_code == 403, path
    assert member.post(LIST, {"name": "x", "mode": "test", "scopes": ["records:read"]}).status_code == 403
    assert member.post(f"/api-keys/{key.pk}/revoke/").status_code == 403
    assert member.post(f"/api-keys/{key.pk}/rotate/", {"overlap": "3600"}).status_code == 403
    assert ApiKey.objects.count() == 1 and ApiKey.objects.get().is_active
    assert "API & keys" not in nav_sections(member.get("/"))


def test_the_navigation_leads_admins_to_their_keys(browser):
    home = browser.get("/")
    assert "API & keys" in nav_sections(home)
    assert '<a href="/api-keys/"' in home.content.decode()

    page = browser.get(LIST)
    assert page.status_code == 200
    assert re.search(r'<a href="/api-keys/"\s+aria-current="page">', page.content.decode())


# --- create, shown once --------------------------------------------------------------------------


def test_creating_a_key_shows_it_once_and_never_again(tenant, browser, api_for, admin_user):
    response = create_key(browser)

    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    raw = raw_key_shown(response)
    assert raw.startswith("tsk_live_")
    key = ApiKey.objects.get()
    assert (key.name, key.mode, key.scopes) == ("ERP sync", "live", ["records:read", "events:read"])
    assert key.created_by == admin_user
    assert api_for(tenant, raw).get(PING).status_code == 200  # the shown key works

    listing = browser.get(LIST)
    assert raw not in listing.content.decode()
    assert key.prefix in text(listing)
    assert raw not in browser.get(f"/api-keys/{key.pk}/").content.decode()
    assert AuditEvent.objects.filter(action="api_key.created", target_id=str(key.pk)).exists()


def test_the_list_shows_what_an_admin_needs_to_know(tenant, browser, make_key, api_for):
    expiring, raw = make_key(name="Warehouse", mode="live", expires_at=timezone.now() + timedelta(days=3))
    api_for(tenant, raw).get(PING)

    page = text(browser.get(LIST))

    row = re.search(rf'<tr data-key="{expiring.pk}".*?</tr>', page, re.S).group(0)
    for expected in ("Warehouse", "Live", expiring.prefix, "records:read", "admin@alpha.test", "127.0.0.1", "Active"):
        assert expected in row, expected
    assert "Never" not in row.split("Last used")[0]  # used and expiring: no "Never" in those columns


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"name": ""}, "This field is required."),
        ({"scopes": []}, "Choose at least one scope."),
        ({"scopes": ["records:read", "root"]}, "Select a valid choice."),
        ({"mode": "prod"}, "Select a valid choice."),
        ({"expires_on": "2001-01-01"}, "Choose a day after today."),
    ],
)
def test_bad_input_is_shown_on_the_form_with_400(browser, changes, error):
    response = create_key(browser, **changes)

    assert response.status_code == 400
    assert error in text(response)
    assert 'data-testid="raw-key"' not in response.content.decode()
    assert not ApiKey.objects.exists()


def test_an_expiry_day_stops_the_key_at_midnight_utc(browser):
    day = (datetime.now(UTC) + timedelta(days=10)).date()

    assert create_key(browser, expires_on=day.isoformat()).status_code == 201

    assert ApiKey.objects.get().expires_at == datetime(day.year, day.month, day.day, tzinfo=UTC)


# --- revoke and rotate ---------------------------------------------------------------------------


def test_revoking_asks_first_then_stops_the_key(tenant, browser, make_key, api_for):
    key, raw = make_key()
    listing = browser.get(LIST)
    assert f'href="/api-keys/{key.pk}/revoke/"' in listing.content.decode()

    confirm = browser.get(f"/api-keys/{key.pk}/revoke/")
    assert confirm.status_code == 200 and "Revoke “ERP sync”?" in text(confirm)
    assert ApiKey.objects.get().is_active  # looking is harmless

    response = form_with_button(confirm, "Revoke key").submit(browser, f"/api-keys/{key.pk}/revoke/")

    assert response.status_code == 302 and response["Location"] == LIST
    assert ApiKey.objects.get().status == "revoked"
    assert api_for(tenant, raw).get(PING).status_code == 401
    assert "is revoked" in text(browser.get(LIST))
    assert AuditEvent.objects.filter(action="api_key.revoked", target_id=str(key.pk)).exists()


def test_rotating_offers_overlaps_and_shows_the_new_key_once(tenant, browser, make_key, api_for):
    old, old_raw = make_key(name="Shop")
    page = browser.get(f"/api-keys/{old.pk}/rotate/")
    form = form_with_button(page, "Rotate key")
    assert form.fields["overlap"] == "86400"  # 24 hours unless chosen otherwise
    assert {"1 hour", "24 hours", "7 days"} <= set(re.findall(r"> ([^<]+)</label>", text(page)))

    response = form.submit(browser, f"/api-keys/{old.pk}/rotate/", overlap="3600")

    assert response.status_code == 201 and "no-store" in response["Cache-Control"]
    new_raw = raw_key_shown(response)
    old.refresh_from_db()
    assert old.rotated_to.name == "Shop" and old.rotated_to.prefix in text(response)
    assert timedelta(minutes=59) < old.expires_at - timezone.now() <= timedelta(hours=1)
    assert "keeps working until" in text(response)
    assert api_for(tenant, old_raw).get(PING).status_code == 200
    assert api_for(tenant, new_raw).get(PING).status_code == 200
    # A rotated key is not offered for rotation again.
    assert f'href="/api-keys/{old.pk}/rotate/"' not in browser.get(LIST).content.decode()
    assert browser.post(f"/api-keys/{old.pk}/rotate/", {"overlap": "3600"}).status_code == 403  # CSRF

    again = form_with_button(browser.get(f"/api-keys/{old.pk}/rotate/"), "Rotate key")
    refused = again.submit(browser, f"/api-keys/{old.pk}/rotate/", overlap="3600")
    assert refused.status_code == 400 and "already rotated" in text(refused)


def test_a_bad_overlap_is_a_form_error(browser, make_key):
    key, _ = make_key()
    form = form_with_button(browser.get(f"/api-keys/{key.pk}/rotate/"), "Rotate key")

    response = form.submit(browser, f"/api-keys/{key.pk}/rotate/", overlap="31536000")

    assert response.status_code == 400 and "Select a valid choice" in text(response)
    assert ApiKey.objects.count() == 1


# --- usage charts --------------------------------------------------------------------------------


def test_usage_is_flushed_and_charted_per_day_and_key(
    tenant, browser, make_key, api_for, django_capture_on_commit_callbacks
):
    key, raw = make_key(name="Shop")
    other, _ = make_key(name="Idle")
    ApiUsage.objects.create(key=key, day=datetime.now(UTC).date() - timedelta(days=3), calls=40, errors=2)
    ApiUsage.objects.create(key=key, day=datetime.now(UTC).date() - timedelta(days=45), calls=999, errors=0)
    client = api_for(tenant, raw)
    for _ in range(5):
        client.get(PING)  # counted, not yet flushed: the page flushes first

    with django_capture_on_commit_callbacks(execute=True):  # the page's flush commits, as outside tests
        page = browser.get(LIST)

    assert page.status_code == 200
    body = page.content.decode()
    chart = re.search(r'<figure class="chart" data-testid="usage-chart">.*?</figure>', body, re.S).group(0)
    assert len(re.findall(r'<rect class="calls"', chart)) == 30  # a bar per day, 30 days
    assert len(re.findall(r'<rect class="errors"', chart)) == 1
    assert re.search(r'data-testid="usage-total-calls">45<', chart)  # 40 + 5; day 45 is outside
    assert re.search(r'data-testid="usage-total-errors">2<', chart)
    assert "<script" not in chart
    row = re.search(rf'<tr data-key="{key.pk}".*?</tr>', body, re.S).group(0)
    assert ">45</a>" in row and "(2 errors)" in row

    detail = browser.get(f"/api-keys/{key.pk}/")
    assert detail.status_code == 200
    assert re.search(r'data-testid="usage-total-calls">45<', detail.content.decode())
    idle = browser.get(f"/api-keys/{other.pk}/")
    assert re.search(r'data-testid="usage-total-calls">0<', idle.content.decode())
    today = datetime.now(UTC).date().isoformat()
    assert f"<td>{today}</td><td>5</td><td>0</td>" in detail.content.decode()


def test_a_page_with_no_usage_still_draws_an_empty_chart(browser):
    page = browser.get(LIST)

    assert page.status_code == 200
    assert "No API keys yet" in text(page)
    assert re.search(r'data-testid="usage-total-calls">0<', page.content.decode())


def test_usage_recorded_outside_requests_shows_too(tenant, browser, make_key):
    key, _ = make_key()
    usage_record(tenant=tenant, key=key, error=True)

    assert re.search(r'data-testid="usage-total-errors">1<', browser.get(f"/api-keys/{key.pk}/").content.decode())


# --- first API call ------------------------------------------------------------------------------


def test_first_api_call_page_uses_the_workspace_address(tenant, browser):
    page = browser.get("/api-keys/first-call/")

    assert page.status_code == 200
    body = text(page)
    base = f"http://{host_of(tenant)}/api/v1/"
    assert re.search(rf'data-testid="base-url">{re.escape(base)}<', body)
    for snippet in ("curl", "python", "httpx", "js"):
        code = re.search(rf'data-testid="snippet-{snippet}"><code>(.*?)</code>', body, re.S).group(1)
        assert base in code, snippet
        assert "TESSERA_API_KEY" in code, snippet
    assert 'export TESSERA_API_KEY="tsk_test_your_key_here"' in body
    assert "Authorization: Bearer $TESSERA_API_KEY" in body
    assert 'headers={"Authorization": f"Bearer {os.environ[\'TESSERA_API_KEY\']}"}' in body
    assert "Authorization: `Bearer ${process.env.TESSERA_API_KEY}`" in body
    assert "<script" not in page.content.decode().split("</head>")[1]


def test_every_console_form_posts_with_a_csrf_token(browser, make_key):
    key, _ = make_key()
    for path in (LIST, f"/api-keys/{key.pk}/revoke/", f"/api-keys/{key.pk}/rotate/"):
        for form in forms_of(browser.get(path)):
            if form.method == "post":
                assert form.fields.get("csrfmiddlewaretoken"), path
