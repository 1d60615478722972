"""SSO-only mode on every way in: the password form, password reset, invitations (refused with a
message that says why, except for the named break-glass Admins), while API keys and paired devices
keep working. The IdP is a real oidc-provider (tests/accounts/conftest.py)."""

from __future__ import annotations

import pytest
from django.core import mail

from accounts.services import invitation_create
from rbac.roles import Role
from tests.accounts.conftest import sso_configure, sso_sign_in
from tests.conftest import ADMIN_PASSWORD
from tests.sync.conftest import own_channel_layer  # noqa: F401 - a fixture

WHY = "requires single sign-on"


@pytest.fixture
def sso_only(tenant, admin_user, idp_a):
    return sso_configure(admin_user, idp_a, sso_only=True, break_glass=[admin_user])


def test_password_log_in_is_refused_except_for_break_glass_admins(sso_only, admin_user, make_user, client_for, tenant):
    member = make_user(role=Role.MANAGER)
    refused = client_for(tenant).post("/accounts/login/", {"username": member.email, "password": ADMIN_PASSWORD})
    assert refused.status_code == 400 and WHY in refused.content.decode()
    assert "Sign in with IdP A" in refused.content.decode()

    glass = client_for(tenant)
    allowed = glass.post("/accounts/login/", {"username": admin_user.email, "password": ADMIN_PASSWORD})
    assert allowed.status_code == 302 and glass.get("/").status_code == 200


def test_an_admin_not_named_break_glass_is_refused_too(sso_only, make_user, client_for, tenant):
    other_admin = make_user(role=Role.ADMIN)
    refused = client_for(tenant).post("/accounts/login/", {"username": other_admin.email, "password": ADMIN_PASSWORD})
    assert refused.status_code == 400 and WHY in refused.content.decode()


def test_password_reset_is_refused_without_telling_who_is_a_member(sso_only, make_user, anon_client, admin_user):
    member = make_user()
    for email in (member.email, "stranger@alpha.test"):
        refused = anon_client.post("/accounts/password-reset/", {"email": email})
        assert refused.status_code == 400 and WHY in refused.content.decode()
    assert mail.outbox == []
    assert anon_client.post("/accounts/password-reset/", {"email": admin_user.email}).status_code == 302


def test_invitations_cannot_set_a_password_and_lead_to_sso(sso_only, admin_user, anon_client, idp_a):
    issued = invitation_create(actor=admin_user, email="ivy@alpha.test", role=Role.ANALYST)
    page = anon_client.get(issued.path())
    assert b"requires single sign-on" in page.content and b'data-testid="sso-button"' in page.content
    refused = anon_client.post(
        issued.path(), {"full_name": "Ivy", "password": "long-enough-pass-1", "password_confirm": "long-enough-pass-1"}
    )
    assert refused.status_code == 400 and WHY in refused.content.decode()
    # The invitee signs in through the IdP instead.
    idp_a.accounts_set({"ivy": {"email": "ivy@alpha.test", "email_verified": True}})
    assert sso_sign_in(anon_client, idp_a, "ivy").response.status_code == 302


@pytest.mark.usefixtures("own_channel_layer")
def test_api_keys_and_paired_devices_keep_working(sso_only, admin_user, client_for, tenant):
    from partners.services import api_key_create
    from sync.services import device_for_token, pairing_exchange, pairing_start
    from tests.sync.conftest import Socket, run

    _, raw = api_key_create(actor=admin_user, name="ERP", mode="live", scopes=["collections:read"])
    response = client_for(tenant, HTTP_AUTHORIZATION=f"Bearer {raw}").get("/api/v1/collections")
    assert response.status_code == 200

    started = pairing_start(actor=admin_user, user=admin_user, role=Role.MANAGER)
    device, token = pairing_exchange(tenant=tenant, code=started.code, name="Phone")
    assert device_for_token(token) == device

    async def sync_connects():  # the phone's websocket is let in (sync ignores SSO-only)
        sock = Socket(tenant, token)
        accepted = (await sock.connect())[0]
        await sock.close()
        return accepted

    assert run(sync_connects)
