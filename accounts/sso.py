"""Writes about the workspace's single sign-on: its provider's settings, the group → role table,
SSO-only mode and the SCIM tokens. Every change is audited (`sso.*`, `scim.*`); secrets never are."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.identity import domains_clean
from accounts.models import SCIMToken, SSOConfig, SSOGroupRole, User
from accounts.services import AccountError
from audit.services import audit_event_record, changes_diff
from core.actors import Actor, Principal
from core.secrets_at_rest import secret_encrypt
from rbac.permissions import permission_check
from rbac.roles import Role

SCIM_TOKEN_PREFIX = "tss_"
_SEEN_EVERY = timedelta(minutes=1)  # how often a token's last use is written
_AUDITED = (
    "protocol",
    "enabled",
    "display_name",
    "issuer",
    "client_id",
    "scopes",
    "claim_email",
    "claim_name",
    "claim_groups",
    "saml_metadata_url",
    "saml_idp_entity_id",
    "domains",
    "default_role",
    "sso_only",
)


def sso_config_get() -> SSOConfig:
    """The workspace's SSO settings (a blank, disabled row until an Admin saves them)."""
    config = SSOConfig.objects.first()
    return config if config is not None else SSOConfig()


def sso_config_enabled(request=None) -> SSOConfig | None:
    """The workspace's SSO settings if switched on. Given the request, read once for it: a log-in's
    callback, its console page's security policy (sso_form_action_origins) and the log-in page all
    ask (bench/sso). Nothing changes the settings between those reads and the response: the console
    page that saves them redirects, and the next request reads them afresh."""
    if request is not None and hasattr(request, "_tessera_sso_config"):
        return request._tessera_sso_config
    config = SSOConfig.objects.filter(enabled=True).first()
    if request is not None:
        request._tessera_sso_config = config
    return config


def sso_config_active(request=None) -> SSOConfig | None:
    """The workspace's provider when single sign-on is on and usable: an OpenID provider whose
    discovery document was read, or a SAML IdP whose metadata was."""
    config = sso_config_enabled(request)
    if config is None:
        return None
    if config.protocol == SSOConfig.Protocol.SAML:
        return config if config.saml_metadata_xml and config.saml_sso_url else None
    return config if config.issuer and config.discovery.get("authorization_endpoint") else None


def sso_start_url(config: SSOConfig, *, email: str = "", next_url: str = "") -> str:
    """Where "Sign in with …" starts, for the workspace's protocol (an e-mail is passed on as a hint)."""
    if config.protocol == SSOConfig.Protocol.SAML:
        params = {"next": next_url} if next_url else {}
        return reverse("accounts:saml_login") + ("?" + urlencode(params) if params else "")
    params = {k: v for k, v in (("login_hint", email), ("next", next_url)) if v}
    return reverse("accounts:oidc_login") + ("?" + urlencode(params) if params else "")


def sso_form_action_origins(request=None) -> list[str]:
    """Where a console form's answer may redirect for this workspace: its IdP's log-in (an e-mail of a
    listed domain) and, for OpenID Connect, log-out (end_session_endpoint). The CSP's form-action must
    allow them, or the browser stops at the redirect."""
    config = sso_config_active(request)
    if config is None:
        return []
    if config.protocol == SSOConfig.Protocol.SAML:
        endpoints = (config.saml_sso_url,)
    else:
        endpoints = (config.discovery.get("authorization_endpoint"), config.discovery.get("end_session_endpoint"))
    return sorted({f"{p.scheme}://{p.netloc}" for p in map(urlsplit, filter(None, endpoints)) if p.netloc})


def sso_only_applies(user: User | None, *, config: SSOConfig | None = None) -> bool:
    """Whether this member (or, for None, anyone) must sign in with SSO: SSO-only mode is on, and they
    are not one of the named break-glass Admins."""
    config = config if config is not None else SSOConfig.objects.filter(enabled=True).first()
    if config is None or not config.enabled or not config.sso_only:
        return False
    if user is None or user.pk is None:
        return True
    return not (user.role == Role.ADMIN and config.break_glass_admins.filter(pk=user.pk).exists())


