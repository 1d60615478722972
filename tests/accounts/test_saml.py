"""SAML 2.0 per workspace, end to end against a real SAML IdP (pysaml2's own identity provider,
tests/accounts/saml_harness.py, signing with xmlsec1). Tessera runs in the test process (Django's test
client); the IdP reads the AuthnRequest from the URL Tessera redirects to and answers with the form
fields a browser would post to the ACS.

What the model leaves out: the IdP's log-in page (the person is taken as signed in there), TLS,
encrypted assertions and single log-out (not offered). Forged answers are made by the IdP itself
(unsigned, another audience or recipient, expired, another request) or by a second IdP claiming its
entity ID with a key of its own, as a hostile network or IdP would send them.
"""

from __future__ import annotations

import base64

import pytest

from accounts.models import SSOIdentity, User
from audit.models import AuditEvent
from rbac.roles import Role
from tests.accounts.conftest import saml_configure, saml_start
from tests.conftest import host_of


def logged_in_as(client) -> str | None:
    response = client.get("/")
    if response.status_code != 200 or not response.context:
        return None
    user = response.context["user"]
    return user.email if user.is_authenticated else None


def failures() -> list[dict]:
    return [e.changes for e in AuditEvent.objects.filter(action="sso.login_failed").order_by("seq")]


def test_a_signed_assertion_signs_a_new_person_in_just_in_time(tenant, admin_user, saml_idp, anon_client):
    saml_configure(admin_user, saml_idp, default_role=Role.ANALYST, group_roles={"tessera-admins": Role.MANAGER})
    saml_idp.trust_sp(anon_client.get("/accounts/saml/metadata/").content.decode())

    answer = saml_idp.answer(saml_start(anon_client), "bob")
    response = answer.post_to(anon_client)

    assert response.status_code == 302 and response["Location"] == "/", response.content[:800]
    bob = User.objects.get(email="bob@alpha.test")
    assert (bob.role, bob.full_name, bob.auth_source) == (Role.MANAGER, "Bob Brown", User.AuthSource.SSO)
    assert SSOIdentity.objects.filter(user=bob, issuer=saml_idp.entity_id, subject="bob").exists()
    assert logged_in_as(anon_client) == "bob@alpha.test"
    login = AuditEvent.objects.filter(action="user.logged_in", actor_label="bob@alpha.test").get()
    assert login.changes == {"method": "SAMLSessionBackend"}


def test_the_login_page_offers_the_saml_idp_and_routes_its_domains_there(tenant, admin_user, saml_idp, anon_client):
    saml_configure(admin_user, saml_idp)
    page = anon_client.get("/accounts/login/")
    assert b"Sign in with SAML IdP A" in page.content
    assert saml_idp.base_url in page["Content-Security-Policy"]  # the redirect after the form may go there

    typed = anon_client.post("/accounts/login/", {"username": "dora@alpha.test", "password": ""})
    assert typed.status_code == 302 and typed["Location"].startswith("/accounts/saml/login/")
    location = anon_client.get(typed["Location"])["Location"]
    assert location.startswith(saml_idp.sso_url + "?SAMLRequest=")
    request = saml_idp.read_request(location)
    assert request.assertion_consumer_service_url == f"http://{host_of(tenant)}/accounts/saml/acs/"


def test_the_sp_metadata_names_this_workspace_and_wants_signed_assertions(tenant, admin_user, saml_idp, anon_client):
    saml_configure(admin_user, saml_idp)
    response = anon_client.get("/accounts/saml/metadata/")
    assert response.status_code == 200 and response["Content-Type"] == "application/samlmetadata+xml"
    xml = response.content.decode()
    host = host_of(tenant)
    assert f'entityID="http://{host}/accounts/saml/metadata/"' in xml
    assert f'Location="http://{host}/accounts/saml/acs/"' in xml
    assert 'WantAssertionsSigned="true"' in xml


@pytest.mark.parametrize(
    ("forgery", "code", "words"),
    [
        ({"sign_assertion": False}, "unsigned", "not signed"),
        ({"sign_assertion": False, "sign_response": True}, "unsigned", "not signed"),
        ({"audience": "http://elsewhere.test/sp"}, "wrong_audience", "another service provider"),
        ({"acs_url": "http://elsewhere.test/acs"}, "wrong_recipient", "not addressed to this workspace"),
        ({"lifetime_minutes": -10}, "expired", "expired"),
        ({"in_response_to": "id-not-asked-for"}, "unsolicited", "does not belong to a sign-in started here"),
    ],
)
def test_forged_answers_are_refused_with_a_clear_page(tenant, admin_user, saml_idp, anon_client, forgery, code, words):
    saml_configure(admin_user, saml_idp)

    answer = saml_idp.answer(saml_start(anon_client), "alice", **forgery)
    response = anon_client.post(
        "/accounts/saml/acs/", {"SAMLResponse": answer.saml_response, "RelayState": answer.relay_state}
    )

    assert response.status_code == 403, response.content[:800]
    assert words in response.content.decode()
    assert logged_in_as(anon_client) is None
    assert not User.objects.filter(email="alice@alpha.test").exists()
    assert failures()[-1] == {"reason": failures()[-1]["reason"], "protocol": "saml"}
    assert failures()[-1]["reason"].startswith(code + ":")


def test_an_assertion_signed_by_a_key_not_in_the_metadata_is_refused(tenant, admin_user, saml_idp, anon_client):
    saml_configure(admin_user, saml_idp)
    answer = saml_idp.answer(saml_start(anon_client), "alice", forged_key=True)
    response = answer.post_to(anon_client)
    assert response.status_code == 403 and "signature" in response.content.decode()
    assert logged_in_as(anon_client) is None


