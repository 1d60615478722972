"""Single sign-on in a real browser against the real server and real OpenID providers (npm
oidc-provider, one per workspace): each workspace's Admin sets up their own IdP on the console's
Single sign-on page ("Test connection", then Save), and a person signs in to each workspace through
its own provider; workspace A's session means nothing on workspace B. Then the SCIM token made on the
same page is used by scim2-tester, the SCIM conformance checker, against the live server.

The setup goes through the console on purpose: the server encrypts client secrets with its own key.
What the model leaves out: TLS, and a real IdP's log-in page (oidc-provider's dev pages stand in).
"""

from __future__ import annotations

import socket

import httpx2
import pytest
from playwright.sync_api import expect
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from tests.accounts.conftest import provider_client
from tests.accounts.oidc_harness import OpenIDProvider
from tests.conftest import ADMIN_PASSWORD, SAAS

pytestmark = pytest.mark.browser

PEOPLE = {
    "alice": {"email": "alice@alpha.test", "email_verified": True, "name": "Alice SSO", "groups": ["staff"]},
    "bea": {"email": "bea@beta.test", "email_verified": True, "name": "Bea SSO", "groups": ["staff"]},
}


def slugs() -> list[str]:
    return ["alpha", "beta"] if SAAS else ["alpha"]


def url_of(server, slug: str, path: str) -> str:
    return server.tenant_url(slug, path) if SAAS else server.url(path)


@pytest.fixture
def providers(tessera_server):
    """One provider per workspace, each with a client for that workspace's host only."""
    made = {}
    for n, slug in enumerate(slugs()):
        host = url_of(tessera_server, slug, "").split("//", 1)[1].rstrip("/")
        made[slug] = OpenIDProvider(clients=[provider_client("ab"[n], [host])], accounts=PEOPLE)
    yield made
    for provider in made.values():
        provider.stop()


@pytest.fixture
def sso_cleanup(tessera_server, tenants_provisioned, db_commit):
    """Whatever SSO and SCIM set up or provisioned in the committed workspaces is undone afterwards."""
    from accounts.models import User

    marks = {}

    def highest():
        from tenants.runtime import workspace_context

        for slug in slugs():
            with workspace_context(tenants_provisioned[slug]):
                marks[slug] = max(User.objects.values_list("pk", flat=True), default=0)

    def admins():
        from django.contrib.auth.hashers import Argon2PasswordHasher

        from accounts.services import user_create
        from rbac.roles import Role
        from tenants.runtime import workspace_context

        hasher = Argon2PasswordHasher()  # the server verifies Argon2 (the tests' own hasher is faster)
        for slug in slugs():
            with workspace_context(tenants_provisioned[slug]):
                user = user_create(email=f"sso-admin@{slug}.test", password=None, role=Role.ADMIN)
                user.password = hasher.encode(ADMIN_PASSWORD, hasher.salt())
                user.save(update_fields=["password"])

    db_commit(highest)
    db_commit(admins)
    yield

    def undo():
        from accounts.models import SCIMGroup, SCIMToken, SSOConfig, SSOGroupRole
        from tenants.runtime import workspace_context

        for slug in slugs():
            with workspace_context(tenants_provisioned[slug]):
                SSOConfig.objects.all().delete()
                SSOGroupRole.objects.all().delete()
                SCIMToken.objects.all().delete()
                SCIMGroup.objects.all().delete()
                User.objects.filter(pk__gt=marks[slug]).delete()

    db_commit(undo)


def admin_sets_up_sso(context, server, slug: str, provider: OpenIDProvider, client: dict, snap) -> str:
    """The workspace's Admin enters their IdP on the console; returns a fresh SCIM token."""
    page = context.new_page()
    page.goto(url_of(server, slug, "/accounts/login/"))
    page.get_by_label("E-mail").fill(f"sso-admin@{slug}.test")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Single sign-on").click()
    expect(page.get_by_role("heading", name="Single sign-on")).to_be_visible()
    expect(page.get_by_test_id("redirect-uri")).to_have_value(url_of(server, slug, "/accounts/oidc/callback/"))
    page.get_by_label("Single sign-on is on").check()
    page.get_by_label("Identity provider's name").fill(f"{slug.title()} IdP")
    page.get_by_label("Issuer URL").fill(provider.issuer)
    page.get_by_label("Client ID").fill(client["client_id"])
    page.get_by_label("Client secret").fill(client["client_secret"])
    page.get_by_label("Scopes").fill("openid email profile groups")
    page.get_by_label("E-mail domains").fill(f"{slug}.test")
    page.get_by_label("Groups → roles").fill("staff = manager")
    page.get_by_role("button", name="Test connection").click()
    expect(page.get_by_test_id("sso-test-result")).to_contain_text("Connection OK")
    expect(page.get_by_test_id("sso-test-algs")).to_contain_text("RS256")
    snap(page, f"sso-test-{slug}")
    page.get_by_label("Client secret").fill(client["client_secret"])  # password fields are not re-shown
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Single sign-on settings saved.")).to_be_visible()
    page.get_by_role("button", name="Create SCIM token").click()
    token = page.get_by_test_id("scim-token").input_value()
    assert token.startswith("tss_")
    page.close()
    return token


def person_signs_in(context, server, slug: str, login: str):
    page = context.new_page()
    page.goto(url_of(server, slug, "/accounts/login/"))
    page.get_by_test_id("sso-button").click()
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("anything")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_test_id("workspace-name")).to_be_visible()
    return page


