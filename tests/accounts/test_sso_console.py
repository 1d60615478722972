"""The console's Single sign-on page: Test connection against a real OpenID provider, saving (secret
encrypted at rest, audited without it), groups → roles, SCIM tokens shown once, and who may use it."""

from __future__ import annotations

import pytest

from accounts.models import SCIMToken, SSOConfig, SSOGroupRole
from audit.models import AuditEvent
from rbac.roles import Role


def form(provider, **extra):
    return {
        "protocol": "oidc",
        "display_name": "Acme IdP",
        "issuer": provider.issuer,
        "client_id": "tessera-a",
        "client_secret": "secret-a-0123456789",
        "scopes": "openid email profile groups",
        "claim_email": "email",
        "claim_name": "name",
        "claim_groups": "groups",
        "domains": "alpha.test\n@Example.COM",
        "default_role": "analyst",
        "group_roles": "tessera-admins = admin\nstaff=manager",
        **extra,
    }


def test_test_connection_reports_keys_algorithms_and_the_redirect_uri(admin_client, idp_a):
    page = admin_client.post("/settings/sso/", {**form(idp_a), "action": "test"})
    text = page.content.decode()
    assert page.status_code == 200 and "Connection OK" in text
    assert 'data-testid="sso-test-keys">1<' in text and "RS256" in text
    assert "/accounts/oidc/callback/" in text
    assert not SSOConfig.objects.exists()  # testing saves nothing


def test_an_unreachable_or_wrong_issuer_is_a_form_error(admin_client, idp_a):
    down = admin_client.post("/settings/sso/", {**form(idp_a), "issuer": "http://127.0.0.1:9", "action": "test"})
    assert down.status_code == 400 and "could not be reached" in down.content.decode()
    wrong = admin_client.post("/settings/sso/", {**form(idp_a), "issuer": idp_a.issuer + "/x", "action": "save"})
    assert wrong.status_code == 400


def test_saving_encrypts_the_secret_and_audits_the_change(admin_client, idp_a):
    saved = admin_client.post("/settings/sso/", {**form(idp_a), "enabled": "on", "action": "save"})
    assert saved.status_code == 302
    config = SSOConfig.objects.get()
    assert config.enabled and config.domains == ["alpha.test", "example.com"]
    assert config.client_secret_encrypted and "secret-a" not in config.client_secret_encrypted
    assert dict(SSOGroupRole.objects.values_list("group", "role")) == {"tessera-admins": "admin", "staff": "manager"}
    event = AuditEvent.objects.filter(action="sso.settings_changed").latest("seq")
    assert event.changes["client_secret"] == "changed" and "secret-a" not in str(event.changes)
    assert AuditEvent.objects.filter(action="sso.group_roles_changed").exists()

    # Saving again with an empty secret keeps it.
    before = config.client_secret_encrypted
    admin_client.post("/settings/sso/", {**form(idp_a), "client_secret": "", "enabled": "on", "action": "save"})
    config.refresh_from_db()
    assert config.client_secret_encrypted == before


def test_sso_only_needs_a_break_glass_admin(admin_client, admin_user, idp_a):
    refused = admin_client.post("/settings/sso/", {**form(idp_a), "enabled": "on", "sso_only": "on", "action": "save"})
    assert refused.status_code == 400 and "break-glass" in refused.content.decode()
    ok = admin_client.post(
        "/settings/sso/",
        {
            **form(idp_a),
            "enabled": "on",
            "sso_only": "on",
            "break_glass_admins": [str(admin_user.pk)],
            "action": "save",
        },
    )
    assert ok.status_code == 302 and SSOConfig.objects.get().sso_only


def test_a_bad_group_line_is_a_form_error(admin_client, idp_a):
    page = admin_client.post("/settings/sso/", {**form(idp_a), "group_roles": "staff = boss", "action": "save"})
    assert page.status_code == 400 and "Line 1" in page.content.decode()


def test_scim_token_is_shown_once_and_stored_hashed(admin_client):
    page = admin_client.post("/settings/sso/scim-tokens/")
    raw = page.content.decode().split('data-testid="scim-token" aria-label="SCIM token"')[0].rsplit('value="', 1)[1]
    raw = raw.split('"')[0]
    assert raw.startswith("tss_")
    token = SCIMToken.objects.get()
    assert raw not in token.token_hash and raw not in admin_client.get("/settings/sso/").content.decode()
    admin_client.post(f"/settings/sso/scim-tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is not None


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ANALYST, Role.VIEWER])
def test_only_sso_managers_may_open_it(role, make_user, client_for, tenant):
    client = client_for(tenant, make_user(role=role))
    assert client.get("/settings/sso/").status_code == 403
    assert client.post("/settings/sso/scim-tokens/").status_code == 403
    assert not SCIMToken.objects.exists()
