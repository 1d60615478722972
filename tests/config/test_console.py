"""The console shell: navigation per role, pages per role, plain-HTML forms, CSRF, form errors,
workspace settings, and the security headers every response carries."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.test import override_settings

from audit.models import AuditEvent
from rbac.roles import Role
from tenants.models import Tenant
from tests.html_forms import form_with_button, forms_of, nav_links, nav_sections

# Sections each role finds in the navigation, in order (Records is everyone's). The desktop edition
# has no plans, so no Billing.
BILLING = ["Billing"] if settings.TESSERA_BILLING_ENABLED else []
NAV = {
    Role.ADMIN: [
        "Records",
        "Analytics",
        "API & keys",
        "Webhooks",
        "Devices",
        "Members",
        *BILLING,
        "Compliance",
        "Audit",
        "Single sign-on",
        "Settings",
    ],
    Role.MANAGER: ["Records", "Analytics", "Devices", "Members"],
    Role.ANALYST: ["Records", "Analytics"],
    Role.VIEWER: ["Records", "Analytics"],
}


@pytest.fixture
def section_paths(admin_client) -> dict[str, str]:
    """{section: path}, read from the Admin's navigation (sections move as later issues fill them)."""
    return nav_links(admin_client.get("/"))


@pytest.fixture
def browser_as(tenant, client_for, make_user, admin_user):
    def make(role: str, **kwargs):
        user = admin_user if role == Role.ADMIN else make_user(role=role)
        return client_for(tenant, user, **kwargs)

    return make


def text(response) -> str:
    return response.content.decode()


def workspace_name_shown(response) -> str:
    match = re.search(r'data-testid="workspace-name">([^<]*)<', text(response))
    assert match, "the page does not show the workspace name"
    return match.group(1)


# --- navigation and pages per role ---------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_navigation_shows_only_the_sections_the_role_may_use(browser_as, role):
    home = browser_as(role).get("/")

    assert home.status_code == 200
    assert nav_sections(home) == NAV[role]


@pytest.mark.parametrize("role", list(Role))
def test_every_page_renders_for_roles_that_may_use_it_and_is_refused_otherwise(browser_as, section_paths, role):
    browser = browser_as(role)
    assert list(section_paths) == NAV[Role.ADMIN]

    for section, path in section_paths.items():
        response = browser.get(path)
        if section in NAV[role]:
            assert response.status_code == 200, path
            assert nav_sections(response) == NAV[role], path  # same navigation everywhere
            assert re.search(rf'<a href="{re.escape(path)}"\s+aria-current="page">', text(response)), path
        else:
            assert response.status_code == 403, path
            assert "Your role does not allow this page." in text(response), path


@pytest.mark.parametrize("role", list(Role))
def test_home_greets_the_member_with_role_and_workspace(tenant, browser_as, section_paths, role):
    home = text(browser_as(role).get("/"))

    assert f"You are {role.label} in <strong>{tenant.name}</strong>" in home
    tiles = re.findall(r'<a class="tile" href="([^"]+)">', home)
    assert set(tiles) <= {section_paths[s] for s in NAV[role]}


def test_anonymous_visitors_are_sent_to_log_in(tenant, client_for, section_paths):
    anon_client = client_for(tenant)
    for path in ["/", *section_paths.values()]:
        response = anon_client.get(path)
        assert response.status_code == 302, path
        assert response["Location"] == f"/accounts/login/?next={path}", path


def test_unknown_page_is_a_clear_404(admin_client):
    response = admin_client.get("/no-such-page/")

    assert response.status_code == 404
    assert "Page not found" in text(response)


def test_pages_use_only_vendored_assets_and_follow_the_os_theme(admin_client):
    page = text(admin_client.get("/"))

    assets = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', page)
    assert assets, "the layout loads its stylesheet and scripts"
    assert all(a.startswith("/static/") for a in assets), assets  # no CDN: the desktop edition is offline
    assert '<meta name="color-scheme" content="light dark">' in page
    assert '<a class="skip-link" href="#main">' in page


# --- workspace settings --------------------------------------------------------------------------------


def test_admin_saves_workspace_settings_with_the_plain_html_form(tenant, admin_client, admin_user):
    page = admin_client.get("/settings/")
    form = form_with_button(page, "Save")
    assert (form.fields["name"], form.fields["timezone"]) == (tenant.name, tenant.timezone)
    assert "Europe/Berlin" in form.selects["timezone"]

    response = form.submit(admin_client, "/settings/", name="  Alpha Trading GmbH ", timezone="Europe/Berlin")

    assert response.status_code == 302 and response["Location"] == "/settings/"
    after = admin_client.get("/settings/")
    assert "Settings saved." in text(after)
    assert workspace_name_shown(after) == "Alpha Trading GmbH"
    assert form_with_button(after, "Save").fields["timezone"] == "Europe/Berlin"
    assert Tenant.objects.filter(pk=tenant.pk, name="Alpha Trading GmbH", timezone="Europe/Berlin").exists()
    event = AuditEvent.objects.filter(action="workspace.settings_changed").order_by("-seq").first()
    assert event.actor_label == admin_user.email
    assert event.changes == {
        "before": {"name": tenant.name, "timezone": tenant.timezone},
        "after": {"name": "Alpha Trading GmbH", "timezone": "Europe/Berlin"},
    }


