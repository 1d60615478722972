"""SSO fixtures: two real OpenID providers (npm oidc-provider, tests/accounts/oidc_harness.py), each
with a client registered for every workspace host the tests use, and a way to sign in through them."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from tests.accounts.oidc_harness import IdPUserAgent, OpenIDProvider
from tests.conftest import SAAS


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
