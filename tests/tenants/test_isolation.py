"""Tenant isolation on real PostgreSQL with two tenants: a credential of alpha means nothing on beta.

Every surface built so far is tried from alpha against beta's host: session cookies (even when the
same user id exists in both schemas), invitation links, password-reset links, sign-up handoff links,
log-in credentials, the members and audit pages, log-in throttling, and audit verification.
"""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import User
from audit.models import AuditEvent
from audit.services import audit_event_record
from core.actors import Actor
from rbac.roles import Role
from tenants.runtime import workspace_context
from tests.conftest import ADMIN_PASSWORD

pytestmark = pytest.mark.saas_only

ALPHA_HOST = "alpha.tessera.localhost"
BETA_HOST = "beta.tessera.localhost"
SESSION_COOKIE = "tessera_session"


@pytest.fixture
def alpha(tenants_provisioned, db):
    return tenants_provisioned["alpha"]


@pytest.fixture
def beta(tenants_provisioned, db):
    return tenants_provisioned["beta"]


@pytest.fixture
def alpha_admin(alpha):
    with workspace_context(alpha):
        return User.objects.get(email="admin@alpha.test")


@pytest.fixture
def beta_admin(beta):
    with workspace_context(beta):
        return User.objects.get(email="admin@beta.test")


def browser(host: str) -> Client:
    return Client(HTTP_HOST=host)


def logged_in_on_alpha() -> Client:
    """A real log-in through alpha's form (not force_login): the cookie a browser would hold."""
    client = browser(ALPHA_HOST)
    response = client.post("/accounts/login/", {"username": "admin@alpha.test", "password": ADMIN_PASSWORD})
    assert response.status_code == 302, "log-in on alpha itself works"
    assert client.get("/members/").status_code == 200
    return client


def replay(cookie_value: str, host: str) -> Client:
    client = browser(host)
    client.cookies[SESSION_COOKIE] = cookie_value
    return client


def events(tenant, **filters) -> list[AuditEvent]:
    with workspace_context(tenant):
        return list(AuditEvent.objects.filter(**filters).order_by("seq"))


# --- sessions ---------------------------------------------------------------------------------------------


def test_session_cookie_of_alpha_is_anonymous_on_beta(alpha, beta):
    stolen = logged_in_on_alpha().cookies[SESSION_COOKIE].value

    on_beta = replay(stolen, BETA_HOST)
    for path in ("/", "/members/", "/audit/", "/settings/"):
        response = on_beta.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/accounts/login/"), path
    assert not on_beta.get("/accounts/login/").wsgi_request.user.is_authenticated

    assert replay(stolen, ALPHA_HOST).get("/members/").status_code == 200, "the cookie is still good on alpha"


def test_same_user_id_in_both_schemas_does_not_cross(alpha_admin, beta_admin, alpha, beta):
    """The first user of every workspace has the same primary key: a shared session store would log
    alpha's admin in on beta as beta's admin."""
    assert alpha_admin.pk == beta_admin.pk

    stolen = logged_in_on_alpha().cookies[SESSION_COOKIE].value
    response = replay(stolen, BETA_HOST).get("/members/")
    assert response.status_code == 302
    assert not response.wsgi_request.user.is_authenticated

    from django.contrib.sessions.models import Session

    with workspace_context(alpha):
        assert Session.objects.get(session_key=stolen).get_decoded()["_auth_user_id"] == str(alpha_admin.pk)
    with workspace_context(beta):
        assert not Session.objects.filter(session_key=stolen).exists()


def test_session_cookie_is_host_only(alpha):
    cookie = logged_in_on_alpha().cookies[SESSION_COOKIE]
    assert cookie["domain"] == "", "no Domain attribute: the browser sends it to alpha's host only"
    assert cookie["httponly"]


def test_alpha_admin_cannot_change_beta_members_with_its_session(alpha, beta, beta_admin):
    with workspace_context(beta):
        member = User.objects.create_user(email="member@beta.test", password=ADMIN_PASSWORD, role=Role.VIEWER)
    stolen = logged_in_on_alpha().cookies[SESSION_COOKIE].value

    on_beta = replay(stolen, BETA_HOST)
    assert on_beta.post(f"/members/{member.pk}/role/", {"role": Role.ADMIN}).status_code == 302
    assert on_beta.post(f"/members/{member.pk}/remove/").status_code == 302
    assert on_beta.post("/members/", {"email": "spy@evil.test", "role": Role.ADMIN}).status_code == 302
    with workspace_context(beta):
        member.refresh_from_db()
        assert (member.role, member.is_active) == (Role.VIEWER, True)
        from accounts.models import Invitation

        assert not Invitation.objects.filter(email="spy@evil.test").exists()