def test_saving_unchanged_settings_records_nothing(admin_client):
    form = form_with_button(admin_client.get("/settings/"), "Save")

    assert form.submit(admin_client, "/settings/").status_code == 302
    assert not AuditEvent.objects.filter(action="workspace.settings_changed").exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": ""}, "This field is required."),
        ({"name": "   "}, "This field is required."),
        ({"name": "x" * 121}, "at most 120 characters"),
        ({"timezone": "Mars/Olympus_Mons"}, "Select a valid choice."),
        ({"timezone": ""}, "This field is required."),
    ],
)
def test_bad_settings_are_form_errors(tenant, admin_client, changes, message):
    form = form_with_button(admin_client.get("/settings/"), "Save")

    response = form.submit(admin_client, "/settings/", **changes)

    assert response.status_code == 400
    assert message in text(response)
    assert Tenant.objects.filter(pk=tenant.pk, name=tenant.name, timezone=tenant.timezone).exists()


def test_an_empty_post_is_a_form_error_not_a_silent_reload(admin_client):
    response = admin_client.post("/settings/", {})
    assert response.status_code == 400
    assert "This field is required." in text(response)


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ANALYST, Role.VIEWER])
def test_only_admins_change_workspace_settings(tenant, browser_as, role):
    response = browser_as(role).post("/settings/", {"name": "Hijacked", "timezone": "UTC"})

    assert response.status_code == 403
    assert Tenant.objects.get(pk=tenant.pk).name == tenant.name


# --- forms without JavaScript, CSRF ------------------------------------------------------------------------


def test_every_console_form_posts_to_a_real_page_with_a_csrf_token(admin_client, make_user):
    make_user(role=Role.VIEWER)
    for path in ("/", "/members/", "/settings/"):
        for form in forms_of(admin_client.get(path)):
            if form.method != "post":
                continue
            assert "csrfmiddlewaretoken" in form.fields, (path, form.action)
            target = form.action or path
            assert admin_client.get(target).status_code in (200, 405), (path, target)


def test_forms_refuse_posts_without_the_csrf_token(tenant, admin_user, client_for):
    browser = client_for(tenant, admin_user, enforce_csrf_checks=True)

    refused = browser.post("/settings/", {"name": "Forged", "timezone": "UTC"})
    invite = browser.post("/members/", {"email": "forged@alpha.test", "role": Role.ADMIN})
    logout = browser.post("/accounts/logout/")

    assert (refused.status_code, invite.status_code, logout.status_code) == (403, 403, 403)
    assert Tenant.objects.get(pk=tenant.pk).name == tenant.name
    assert browser.get("/").status_code == 200  # still logged in


def test_forms_work_with_the_token_the_page_carries(tenant, admin_user, client_for):
    browser = client_for(tenant, admin_user, enforce_csrf_checks=True)

    form = form_with_button(browser.get("/settings/"), "Save")
    response = form.submit(browser, "/settings/", name="Alpha via plain HTML")

    assert response.status_code == 302
    assert Tenant.objects.get(pk=tenant.pk).name == "Alpha via plain HTML"


def test_login_is_csrf_protected(tenant, client_for, admin_user):
    from tests.conftest import ADMIN_PASSWORD

    browser = client_for(tenant, enforce_csrf_checks=True)
    forged = browser.post("/accounts/login/", {"username": admin_user.email, "password": ADMIN_PASSWORD})
    assert forged.status_code == 403

    form = form_with_button(browser.get("/accounts/login/"), "Log in")
    response = form.submit(browser, "/accounts/login/", username=admin_user.email, password=ADMIN_PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/"


# --- security headers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/accounts/login/", "/", "/settings/", "/no-such-page/"])
def test_every_response_carries_the_security_headers(admin_client, anon_client, path):
    for client in (admin_client, anon_client):
        response = client.get(path)
        csp = response["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        assert re.fullmatch(r"req_[0-9a-f]{32}", response["Request-Id"])


def test_request_ids_are_unique_or_taken_from_the_proxy(anon_client):
    first, second = anon_client.get("/accounts/login/"), anon_client.get("/accounts/login/")
    assert first["Request-Id"] != second["Request-Id"]

    traced = anon_client.get("/accounts/login/", HTTP_X_REQUEST_ID="lb-7f3a9c21-0001")
    assert traced["Request-Id"] == "lb-7f3a9c21-0001"
    junk = anon_client.get("/accounts/login/", HTTP_X_REQUEST_ID="<script>")
    assert junk["Request-Id"].startswith("req_")


def test_the_request_id_reaches_the_audit_event(anon_client, admin_user):
    from tests.conftest import ADMIN_PASSWORD

    response = anon_client.post(
        "/accounts/login/",
        {"username": admin_user.email, "password": ADMIN_PASSWORD},
        HTTP_USER_AGENT="Firefox/140",
    )

    event = AuditEvent.objects.filter(action="user.logged_in").order_by("-seq").first()
    assert event.request_id == response["Request-Id"]
    assert event.user_agent == "Firefox/140"


def test_session_cookie_is_http_only_and_host_only(tenant, client_for, admin_user):
    from tests.conftest import ADMIN_PASSWORD

    browser = client_for(tenant)
    browser.post("/accounts/login/", {"username": admin_user.email, "password": ADMIN_PASSWORD})

    cookie = browser.cookies["tessera_session"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["domain"] == ""  # sent back only to the host that set it


@override_settings(DEBUG=False)
def test_server_errors_are_never_shown_as_tracebacks(admin_client, monkeypatch):
    import config.views

    def explode(request):
        raise RuntimeError("boom")

    monkeypatch.setattr(config.views, "render", lambda *a, **k: explode(a[0]))
    admin_client.raise_request_exception = False

    response = admin_client.get("/")

    assert response.status_code == 500
    assert "Something went wrong" in text(response)
    assert "boom" not in text(response) and "Traceback" not in text(response)
    assert response["Request-Id"].startswith("req_")
