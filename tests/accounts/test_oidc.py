"""OpenID Connect per workspace, end to end against a real OpenID provider (npm oidc-provider, started
by tests/accounts/conftest.py). The Tessera side runs in the test process (Django's test client); the
person's browser at the IdP is a headless user agent posting the provider's own log-in and consent
forms (tests/browser/test_sso.py does the same in Chromium).

What the model leaves out: TLS (the provider speaks plain http on 127.0.0.1) and the IdP's own user
interface (its dev interaction pages stand in for a real log-in page). Forged ID tokens are made by
the harness's test hook at the token endpoint, as a hostile network or IdP would hand them over.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from accounts.models import SSOIdentity, User
from audit.models import AuditEvent
from audit.vault import changes_open
from rbac.roles import Role
from tests.accounts.conftest import sso_configure, sso_sign_in
from tests.accounts.oidc_harness import IdPUserAgent


def logged_in_as(client) -> str | None:
    response = client.get("/")
    if response.status_code != 200:
        return None
    user = response.context["user"] if response.context else None
    return user.email if user is not None and user.is_authenticated else None


def failures() -> list[dict]:
    return [changes_open(e.changes) for e in AuditEvent.objects.filter(action="sso.login_failed").order_by("seq")]


def test_new_person_joins_just_in_time_with_the_default_role(tenant, admin_user, idp_a, anon_client):
    sso_configure(admin_user, idp_a, default_role=Role.ANALYST)
    idp_a.accounts_set({"carol": {"email": "carol@alpha.test", "email_verified": True, "name": "Carol C"}})

    signed = sso_sign_in(anon_client, idp_a, "carol")

    assert signed.response.status_code == 302 and signed.response["Location"] == "/"
    user = User.objects.get(email="carol@alpha.test")
    assert (user.role, user.full_name, user.auth_source, user.has_usable_password()) == (
        Role.ANALYST,
        "Carol C",
        User.AuthSource.SSO,
        False,
    )
    assert SSOIdentity.objects.filter(user=user, issuer=idp_a.issuer, subject="carol").exists()
    assert logged_in_as(anon_client) == "carol@alpha.test"
    home = anon_client.get("/")  # the page a sign-in lands on lets its log-out form go to the IdP
    assert idp_a.issuer in home["Content-Security-Policy"].split("form-action")[1].split(";")[0]
    assert AuditEvent.objects.filter(action="member.joined", target_label__icontains="carol").exists()
    assert AuditEvent.objects.filter(action="user.logged_in", actor_label="carol@alpha.test").exists()


def test_the_login_page_offers_the_idp_and_routes_its_domains_there(tenant, admin_user, idp_a, anon_client):
    sso_configure(admin_user, idp_a)
    page = anon_client.get("/accounts/login/")
    assert b"Sign in with IdP A" in page.content
    # The browser may follow the form's redirect to the IdP only if the page's CSP form-action allows it.
    assert idp_a.issuer in page["Content-Security-Policy"].split("form-action")[1].split(";")[0]

    typed = anon_client.post("/accounts/login/", {"username": "Dora@alpha.test", "password": ""})
    assert typed.status_code == 302
    assert typed["Location"].startswith("/accounts/oidc/login/?login_hint=dora%40alpha.test")
    to_idp = anon_client.get(typed["Location"])
    query = parse_qs(urlsplit(to_idp["Location"]).query)
    assert to_idp["Location"].startswith(idp_a.issuer + "/auth?")
    assert query["login_hint"] == ["dora@alpha.test"]
    assert query["code_challenge_method"] == ["S256"] and query["state"] and query["nonce"]

    other = anon_client.post("/accounts/login/", {"username": "x@elsewhere.test", "password": ""})
    assert other.status_code == 400  # not a listed domain: the password form asks for the password


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"email_verified": False}, "not verified"),
        ({"email": "viewer9@other.test"}, "not listed"),
    ],
)
def test_an_existing_password_member_is_not_taken_over(tenant, admin_user, idp_a, anon_client, make_user, claims, why):
    member = make_user(role=Role.VIEWER, email=claims.get("email", "viewer9@alpha.test"))
    sso_configure(admin_user, idp_a)
    idp_a.accounts_set({"mallory": {"email": member.email, "email_verified": True, **claims}})

    signed = sso_sign_in(anon_client, idp_a, "mallory")

    assert signed.response.status_code == 403
    text = signed.response.content.decode()
    assert "cannot be linked" in text and why.split()[-1] in text
    assert not SSOIdentity.objects.filter(user=member).exists()
    assert logged_in_as(anon_client) is None
    assert failures()[-1]["reason"].startswith("link_refused")


def test_a_verified_email_of_a_listed_domain_links_the_password_member(
    tenant, admin_user, idp_a, anon_client, make_user
):
    member = make_user(role=Role.MANAGER, email="erin@alpha.test")
    sso_configure(admin_user, idp_a)
    idp_a.accounts_set({"erin-sub": {"email": "Erin@alpha.test", "email_verified": True}})

    assert sso_sign_in(anon_client, idp_a, "erin-sub").response.status_code == 302

    assert SSOIdentity.objects.get(issuer=idp_a.issuer, subject="erin-sub").user == member
    assert logged_in_as(anon_client) == "erin@alpha.test"
    # The link is by subject from now on: a changed e-mail at the IdP still reaches the same member.
    idp_a.accounts_set({"erin-sub": {"email": "erin.new@alpha.test", "email_verified": False}})
    second = anon_client.__class__(anon_client.tenant)
    assert sso_sign_in(second, idp_a, "erin-sub").response.status_code == 302
    assert logged_in_as(second) == "erin@alpha.test"


def test_groups_set_the_role_at_every_log_in_but_never_remove_the_last_admin(tenant, admin_user, idp_a, client_for):
    sso_configure(admin_user, idp_a, group_roles={"tessera-admins": Role.ADMIN, "staff": Role.MANAGER})
    idp_a.accounts_set({"gina": {"email": "gina@alpha.test", "email_verified": True, "groups": ["staff", "x"]}})
    assert sso_sign_in(client_for(tenant), idp_a, "gina").response.status_code == 302
    gina = User.objects.get(email="gina@alpha.test")
    assert gina.role == Role.MANAGER

    idp_a.accounts_set({"gina": {"email": "gina@alpha.test", "email_verified": True, "groups": ["tessera-admins"]}})
    sso_sign_in(client_for(tenant), idp_a, "gina")
    gina.refresh_from_db()
    assert gina.role == Role.ADMIN

    idp_a.accounts_set({"gina": {"email": "gina@alpha.test", "email_verified": True, "groups": []}})
    sso_sign_in(client_for(tenant), idp_a, "gina")
    gina.refresh_from_db()
    assert gina.role == Role.VIEWER  # no mapped group: the default role
    assert AuditEvent.objects.filter(action="member.role_changed", target_id=str(gina.pk)).count() == 3

    # The workspace's only Admin is linked, then loses the admin group: they stay Admin.
    User.objects.filter(role=Role.ADMIN).exclude(pk=admin_user.pk).update(role=Role.VIEWER)
    idp_a.accounts_set({"root": {"email": admin_user.email, "email_verified": True, "groups": ["staff"]}})
    assert sso_sign_in(client_for(tenant), idp_a, "root").response.status_code == 302
    admin_user.refresh_from_db()
    assert admin_user.role == Role.ADMIN
    assert AuditEvent.objects.filter(action="sso.role_kept", target_id=str(admin_user.pk)).exists()


@pytest.mark.parametrize(
    ("mode", "code", "words"),
    [
        ("expired", "token_expired", "expired"),
        ("wrong_aud", "wrong_audience", "another application"),
        ("wrong_issuer", "wrong_issuer", "another identity provider"),
        ("alg_none", "invalid_token", "is not accepted"),
        ("unknown_key", "bad_signature", "signature"),
    ],
)
def test_forged_id_tokens_are_refused_with_a_clear_page(tenant, admin_user, idp_a, anon_client, mode, code, words):
    sso_configure(admin_user, idp_a)
    idp_a.tamper(mode)

    signed = sso_sign_in(anon_client, idp_a, "alice")

    assert signed.response.status_code == 403
    page = signed.response.content.decode()
    assert f'data-code="{code}"' in page and words in page
    assert logged_in_as(anon_client) is None
    assert failures()[-1]["reason"].startswith(code)


def test_a_replayed_id_token_nonce_is_refused(tenant, admin_user, idp_a, client_for):
    sso_configure(admin_user, idp_a)
    assert sso_sign_in(client_for(tenant), idp_a, "alice").response.status_code == 302
    idp_a.tamper("replay")  # the next token response carries the previous sign-in's ID token

    other = client_for(tenant)
    signed = sso_sign_in(other, idp_a, "alice")

    assert signed.response.status_code == 403
    assert "nonce" in signed.response.content.decode()
    assert logged_in_as(other) is None


def test_tampered_state_and_replayed_code_are_refused(tenant, admin_user, idp_a, client_for):
    sso_configure(admin_user, idp_a)
    client = client_for(tenant)
    started = client.get("/accounts/oidc/login/")
    callback = urlsplit(IdPUserAgent(idp_a).authorize(started["Location"], login="alice"))
    params = parse_qs(callback.query)

    tampered = client.get(callback.path, {"code": params["code"][0], "state": "not-the-state"})
    assert tampered.status_code == 400 and b'data-code="bad_state"' in tampered.content

    assert client.get(f"{callback.path}?{callback.query}").status_code == 302  # the real one works once
    client.logout()
    replayed = client.get(f"{callback.path}?{callback.query}")
    assert replayed.status_code == 400 and b"already used" in replayed.content
    assert logged_in_as(client) is None

    # A stolen code replayed in a new sign-in of another browser: the IdP refuses it (single use).
    thief = client_for(tenant)
    thief_start = parse_qs(urlsplit(thief.get("/accounts/oidc/login/")["Location"]).query)
    stolen = thief.get(callback.path, {"code": params["code"][0], "state": thief_start["state"][0]})
    assert stolen.status_code == 403 and b'data-code="code_refused"' in stolen.content


def test_the_idp_saying_no_is_a_clear_page(tenant, admin_user, idp_a, anon_client):
    sso_configure(admin_user, idp_a)
    started = parse_qs(urlsplit(anon_client.get("/accounts/oidc/login/")["Location"]).query)
    response = anon_client.get(
        "/accounts/oidc/callback/",
        {"error": "access_denied", "error_description": "nope", "state": started["state"][0]},
    )
    assert response.status_code == 403 and b"access_denied" in response.content


def test_without_sso_set_up_the_sso_pages_say_so(tenant, anon_client):
    assert anon_client.get("/accounts/oidc/login/").status_code == 404
    assert b"Sign in with" not in anon_client.get("/accounts/login/").content
    assert anon_client.get("/accounts/oidc/callback/", {"code": "x", "state": "y"}).status_code == 400


def test_log_out_ends_the_idp_session_too(tenant, admin_user, idp_a, client_for):
    sso_configure(admin_user, idp_a)
    client = client_for(tenant)
    agent = IdPUserAgent(idp_a)
    sso_sign_in(client, idp_a, "alice", agent=agent)

    out = client.post("/accounts/logout/")

    assert out.status_code == 302 and out["Location"].startswith(idp_a.issuer + "/session/end?")
    assert "id_token_hint" in parse_qs(urlsplit(out["Location"]).query)
    assert logged_in_as(client) is None
    # The person confirms at the IdP (its own page); the IdP session is then gone: a silent
    # re-authentication (prompt=none) is answered login_required.
    page = agent.http.get(out["Location"], allow_redirects=False, timeout=10)
    xsrf = page.text.split('name="xsrf" value="')[1].split('"')[0]
    confirmed = agent.http.post(
        f"{idp_a.issuer}/session/end/confirm", data={"xsrf": xsrf, "logout": "yes"}, allow_redirects=False, timeout=10
    )
    assert confirmed.headers["location"].endswith("/accounts/login/")  # back to this workspace's log-in
    silent = agent.http.get(
        client.get("/accounts/oidc/login/")["Location"] + "&prompt=none", allow_redirects=False, timeout=10
    )
    assert "error=login_required" in silent.headers["location"]


def test_the_session_ends_when_the_idp_no_longer_vouches(tenant, admin_user, idp_a, client_for):
    """mozilla-django-oidc's session refresh, per workspace: once the ID token's time is up, the next
    page goes to the IdP with prompt=none; the IdP's answer keeps or ends the Tessera session."""
    sso_configure(admin_user, idp_a)
    client = client_for(tenant)
    agent = IdPUserAgent(idp_a)
    sso_sign_in(client, idp_a, "alice", agent=agent)

    def expire():
        session = client.session
        session["oidc_id_token_expiration"] = time.time() - 1
        session.save()

    expire()
    to_idp = client.get("/")
    assert to_idp.status_code == 302 and "prompt=none" in to_idp["Location"]
    back = urlsplit(agent.authorize(to_idp["Location"], login="alice"))  # the IdP session is alive
    assert client.get(f"{back.path}?{back.query}").status_code == 302
    assert logged_in_as(client) == "alice@alpha.test"

    expire()
    to_idp = client.get("/")
    stranger = IdPUserAgent(idp_a)  # a browser whose IdP session is gone
    back = urlsplit(stranger.http.get(to_idp["Location"], allow_redirects=False, timeout=10).headers["location"])
    ended = client.get(f"{back.path}?{back.query}")
    assert ended.status_code == 403 and b"login_required" in ended.content
    assert logged_in_as(client) is None