def sso_config_save(
    *,
    actor: Actor | Principal,
    values: dict,
    client_secret: str | None = None,
    discovery: dict | None = None,
    break_glass: list[User] | None = None,
) -> SSOConfig:
    """Save the provider's settings. `client_secret` None keeps the stored one; `discovery` is the
    issuer's document as just read (saving an enabled OIDC provider requires one)."""
    permission_check(actor, "sso.manage")
    with transaction.atomic():
        config = SSOConfig.objects.select_for_update().first() or SSOConfig()
        before = {k: getattr(config, k) for k in _AUDITED}
        for key, value in values.items():
            if key == "domains":
                value = domains_clean(value)
            setattr(config, key, value)
        if client_secret:
            config.client_secret_encrypted = secret_encrypt(client_secret)
        if discovery is not None:
            config.discovery = discovery
            config.discovered_at = timezone.now()
        if config.enabled and config.protocol == SSOConfig.Protocol.OIDC:
            if not (config.issuer and config.client_id and config.client_secret_encrypted):
                raise AccountError("Enter the issuer URL, client ID and client secret first.", param="issuer")
            if not config.discovery.get("authorization_endpoint"):
                raise AccountError("The issuer's discovery document could not be read.", param="issuer")
        saml_ready = config.saml_metadata_xml and config.saml_idp_entity_id and config.saml_sso_url
        if config.enabled and config.protocol == SSOConfig.Protocol.SAML and not saml_ready:
            raise AccountError("Give the IdP's SAML metadata (its URL or the XML) first.", param="saml_metadata_xml")
        if config.sso_only and not config.enabled:
            raise AccountError("SSO-only mode needs single sign-on switched on.", param="sso_only")
        config.save()
        changed = {k: getattr(config, k) for k in _AUDITED}
        diff = changes_diff(before, changed)
        old_glass = set(config.break_glass_admins.values_list("email", flat=True)) if config.pk else set()
        if break_glass is not None:
            if any(u.role != Role.ADMIN for u in break_glass):
                raise AccountError("Only Admins can be break-glass accounts.", param="break_glass_admins")
            config.break_glass_admins.set(break_glass)
            new_glass = {u.email for u in break_glass}
            if new_glass != old_glass:
                diff["break_glass_admins"] = {"before": sorted(old_glass), "after": sorted(new_glass)}
        if config.sso_only and not config.break_glass_admins.exists():
            raise AccountError(
                "Name at least one break-glass Admin who can still log in with a password if the "
                "identity provider is down.",
                param="break_glass_admins",
            )
        if client_secret:
            diff["client_secret"] = "changed"
        if diff:
            audit_event_record(
                action="sso.settings_changed", actor=actor, target=("sso", "", str(config)), changes=diff
            )
    return config


def sso_group_roles_set(*, actor: Actor | Principal, mapping: dict[str, str]) -> None:
    """Replace the group → role table."""
    permission_check(actor, "sso.manage")
    clean = {}
    for group, role in mapping.items():
        group = (group or "").strip()
        if not group:
            continue
        if role not in Role.values:
            raise AccountError(f"Choose a valid role for the group {group}.", param="groups")
        clean[group[:255]] = role
    with transaction.atomic():
        before = dict(SSOGroupRole.objects.values_list("group", "role"))
        if before == clean:
            return
        SSOGroupRole.objects.all().delete()
        SSOGroupRole.objects.bulk_create([SSOGroupRole(group=g, role=r) for g, r in clean.items()])
        audit_event_record(
            action="sso.group_roles_changed",
            actor=actor,
            target=("sso", "", "group → role"),
            changes={"before": before, "after": clean},
        )


def scim_token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedSCIMToken:
    token: SCIMToken
    raw: str  # shown once


def scim_token_create(*, actor: Actor | Principal) -> IssuedSCIMToken:
    permission_check(actor, "sso.manage")
    raw = SCIM_TOKEN_PREFIX + secrets.token_urlsafe(32)
    creator = actor if isinstance(actor, User) else getattr(Actor.of(actor), "principal", None)
    with transaction.atomic():
        token = SCIMToken.objects.create(
            token_hash=scim_token_hash(raw), prefix=raw[:12], created_by=creator if isinstance(creator, User) else None
        )
        audit_event_record(action="scim.token_created", actor=actor, target=("scim_token", token.pk, token.prefix))
    return IssuedSCIMToken(token, raw)


def scim_token_revoke(*, actor: Actor | Principal, token: SCIMToken) -> SCIMToken:
    permission_check(actor, "sso.manage")
    with transaction.atomic():
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            audit_event_record(action="scim.token_revoked", actor=actor, target=("scim_token", token.pk, token.prefix))
    return token


def scim_token_find(raw: str) -> SCIMToken | None:
    if not raw or not raw.startswith(SCIM_TOKEN_PREFIX):
        return None
    token = SCIMToken.objects.filter(token_hash=scim_token_hash(raw), revoked_at=None).first()
    if token is not None and (token.last_used_at is None or timezone.now() - token.last_used_at > _SEEN_EVERY):
        SCIMToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token
