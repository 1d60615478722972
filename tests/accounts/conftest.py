"""SSO fixtures: two real OpenID providers (npm oidc-provider, tests/accounts/oidc_harness.py), each
with a client registered for every workspace host the tests use, and a way to sign in through them."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from tests.accounts.oidc_harness import IdPUserAgent, OpenIDProvider
from tests.conftest import SAAS


@pytest.fixture(autouse=True)
def _identity_providers_on_this_machine(settings):
    """The test IdPs listen on 127.0.0.1, which the SSRF guard (core.ssrf) refuses: they are allowed by
    the explicit allow-list, as a developer's would be (test_sso_console.py checks the guard without it)."""
    settings.TESSERA_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]


def _hosts() -> list[str]:
    if SAAS:
        return [f"{slug}.{settings.TESSERA_BASE_DOMAIN}" for slug in ("alpha", "beta")]
    return ["127.0.0.1"]


def provider_client(name: str, hosts: list[str]) -> dict:
    return {
        "client_id": f"tessera-{name}",
        "client_secret": f"secret-{name}-0123456789",
        "redirect_uris": [f"http://{h}/accounts/oidc/callback/" for h in hosts],
        "post_logout_redirect_uris": [f"http://{h}/accounts/login/" for h in hosts],
    }


PEOPLE = {
    "alice": {"email": "alice@alpha.test", "email_verified": True, "name": "Alice Anders", "groups": ["staff"]},
    "bob": {"email": "bob@alpha.test", "email_verified": True, "name": "Bob Brown", "groups": ["tessera-admins"]},
}


@pytest.fixture(scope="session")
def idp_a():
    provider = OpenIDProvider(clients=[provider_client("a", _hosts())], accounts=PEOPLE)
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def idp_b():
    provider = OpenIDProvider(clients=[provider_client("b", _hosts())], accounts=PEOPLE)
    yield provider
    provider.stop()


def sso_configure(actor, provider: OpenIDProvider, name: str = "a", **values):
    """Point the current workspace at `provider` through the same services the console uses."""
    from accounts.oidc import oidc_discover
    from accounts.sso import sso_config_save, sso_group_roles_set

    client = provider_client(name, [])
    group_roles = values.pop("group_roles", {})
    break_glass = values.pop("break_glass", None)
    config = sso_config_save(
        actor=actor,
        values={
            "enabled": True,
            "protocol": "oidc",
            "display_name": f"IdP {name.upper()}",
            "issuer": provider.issuer,
            "client_id": client["client_id"],
            "scopes": "openid email profile groups",
            "domains": ["alpha.test"],
            **values,
        },
        client_secret=client["client_secret"],
        discovery=oidc_discover(provider.issuer).document,
        break_glass=break_glass,
    )
    sso_group_roles_set(actor=actor, mapping=group_roles)
    return config


@dataclass
class SignIn:
    response: object  # the callback's response
    callback_url: str


def sso_sign_in(
    client,
    provider: OpenIDProvider,
    login: str,
    *,
    agent: IdPUserAgent | None = None,
    start: str = "/accounts/oidc/login/",
) -> SignIn:
    """Start at Tessera, sign in at the IdP as `login`, come back to the callback (Django test client)."""
    started = client.get(start)
    assert started.status_code == 302, started.content[:500]
    agent = agent or IdPUserAgent(provider)
    callback_url = agent.authorize(started["Location"], login=login)
    parts = urlsplit(callback_url)
    return SignIn(client.get(f"{parts.path}?{parts.query}"), callback_url)


# --- SAML 2.0 (pysaml2's own IdP, tests/accounts/saml_harness.py) -----------------------------------

SAML_PEOPLE = {
    "alice": {"email": "alice@alpha.test", "displayName": "Alice Anders", "groups": ["staff"]},
    "bob": {"email": "bob@alpha.test", "displayName": "Bob Brown", "groups": ["tessera-admins"]},
}


@pytest.fixture(scope="session")
def saml_idp(tmp_path_factory):
    from tests.accounts.saml_harness import SAMLIdentityProvider

    idp = SAMLIdentityProvider("a", tmp_path_factory.mktemp("saml-a"), people=SAML_PEOPLE)
    yield idp
    idp.stop()


def saml_configure(actor, idp, **values):
    """Point the current workspace at the SAML IdP through the services the console uses (its metadata
    pasted as XML), and register the workspace's SP metadata at the IdP."""
    from accounts.saml import saml_metadata_read
    from accounts.sso import sso_config_save, sso_group_roles_set

    xml = idp.metadata_xml()
    read = saml_metadata_read(xml)
    group_roles = values.pop("group_roles", {})
    config = sso_config_save(
        actor=actor,
        values={
            "enabled": True,
            "protocol": "saml",
            "display_name": f"SAML IdP {idp.name.upper()}",
            "saml_metadata_xml": xml,
            "saml_idp_entity_id": read.entity_id,
            "saml_sso_url": read.sso_url,
            "claim_name": "displayName",
            "domains": ["alpha.test"],
            **values,
        },
    )
    sso_group_roles_set(actor=actor, mapping=group_roles)
    return config


def saml_start(client) -> str:
    """Start a SAML log-in at Tessera: the IdP URL (with the AuthnRequest) the browser is sent to."""
    started = client.get("/accounts/saml/login/")
    assert started.status_code == 302, started.content[:500]
    return started["Location"]