def test_password_members_are_not_sent_to_the_idp(tenant, admin_user, idp_a, admin_client):
    sso_configure(admin_user, idp_a)
    session = admin_client.session
    session["oidc_id_token_expiration"] = 0
    session.save()
    assert admin_client.get("/").status_code == 200


@pytest.mark.saas_only
def test_workspace_a_providers_code_id_token_and_session_are_refused_on_workspace_b(
    tenant, tenant_b, admin_user, idp_a, idp_b, client_for
):
    """Two workspaces, two providers (the Must show): what A's provider issued means nothing on B."""
    from tenants.runtime import workspace_context

    sso_configure(admin_user, idp_a)
    client_a = client_for(tenant)
    signed_a = sso_sign_in(client_a, idp_a, "alice")
    assert signed_a.response.status_code == 302 and logged_in_as(client_a) == "alice@alpha.test"
    id_token_a = idp_a.last_id_token()
    code_a = parse_qs(urlsplit(signed_a.callback_url).query)["code"][0]
    session_a = client_a.cookies["tessera_session"].value

    with workspace_context(tenant_b):
        admin_b = User.objects.filter(role=Role.ADMIN).first()
        sso_configure(admin_b, idp_b, name="b")

        # A's code, brought to B's callback in a sign-in B started: B's provider never issued it.
        client_b = client_for(tenant_b)
        state_b = parse_qs(urlsplit(client_b.get("/accounts/oidc/login/")["Location"]).query)["state"][0]
        stolen = client_b.get("/accounts/oidc/callback/", {"code": code_a, "state": state_b})
        assert stolen.status_code == 403 and b'data-code="code_refused"' in stolen.content
        assert logged_in_as(client_b) is None

        # A's ID token handed over by B's token endpoint (a hostile network): issuer, audience and keys
        # are A's, so B refuses it.
        idp_b.tamper(f"foreign:{id_token_a}")
        forged = sso_sign_in(client_for(tenant_b), idp_b, "alice")
        assert forged.response.status_code == 403
        assert (
            b'data-code="wrong_' in forged.response.content or b'data-code="bad_signature"' in forged.response.content
        )

        # A's session cookie on B's host: a stranger there.
        stranger = client_for(tenant_b)
        stranger.cookies["tessera_session"] = session_a
        assert logged_in_as(stranger) is None
        assert not User.objects.filter(email="alice@alpha.test").exists()