# --- links ------------------------------------------------------------------------------------------------


def test_invitation_link_of_alpha_does_not_work_on_beta(alpha, beta, alpha_admin):
    from accounts.services import invitation_create

    with workspace_context(alpha):
        issued = invitation_create(actor=alpha_admin, email="newcomer@x.test", role=Role.MANAGER)

    on_beta = browser(BETA_HOST)
    assert on_beta.get(issued.path()).status_code == 404
    response = on_beta.post(
        issued.path(), {"full_name": "New", "password": ADMIN_PASSWORD, "password_confirm": ADMIN_PASSWORD}
    )
    assert response.status_code == 404
    with workspace_context(beta):
        assert not User.objects.filter(email="newcomer@x.test").exists()

    assert browser(ALPHA_HOST).get(issued.path()).status_code == 200, "still pending on alpha"


def test_password_reset_link_of_alpha_does_not_work_on_beta(alpha, beta, alpha_admin, beta_admin):
    assert alpha_admin.pk == beta_admin.pk  # the link's uid names a user that exists on beta too
    mail.outbox.clear()
    response = browser(ALPHA_HOST).post("/accounts/password-reset/", {"email": "admin@alpha.test"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"http://(?P<host>[^/\s]+)(?P<path>/accounts/reset/[^/\s]+/[^/\s]+/)", mail.outbox[0].body)
    assert link["host"] == ALPHA_HOST

    on_beta = browser(BETA_HOST)
    response = on_beta.get(link["path"])
    assert response.status_code == 200
    assert b"Link expired" in response.content
    new_password = {"new_password1": "a-brand-new-secret-7", "new_password2": "a-brand-new-secret-7"}
    on_beta.post(link["path"], new_password)
    on_beta.post(link["path"].rsplit("/", 2)[0] + "/set-password/", new_password)
    with workspace_context(beta):
        assert User.objects.get(pk=beta_admin.pk).check_password(ADMIN_PASSWORD), "beta's admin is untouched"
    with workspace_context(alpha):
        assert User.objects.get(pk=alpha_admin.pk).check_password(ADMIN_PASSWORD)

    on_alpha = browser(ALPHA_HOST).get(link["path"])
    assert on_alpha.status_code == 302 and on_alpha["Location"].endswith("/set-password/"), "valid on alpha"


def test_sign_up_handoff_link_of_alpha_does_not_work_on_beta(alpha, beta, alpha_admin):
    from accounts.services import login_handoff_create

    with workspace_context(alpha):
        token = login_handoff_create(user=alpha_admin)
    path = f"/accounts/handoff/{token}/"

    on_beta = browser(BETA_HOST)
    response = on_beta.get(path)
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert on_beta.get("/members/").status_code == 302, "not logged in on beta"

    on_alpha = browser(ALPHA_HOST)
    assert on_alpha.get(path)["Location"] == "/", "the beta attempt did not use it up"
    assert on_alpha.get("/members/").status_code == 200


# --- credentials --------------------------------------------------------------------------------------------


def test_alpha_credentials_do_not_log_in_on_beta(alpha, beta):
    client = browser(BETA_HOST)
    response = client.post("/accounts/login/", {"username": "admin@alpha.test", "password": ADMIN_PASSWORD})
    assert response.status_code == 400
    assert b"do not match an account in this workspace" in response.content
    assert client.get("/").status_code == 302

    failed = events(beta, action="user.login_failed")
    assert failed and failed[-1].actor_label == "admin@alpha.test", "recorded on beta, where it happened"
    assert not events(alpha, action="user.login_failed", actor_label="admin@alpha.test")


def test_one_person_two_accounts(alpha, beta):
    """The same e-mail in two workspaces is two accounts, each with its own password."""
    with workspace_context(alpha):
        User.objects.create_user(email="pat@x.test", password="alpha-password-1", role=Role.VIEWER)
    with workspace_context(beta):
        User.objects.create_user(email="pat@x.test", password="beta-password-2", role=Role.ADMIN)

    def can_log_in(host, password):
        client = browser(host)
        return client.post("/accounts/login/", {"username": "pat@x.test", "password": password}).status_code == 302

    assert can_log_in(ALPHA_HOST, "alpha-password-1")
    assert not can_log_in(BETA_HOST, "alpha-password-1")
    assert can_log_in(BETA_HOST, "beta-password-2")
    assert not can_log_in(ALPHA_HOST, "beta-password-2")


def test_lockout_on_alpha_does_not_lock_beta(alpha, beta):
    for tenant in (alpha, beta):
        with workspace_context(tenant):
            User.objects.create_user(email="pat@x.test", password="right-password-1", role=Role.VIEWER)
    for _ in range(6):
        browser(ALPHA_HOST).post("/accounts/login/", {"username": "pat@x.test", "password": "wrong-password"})
    locked = browser(ALPHA_HOST).post("/accounts/login/", {"username": "pat@x.test", "password": "right-password-1"})
    assert locked.status_code != 302, "alpha locked the pair out"

    on_beta = browser(BETA_HOST).post("/accounts/login/", {"username": "pat@x.test", "password": "right-password-1"})
    assert on_beta.status_code == 302


# --- what an admin sees ----------------------------------------------------------------------------------


def test_alpha_admin_sees_only_alpha_members_and_events(alpha, beta):
    with workspace_context(beta):
        User.objects.create_user(email="only-in-beta@beta.test", password=ADMIN_PASSWORD, role=Role.VIEWER)
        audit_event_record(action="member.invited", actor=Actor("user", "1", "beta-secret@beta.test"))

    client = logged_in_on_alpha()
    members = client.get("/members/").content.decode()
    assert "admin@alpha.test" in members
    assert "only-in-beta@beta.test" not in members and "admin@beta.test" not in members

    log = client.get("/audit/").content.decode()
    assert "beta-secret" not in log and "admin@beta.test" not in log
    export = b"".join(client.get("/audit/", {"format": "csv"}).streaming_content).decode()
    assert "beta-secret" not in export and "admin@beta.test" not in export
    assert "admin@alpha.test" in export

    on_beta = replay(client.cookies[SESSION_COOKIE].value, BETA_HOST)
    for path in ("/members/", "/audit/", "/audit/?format=csv", "/audit/?actor=beta"):
        assert on_beta.get(path).status_code == 302, path


def test_audit_events_are_recorded_in_the_tenant_where_they_happen(alpha, beta):
    before_alpha, before_beta = len(events(alpha)), len(events(beta))
    logged_in_on_alpha()
    assert len(events(alpha)) == before_alpha + 1
    assert len(events(beta)) == before_beta
    assert events(alpha)[-1].action == "user.logged_in"


def test_cache_entries_do_not_cross_tenants(alpha, beta):
    from django.core.cache import cache

    with workspace_context(alpha):
        cache.set("isolation:probe", "alpha's value", 30)
    with workspace_context(beta):
        assert cache.get("isolation:probe") is None
        cache.set("isolation:probe", "beta's value", 30)
    with workspace_context(alpha):
        assert cache.get("isolation:probe") == "alpha's value"
        cache.delete("isolation:probe")
    with workspace_context(beta):
        assert cache.get("isolation:probe") == "beta's value"
        cache.delete("isolation:probe")


# --- audit verification ------------------------------------------------------------------------------


def test_audit_verify_is_per_tenant(alpha, beta):
    from tests.audit.tampering import audit_sql

    with workspace_context(alpha):
        victim = audit_event_record(action="member.invited", actor=Actor.system("isolation"))
        audit_event_record(action="member.invited", actor=Actor.system("isolation"))
        audit_sql("UPDATE audit_auditevent SET actor_label = 'forged' WHERE seq = %s", [victim.seq])
    with workspace_context(beta):
        audit_event_record(action="member.invited", actor=Actor.system("isolation"))

    out = StringIO()
    call_command("audit_verify", "--tenant", "beta", stdout=out)
    assert out.getvalue().startswith("beta: OK")

    out = StringIO()
    with pytest.raises(CommandError):
        call_command("audit_verify", stdout=out)
    text = out.getvalue()
    assert re.search(rf"^alpha: BROKEN at event #{victim.seq}\b", text, flags=re.M), text
    assert re.search(r"^beta: OK, \d+ events verified$", text, flags=re.M), text

    with pytest.raises(CommandError):
        call_command("audit_verify", "--tenant", "alpha", stdout=StringIO())


def test_each_tenant_has_its_own_chain(alpha, beta):
    with workspace_context(alpha):
        a = audit_event_record(action="member.invited")
    with workspace_context(beta):
        b = audit_event_record(action="member.invited")
    assert a.hash != b.hash
    for tenant in (alpha, beta):
        chain = events(tenant)
        assert [e.seq for e in chain] == list(range(1, len(chain) + 1))
