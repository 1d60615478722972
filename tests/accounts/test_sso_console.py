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


@pytest.mark.parametrize(
    ("issuer", "words"),
    [
        ("http://127.0.0.1:{port}", "loopback"),
        ("http://10.1.2.3", "private network"),
        ("http://169.254.169.254/latest", "link-local"),
        ("http://localhost:{port}", "loopback"),
    ],
)
def test_an_issuer_on_a_private_address_is_refused(admin_client, idp_a, settings, issuer, words):
    """Without the allow-list, the real provider on 127.0.0.1 is refused as any private address is:
    "Test connection" must not let an Admin make the server fetch from its own network."""
    settings.TESSERA_OUTBOUND_ALLOWED_HOSTS = []
    port = idp_a.issuer.rsplit(":", 1)[1]
    page = admin_client.post("/settings/sso/", {**form(idp_a), "issuer": issuer.format(port=port), "action": "test"})
    text = page.content.decode()
    assert page.status_code == 400 and "is not allowed" in text and words in text
    assert not SSOConfig.objects.exists()


def saml_form(**extra):
    return {
        "protocol": "saml",
        "display_name": "Acme SAML",
        "scopes": "openid",
        "claim_email": "email",
        "claim_name": "displayName",
        "claim_groups": "groups",
        "domains": "alpha.test",
        "default_role": "viewer",
        **extra,
    }


def test_saml_metadata_by_url_is_read_tested_and_saved(admin_client, saml_idp):
    by_url = saml_form(saml_metadata_url=saml_idp.metadata_url)
    tested = admin_client.post("/settings/sso/", {**by_url, "action": "test"})
    text = tested.content.decode()
    assert tested.status_code == 200 and "Metadata OK" in text
    assert saml_idp.entity_id in text and 'data-testid="saml-test-certs">1<' in text
    assert "/accounts/saml/acs/" in text and "/accounts/saml/metadata/" in text
    assert not SSOConfig.objects.exists()

    saved = admin_client.post("/settings/sso/", {**by_url, "enabled": "on", "action": "save"})
    assert saved.status_code == 302
    config = SSOConfig.objects.get()
    assert (config.protocol, config.saml_idp_entity_id) == ("saml", saml_idp.entity_id)
    assert config.saml_sso_url == saml_idp.sso_url and "IDPSSODescriptor" in config.saml_metadata_xml
    changes = AuditEvent.objects.filter(action="sso.settings_changed").latest("seq").changes
    assert changes["after"]["saml_idp_entity_id"] == saml_idp.entity_id
    assert b"Sign in with Acme SAML" in admin_client.__class__(admin_client.tenant).get("/accounts/login/").content


def test_saml_metadata_uploaded_as_a_file_is_saved(admin_client, saml_idp):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("idp.xml", saml_idp.metadata_xml().encode(), content_type="application/xml")
    saved = admin_client.post(
        "/settings/sso/", {**saml_form(), "saml_metadata_file": upload, "enabled": "on", "action": "save"}
    )
    assert saved.status_code == 302
    assert SSOConfig.objects.get().saml_idp_entity_id == saml_idp.entity_id


@pytest.mark.parametrize(
    ("metadata", "words"),
    [
        ("<not xml", "could not be read as SAML metadata"),
        ('<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"/>', "exactly one"),
    ],
)
def test_unusable_saml_metadata_is_a_form_error(admin_client, metadata, words):
    page = admin_client.post(
        "/settings/sso/", {**saml_form(saml_metadata_xml=metadata), "enabled": "on", "action": "save"}
    )
    assert page.status_code == 400 and words in page.content.decode()
    assert not SSOConfig.objects.exists()


def test_a_saml_metadata_url_on_a_private_address_is_refused(admin_client, saml_idp, settings):
    settings.TESSERA_OUTBOUND_ALLOWED_HOSTS = []
    page = admin_client.post("/settings/sso/", {**saml_form(saml_metadata_url=saml_idp.metadata_url), "action": "test"})
    assert page.status_code == 400 and "is not allowed" in page.content.decode()


def test_saml_on_without_metadata_is_refused(admin_client):
    page = admin_client.post("/settings/sso/", {**saml_form(), "enabled": "on", "action": "save"})
    assert page.status_code == 400 and "metadata" in page.content.decode()