def test_each_workspace_signs_in_with_its_own_provider(
    tessera_server, browser_context, providers, sso_cleanup, snap, monkeypatch
):
    server = tessera_server
    tokens = {}
    for n, slug in enumerate(slugs()):
        client = provider_client("ab"[n], [])
        tokens[slug] = admin_sets_up_sso(browser_context(), server, slug, providers[slug], client, snap)

    alice = browser_context()
    page = person_signs_in(alice, server, "alpha", "alice")
    expect(page.locator(".topbar .user")).to_contain_text("Alice SSO")
    expect(page.locator(".topbar .user")).to_contain_text("Manager")  # from the IdP's groups
    snap(page, "sso-signed-in")

    if SAAS:
        bea = browser_context()
        page_b = person_signs_in(bea, server, "beta", "bea")
        expect(page_b.locator(".topbar .user")).to_contain_text("Bea SSO")
        # alpha's session cookie on beta's host: a stranger there.
        cookie = next(c for c in alice.cookies() if c["name"] == "tessera_session")
        stranger = browser_context()
        stranger.add_cookies([{**cookie, "domain": f"beta.{server.base_domain}"}])
        other = stranger.new_page()
        other.goto(server.tenant_url("beta", "/"))
        expect(other).to_have_url(server.tenant_url("beta", "/accounts/login/?next=/"))

        # A workspace's provider does not sign anyone in to the other: alpha's IdP knows no beta host.
        wrong = browser_context().new_page()
        wrong.goto(server.tenant_url("beta", "/accounts/oidc/login/"))
        assert wrong.url.startswith(providers["beta"].issuer)

    # Log out ends the IdP session too (its end_session_endpoint asks to confirm).
    page.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="Yes, sign me out").click()
    expect(page).to_have_url(url_of(server, "alpha", "/accounts/login/"))

    # The SCIM token from the console, checked by scim2-tester against this live server. Chromium
    # resolves *.localhost to loopback itself; for this process's resolver the test says so.
    real_getaddrinfo = socket.getaddrinfo

    def loopback_for_localhost(host, *args, **kwargs):
        return real_getaddrinfo("127.0.0.1" if str(host).endswith(".localhost") else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_for_localhost)
    with httpx2.Client(
        base_url=url_of(server, "alpha", "/scim/v2"),
        headers={"Authorization": f"Bearer {tokens['alpha']}"},
        trust_env=False,
        timeout=20,
    ) as http:
        results = check_server(SyncSCIMClient(http))
    failed = [(r.title, r.reason) for r in results if r.status in (Status.ERROR, Status.CRITICAL)]
    assert results and not failed, failed


def test_a_person_signs_in_with_a_saml_idp(tessera_server, browser_context, sso_cleanup, snap, tmp_path):
    """SAML end to end in Chromium: the Admin gives the IdP's metadata URL on the console, a person
    signs in at pysaml2's IdP (tests/accounts/saml_harness.py), whose page posts the signed answer to
    the workspace's ACS. In SaaS that post comes from another site (127.0.0.1 → *.localhost), so the
    browser withholds the SameSite=Lax session cookie and Tessera's own page posts it again."""
    from tests.accounts.saml_harness import SAMLIdentityProvider

    server = tessera_server
    alice = {"email": "alice@alpha.test", "displayName": "Alice SAML", "groups": ["staff"]}
    idp = SAMLIdentityProvider("browser", tmp_path, people={"alice": alice})
    try:
        admin = browser_context().new_page()
        admin.goto(url_of(server, "alpha", "/accounts/login/"))
        admin.get_by_label("E-mail").fill("sso-admin@alpha.test")
        admin.get_by_label("Password").fill(ADMIN_PASSWORD)
        admin.get_by_role("button", name="Log in").click()
        admin.get_by_role("link", name="Single sign-on").click()
        admin.get_by_label("Single sign-on is on").check()
        admin.get_by_label("Protocol").select_option("saml")
        admin.get_by_label("Identity provider's name").fill("Acme SAML")
        admin.get_by_label("SAML IdP metadata URL").fill(idp.metadata_url)
        admin.get_by_label("Name claim").fill("displayName")
        admin.get_by_label("E-mail domains").fill("alpha.test")
        admin.get_by_label("Groups → roles").fill("staff = analyst")
        admin.get_by_role("button", name="Test connection").click()
        expect(admin.get_by_test_id("saml-idp-entity-id")).to_have_text(idp.entity_id)
        expect(admin.get_by_test_id("saml-acs-url")).to_have_value(url_of(server, "alpha", "/accounts/saml/acs/"))
        snap(admin, "sso-saml-test")
        admin.get_by_role("button", name="Save").click()
        expect(admin.get_by_text("Single sign-on settings saved.")).to_be_visible()

        idp.logged_in = "alice"
        page = browser_context().new_page()
        page.goto(url_of(server, "alpha", "/accounts/login/"))
        page.get_by_test_id("sso-button").click()
        page.get_by_test_id("idp-continue").click()  # the IdP's page posts the signed answer
        expect(page.get_by_test_id("workspace-name")).to_be_visible()
        expect(page.locator(".topbar .user")).to_contain_text("Alice SAML")
        expect(page.locator(".topbar .user")).to_contain_text("Analyst")  # from the IdP's groups
        snap(page, "sso-saml-signed-in")
    finally:
        idp.stop()