def test_a_tampered_assertion_is_refused(tenant, admin_user, saml_idp, anon_client):
    saml_configure(admin_user, saml_idp)
    answer = saml_idp.answer(saml_start(anon_client), "alice")
    xml = base64.b64decode(answer.saml_response).decode()
    assert "alice@alpha.test" in xml
    forged = base64.b64encode(xml.replace("alice@alpha.test", "admin@alpha.test").encode()).decode()

    response = anon_client.post("/accounts/saml/acs/", {"SAMLResponse": forged})

    assert response.status_code == 403 and "signature" in response.content.decode()
    assert logged_in_as(anon_client) is None


def test_a_replayed_assertion_is_refused_in_any_session(tenant, admin_user, saml_idp, anon_client, client_for):
    saml_configure(admin_user, saml_idp)
    answer = saml_idp.answer(saml_start(anon_client), "alice")
    assert answer.post_to(anon_client).status_code == 302
    anon_client.post("/accounts/logout/")

    again = answer.post_to(anon_client, same_site=True)
    assert again.status_code == 403 and "does not belong to a sign-in started here" in again.content.decode()

    # An attacker with the captured answer and a sign-in of their own started (same request ID in
    # their session is impossible; the assertion ID is what stops it).
    thief = client_for(tenant)
    session = thief.session
    session["saml_requests"] = {answer.request_id: ""}
    session.save()
    stolen = answer.post_to(thief)
    assert stolen.status_code == 403 and "already used" in stolen.content.decode()
    assert logged_in_as(thief) is None


def test_an_answer_posted_without_the_session_cookie_is_posted_again_from_tessera(
    tenant, admin_user, saml_idp, anon_client, client_for
):
    """Browsers withhold a SameSite=Lax cookie from a POST coming from the IdP's site: Tessera's page
    posts the answer once more from its own origin, and then the session's request is found."""
    saml_configure(admin_user, saml_idp)
    answer = saml_idp.answer(saml_start(anon_client), "alice")

    cookieless = client_for(tenant).post("/accounts/saml/acs/", {"SAMLResponse": answer.saml_response})
    assert cookieless.status_code == 200
    form = cookieless.content.decode()
    assert "data-autosubmit" in form and f'value="{answer.saml_response}"' in form
    assert not User.objects.filter(email="alice@alpha.test").exists()

    reposted = anon_client.post("/accounts/saml/acs/", {"SAMLResponse": answer.saml_response, "tessera_same_site": "1"})
    assert reposted.status_code == 302 and logged_in_as(anon_client) == "alice@alpha.test"


@pytest.mark.parametrize(
    "body",
    [{}, {"SAMLResponse": "not base64 at all!"}, {"SAMLResponse": base64.b64encode(b"<x>").decode()}],
)
def test_garbage_at_the_acs_is_a_clear_page_never_a_500(tenant, admin_user, saml_idp, anon_client, body):
    saml_configure(admin_user, saml_idp)
    saml_start(anon_client)
    response = anon_client.post("/accounts/saml/acs/", body)
    assert response.status_code in (400, 403)
    assert b"sso-failed" in response.content or b"Sign-in" in response.content or b"sign" in response.content
    assert anon_client.get("/accounts/saml/acs/").status_code == 405


def test_without_saml_set_up_the_saml_pages_say_so(tenant, anon_client):
    assert anon_client.get("/accounts/saml/login/").status_code == 404
    assert anon_client.post("/accounts/saml/acs/", {"SAMLResponse": "x"}).status_code == 404


def test_linking_an_existing_member_needs_a_listed_domain(tenant, admin_user, saml_idp, make_user, client_for):
    member = make_user(role=Role.MANAGER, email="alice@alpha.test")
    saml_configure(admin_user, saml_idp, domains=["other.test"])
    client = client_for(tenant)
    refused = saml_idp.answer(saml_start(client), "alice").post_to(client)
    assert refused.status_code == 403 and "cannot be linked" in refused.content.decode()

    saml_configure(admin_user, saml_idp, domains=["alpha.test"])
    client = client_for(tenant)
    assert saml_idp.answer(saml_start(client), "alice").post_to(client).status_code == 302
    assert SSOIdentity.objects.get(issuer=saml_idp.entity_id, subject="alice").user == member
    member.refresh_from_db()
    assert member.role == Role.MANAGER  # no group mapping: the role is not the IdP's to decide


@pytest.mark.saas_only
def test_workspace_a_assertion_is_refused_on_workspace_b(tenant, tenant_b, admin_user, saml_idp, client_for):
    """Both workspaces trust the same IdP; an answer made for A (its audience and ACS) is posted to B's
    ACS, in a session that started a sign-in on B."""
    from tenants.runtime import workspace_context

    saml_configure(admin_user, saml_idp)
    client_a = client_for(tenant)
    answer_for_a = saml_idp.answer(saml_start(client_a), "alice")
    with workspace_context(tenant_b):
        admin_b = User.objects.filter(role=Role.ADMIN).first()
        saml_configure(admin_b, saml_idp)
        client_b = client_for(tenant_b)
        location_b = saml_start(client_b)
        session = client_b.session  # even with A's request ID outstanding in B's session
        session["saml_requests"] = {**session["saml_requests"], answer_for_a.request_id: ""}
        session.save()
        response = client_b.post("/accounts/saml/acs/", {"SAMLResponse": answer_for_a.saml_response})
        assert response.status_code == 403, response.content[:500]
        assert "wrong audience" in response.content.decode() or "not addressed" in response.content.decode()
        assert not User.objects.filter(email="alice@alpha.test").exists()
        assert saml_idp.read_request(location_b).issuer.text.startswith(f"http://{tenant_b.host()}")
    assert not User.objects.filter(email="alice@alpha.test").exists()
