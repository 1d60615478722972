"""The public site's sign-up, the log-in handoff to the new workspace, and routing by Host (SaaS)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tenants.models import Domain, Tenant
from tenants.runtime import workspace_context, workspace_for_host
from tests.conftest import ADMIN_PASSWORD

pytestmark = pytest.mark.saas_only

PUBLIC = "tessera.localhost"
HANDOFF = re.compile(r"^http://gamma\.tessera\.localhost(?P<port>:\d+)?(?P<path>/accounts/handoff/(?P<token>[^/]+)/)$")


@pytest.fixture
def public_client(tenants_provisioned, db):
    return Client(HTTP_HOST=PUBLIC)


def host_client(host: str) -> Client:
    return Client(HTTP_HOST=host)


def signup_data(**overrides) -> dict:
    return {
        "name": "Gamma Trading",
        "slug": "gamma",
        "full_name": "Grace Gamma",
        "email": "grace@gamma.test",
        "password": ADMIN_PASSWORD,
        **overrides,
    }


def field_errors(response) -> dict[str, list[str]]:
    return {name: list(errors) for name, errors in response.context["form"].errors.items()}


# --- sign-up --------------------------------------------------------------------------------------------


def test_public_site_shows_the_sign_up_form(public_client):
    response = public_client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Start your Tessera workspace" in body
    assert 'name="slug"' in body and ".tessera.localhost" in body


def test_sign_up_lands_the_new_admin_logged_in_on_the_new_subdomain(public_client):
    response = public_client.post("/", signup_data())
    assert response.status_code == 302
    match = HANDOFF.match(response["Location"])
    assert match, response["Location"]

    tenant = Tenant.objects.get(slug="gamma")
    assert Domain.objects.get(tenant=tenant).domain == "gamma.tessera.localhost"

    browser = host_client("gamma.tessera.localhost")
    landed = browser.get(match["path"])
    assert landed.status_code == 302 and landed["Location"] == "/"
    home = browser.get("/")
    assert home.status_code == 200
    assert home.wsgi_request.user.email == "grace@gamma.test"
    assert browser.get("/members/").status_code == 200, "the first user is an Admin"

    with workspace_context(tenant):
        from audit.models import AuditEvent

        actions = list(AuditEvent.objects.order_by("seq").values_list("action", flat=True))
    assert actions == ["workspace.created", "user.logged_in"]


def test_handoff_link_works_once(public_client):
    path = HANDOFF.match(public_client.post("/", signup_data())["Location"])["path"]
    assert host_client("gamma.tessera.localhost").get(path).status_code == 302

    again = host_client("gamma.tessera.localhost")
    response = again.get(path, follow=True)
    assert response.redirect_chain[0] == ("/accounts/login/", 302)
    assert not response.wsgi_request.user.is_authenticated
    assert b"That sign-in link has expired" in response.content
    assert again.get("/").status_code == 302


def test_unknown_handoff_token_is_refused(tenant, anon_client):
    response = anon_client.get("/accounts/handoff/not-a-token/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"


def test_sign_up_hands_off_to_the_configured_address_not_the_host_header(tenants_provisioned, db, settings):
    settings.TESSERA_PUBLIC_URL = f"http://{PUBLIC}:8000"
    response = host_client(f"{PUBLIC}:6666").post("/", signup_data())
    match = HANDOFF.match(response["Location"])
    assert match and match["port"] == ":8000", response["Location"]


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"slug": "alpha"}, "slug", "That address is already taken."),
        ({"slug": "admin"}, "slug", "That address is reserved. Please choose another."),
        ({"slug": "Not Valid!"}, "slug", "Use 3–40 lowercase letters"),
        ({"slug": "xn--lpha-2ye"}, "slug", "cannot have hyphens as its 3rd and 4th"),  # punycode "аlpha"
        ({"slug": ""}, "slug", "This field is required."),
        ({"name": ""}, "name", "This field is required."),
        ({"name": "   "}, "name", "This field is required."),
        ({"email": "not-an-email"}, "email", "Enter a valid email address."),
        ({"password": "short"}, "password", "at least 10 characters"),
        ({"password": "12345678901"}, "password", "This password is entirely numeric."),
    ],
)
def test_sign_up_errors_are_shown_on_their_field(public_client, overrides, field, message):
    workspaces = Tenant.objects.exclude(schema_name="public")
    tenants_before = workspaces.count()
    response = public_client.post("/", signup_data(**overrides))
    assert response.status_code == 400
    errors = field_errors(response)
    assert list(errors) == [field], errors
    assert any(message in e for e in errors[field]), errors
    assert workspaces.count() == tenants_before
    assert not Domain.objects.filter(domain="gamma.tessera.localhost").exists()
    body = response.content.decode()
    assert 'class="error" role="alert"' in body
    assert 'value="grace@gamma.test"' in body or field == "email", "the other answers are kept"


def test_sign_up_with_every_field_wrong_reports_each(public_client):
    response = public_client.post("/", {"name": "", "slug": "x", "email": "nope", "password": "1"})
    assert response.status_code == 400
    assert set(field_errors(response)) == {"name", "slug", "email", "password"}


def test_an_empty_sign_up_is_refused_with_errors(public_client):
    response = public_client.post("/", {})
    assert response.status_code == 400
    assert set(field_errors(response)) == {"name", "slug", "email", "password"}


def test_the_public_site_has_no_console(public_client):
    assert public_client.get("/accounts/login/").status_code == 404
    assert public_client.get("/audit/").status_code == 404
    assert public_client.get("/members/").status_code == 404


# --- routing by host --------------------------------------------------------------------------------------


def test_unknown_host_gets_a_clear_404_page(tenants_provisioned, db):
    response = host_client("nowhere.tessera.localhost").get("/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "No workspace here" in body
    assert "nowhere.tessera.localhost" in body
    assert 'href="//tessera.localhost/"' in body
    assert response["Request-Id"]


def test_unknown_host_keeps_the_port_in_the_sign_up_link(tenants_provisioned, db):
    response = host_client("nowhere.tessera.localhost:8000").get("/members/")
    assert response.status_code == 404
    assert b'href="//tessera.localhost:8000/"' in response.content


def test_suspended_workspace_gets_a_403_page(tenant_b, db):
    Tenant.objects.filter(pk=tenant_b.pk).update(status=Tenant.Status.SUSPENDED)
    for path in ("/", "/accounts/login/", "/audit/"):
        response = host_client("beta.tessera.localhost").get(path)
        assert response.status_code == 403, path
        assert b"Workspace suspended" in response.content
        assert b"Beta Ltd is suspended" in response.content


def test_suspended_workspace_still_answers_health_checks(tenant_b, db, settings):
    settings.TESSERA_METRICS_TOKEN = "scraper-token"
    Tenant.objects.filter(pk=tenant_b.pk).update(status=Tenant.Status.SUSPENDED)
    client = host_client("beta.tessera.localhost")
    response = client.get("/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scraper-token").status_code == 200


def test_suspended_workspace_refuses_a_logged_in_admin(tenant_b, client_for, db):
    from accounts.models import User

    with workspace_context(tenant_b):
        admin = User.objects.get(email="admin@beta.test")
    client = client_for(tenant_b, admin)
    assert client.get("/").status_code == 200
    Tenant.objects.filter(pk=tenant_b.pk).update(status=Tenant.Status.SUSPENDED)
    assert client.get("/").status_code == 403


@pytest.mark.parametrize(
    "host", ["alpha.tessera.localhost", "tessera.localhost", "nowhere.tessera.localhost", "localhost"]
)
def test_health_answers_on_any_host(tenants_provisioned, db, host):
    response = host_client(host).get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_template_tenant_is_never_served(tenants_provisioned, db):
    from django.conf import settings

    template = Tenant.objects.get(schema_name=settings.TESSERA_TEMPLATE_SCHEMA)
    assert template.is_template
    Domain.objects.create(domain="tenant-template.tessera.localhost", tenant=template, is_primary=True)

    response = host_client("tenant-template.tessera.localhost").get("/accounts/login/")
    assert response.status_code == 404
    assert b"No workspace here" in response.content
    assert workspace_for_host("tenant-template.tessera.localhost") is None


def test_template_is_not_listed_among_workspaces(tenants_provisioned, db):
    from tenants.runtime import workspace_list

    slugs = set(workspace_list().values_list("slug", flat=True))
    assert {"alpha", "beta"} <= slugs
    assert not workspace_list().filter(is_template=True).exists()
    assert not workspace_list().filter(schema_name="public").exists()


@pytest.mark.parametrize(
    "host, slug",
    [
        ("alpha.tessera.localhost", "alpha"),
        ("ALPHA.tessera.localhost", "alpha"),
        ("alpha.tessera.localhost:8000", "alpha"),
        ("alpha.tessera.localhost.", "alpha"),
        ("beta.tessera.localhost", "beta"),
        ("gamma.tessera.localhost", None),
        ("tessera.localhost", None),
    ],
)
def test_tenant_for_host(tenants_provisioned, db, host, slug):
    tenant = workspace_for_host(host)
    assert (tenant.slug if tenant else None) == slug


def test_foreign_host_is_refused(tenants_provisioned, db):
    response = host_client("evil.example.com").get("/")
    assert response.status_code == 404
    assert b"Start your Tessera workspace" not in response.content


@pytest.mark.parametrize(
    "host", ["ALPHA.tessera.localhost", "alpha.tessera.localhost.", "WWW.Alpha.tessera.localhost:8000"]
)
def test_host_spelling_variants_reach_the_same_workspace(tenants_provisioned, db, host):
    response = host_client(host).get("/accounts/login/")
    assert response.status_code == 200, response.content[:300]
    assert b"Alpha Ltd" in response.content


def test_sign_ups_are_throttled_per_address(tenants_provisioned, db, settings):
    """Each sign-up clones a schema (1–2 s of server time): at most 10 at once from one address."""
    import uuid

    settings.TESSERA_RATE_LIMIT_SCALE = 1
    settings.TESSERA_COUNTERS_NAMESPACE = f"test-{uuid.uuid4().hex}"
    from accounts.throttles import throttle_check

    for _ in range(10):  # the budget a real sign-up would spend (cheaper than cloning ten schemas)
        throttle_check(scope="public", what="signup", keys={"ip": "127.0.0.1", "site": "all"}, message="")
    response = Client(HTTP_HOST=PUBLIC, REMOTE_ADDR="127.0.0.1").post("/", signup_data())
    assert response.status_code == 429 and "Too many sign-ups" in response.content.decode()
    assert not Tenant.objects.filter(slug="gamma").exists()
    elsewhere = Client(HTTP_HOST=PUBLIC, REMOTE_ADDR="10.5.0.1").post("/", signup_data())
    assert elsewhere.status_code == 302 and Tenant.objects.filter(slug="gamma").exists()
