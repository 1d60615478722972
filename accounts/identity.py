"""Who an identity provider's answer logs in: the one service OpenID Connect and SAML both call.

The rules (issue 15): a member is linked to the IdP's subject per issuer, for good. An existing
password member is linked only when the IdP says the e-mail is verified and its domain is one the
Admin listed (no account takeover by an IdP that lets people type any e-mail). New people join just
in time with the Admin's default role. When the Admin mapped groups to roles, the role follows the
IdP's groups at every log-in — but never leaves the workspace without an Admin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from accounts.events import member_object
from accounts.models import SSOConfig, SSOGroupRole, SSOIdentity, User
from accounts.services import AccountError
from audit.services import audit_event_record
from core.actors import Actor
from core.events import DomainEvent, event_emit, target_of
from rbac.roles import Role

# When several mapped groups apply, the strongest role wins.
ROLE_RANK = {Role.VIEWER: 0, Role.ANALYST: 1, Role.MANAGER: 2, Role.ADMIN: 3}


class SSOLoginRefused(AccountError):
    """The IdP's answer does not let anyone in here; `message` says why, for the person and the audit."""

    status = 403


@dataclass(frozen=True)
class IdPAssertion:
    """What an IdP said about the person (an ID token + userinfo, or a SAML assertion)."""

    issuer: str
    subject: str
    email: str = ""
    email_verified: bool = False
    name: str = ""
    groups: list[str] | None = None  # None: the IdP sent no groups (roles are then left alone)
    protocol: str = SSOConfig.Protocol.OIDC
    extra: dict = field(default_factory=dict)


def email_domain(email: str) -> str:
    return email.rsplit("@", 1)[-1].lower() if "@" in email else ""


def domains_clean(raw: str | list[str]) -> list[str]:
    """The Admin's list of e-mail domains: lower-case, no '@', no duplicates, in order."""
    items = raw.replace(",", "\n").split() if isinstance(raw, str) else raw
    out: list[str] = []
    for item in items:
        domain = item.strip().lower().lstrip("@")
        if domain and domain not in out:
            out.append(domain)
    return out


def role_for_groups(groups: list[str] | None, *, default: str) -> str | None:
    """The role the groups map to; the default role when none is mapped; None when there is no
    mapping table or no groups claim (then the role is not the IdP's to decide)."""
    if groups is None:
        return None
    mapping = dict(SSOGroupRole.objects.values_list("group", "role"))
    if not mapping:
        return None
    roles = [mapping[g] for g in groups if g in mapping]
    if not roles:
        return default
    return max(roles, key=lambda r: ROLE_RANK.get(r, 0))


def _admins_left(excluding: User) -> int:
    return User.objects.filter(role=Role.ADMIN, is_active=True).exclude(pk=excluding.pk).count()


def member_role_sync(*, user: User, role: str | None, actor: Actor, reason: str) -> User:
    """Give `user` the role the IdP decided (SSO log-in or SCIM group change), keeping one Admin.
    Call inside a transaction."""
    if role is None or role == user.role or role not in Role.values:
        return user
    list(User.objects.select_for_update().filter(role=Role.ADMIN, is_active=True))
    if user.role == Role.ADMIN and user.is_active and _admins_left(user) == 0:
        audit_event_record(
            action="sso.role_kept",
            actor=actor,
            target=user,
            changes={"role": user.role, "wanted": role, "why": "last Admin", "source": reason},
        )
        return user
    before = user.role
    user.role = role
    user.save(update_fields=["role", "updated_at"])
    event_emit(
        DomainEvent(
            type="member.role_changed",
            actor=actor,
            data={"object": member_object(user), "previous_attributes": {"role": before}},
            target=target_of(user),
            changes={"before": {"role": before}, "after": {"role": role}, "source": reason},
        )
    )
    return user


def sso_login_failure_record(*, reason: str, email: str = "", protocol: str = "oidc") -> None:
    audit_event_record(
        action="sso.login_failed",
        actor=Actor.anonymous(email),
        target=("user", "", email),
        changes={"reason": reason, "protocol": protocol},
    )


def sso_login_resolve(*, config: SSOConfig, assertion: IdPAssertion) -> User:
    """The member the IdP's answer logs in (linked, created or updated), or SSOLoginRefused."""
    if not assertion.subject:
        raise SSOLoginRefused("The identity provider did not say who you are (no subject).", code="no_subject")
    email = User.objects.normalize_email((assertion.email or "").strip()).lower()
    actor = Actor.system(f"sso:{config.label}"[:255])
    with transaction.atomic():
        identity = (
            SSOIdentity.objects.select_for_update()
            .select_related("user")
            .filter(issuer=assertion.issuer, subject=assertion.subject)
            .first()
        )
        if identity is not None:
            user = identity.user
            if not user.is_active:
                raise SSOLoginRefused(
                    "Your account in this workspace has been deactivated. Ask an Admin.", code="deactivated"
                )
        else:
            user = _link_or_join(config=config, assertion=assertion, email=email, actor=actor)
            identity = SSOIdentity.objects.create(user=user, issuer=assertion.issuer, subject=assertion.subject)
        member_role_sync(
            user=user,
            role=role_for_groups(assertion.groups, default=config.default_role or Role.VIEWER),
            actor=actor,
            reason=f"{assertion.protocol} groups",
        )
        updates = ["updated_at"]
        if assertion.name and assertion.name[:150] != user.full_name:
            user.full_name = assertion.name[:150]
            updates.append("full_name")
        if len(updates) > 1:
            user.save(update_fields=updates)
        identity.last_login_at = timezone.now()
        identity.save(update_fields=["last_login_at"])
    return user


def _link_or_join(*, config: SSOConfig, assertion: IdPAssertion, email: str, actor: Actor) -> User:
    if not email:
        raise SSOLoginRefused("The identity provider did not give an e-mail address.", code="no_email")
    domains = domains_clean(config.domains or [])
    domain_listed = email_domain(email) in domains
    existing = User.objects.select_for_update().filter(email__iexact=email).first()
    if existing is not None:
        if not (assertion.email_verified and domain_listed):
            why = "is not verified by the identity provider" if not assertion.email_verified else ""
            why = why or f"is in a domain ({email_domain(email)}) the Admin has not listed for single sign-on"
            raise SSOLoginRefused(
                f"An account with the e-mail {email} already exists here, and it cannot be linked: the e-mail {why}. "
                "Log in with your password, or ask an Admin.",
                code="link_refused",
            )
        if not existing.is_active:
            raise SSOLoginRefused(
                "Your account in this workspace has been deactivated. Ask an Admin.", code="deactivated"
            )
        audit_event_record(
            action="sso.account_linked",
            actor=actor,
            target=existing,
            changes={"issuer": assertion.issuer, "subject": assertion.subject},
        )
        return existing
    if domains and not domain_listed:
        raise SSOLoginRefused(
            f"People with an e-mail at {email_domain(email)} cannot join this workspace by single sign-on.",
            code="domain_not_allowed",
        )
    user = User.objects.create_user(
        email=email,
        password=None,
        full_name=(assertion.name or "")[:150],
        role=config.default_role or Role.VIEWER,
        auth_source=User.AuthSource.SSO,
    )
    event_emit(
        DomainEvent(
            type="member.joined",
            actor=actor,
            data={"object": member_object(user)},
            target=target_of(user),
            changes={"after": {"role": user.role, "via": f"{assertion.protocol} just-in-time"}},
        )
    )
    return user
