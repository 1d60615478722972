"""Onboarding: a new workspace and its first Admin (SaaS sign-up, the operator's `workspace_create`),
the desktop's first-run Admin, and the workspace's own settings."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from accounts.models import User
from accounts.services import AccountError, user_create
from audit.services import audit_event_record
from billing.plans import Plan
from core.actors import Actor
from rbac.roles import Role
from tenants.hostcache import workspace_changed
from tenants.models import Tenant
from tenants.services import tenant_provision


@dataclass(frozen=True)
class SignedUp:
    tenant: Tenant
    admin: User
    seconds: float


def workspace_signup(
    *,
    name: str,
    slug: str,
    admin_email: str,
    admin_password: str | None,
    admin_name: str = "",
    plan: str = Plan.FREE,
) -> SignedUp:
    """A new workspace with its first Admin and the first event of its audit trail; all or nothing."""

    def first_admin(tenant: Tenant) -> User:
        admin = user_create(email=admin_email, password=admin_password, full_name=admin_name, role=Role.ADMIN)
        audit_event_record(
            action="workspace.created",
            actor=admin,
            target=tenant,
            changes={"after": {"name": tenant.name, "slug": tenant.slug, "plan": plan}},
        )
        return admin

    provisioned = tenant_provision(name=name, slug=slug, plan=plan, populate=first_admin)
    return SignedUp(tenant=provisioned.tenant, admin=provisioned.populated, seconds=provisioned.seconds)


def workspace_admin_setup(*, email: str, password: str, full_name: str) -> User:
    """First run (desktop): create the first Admin while the workspace has no members."""
    with transaction.atomic():
        if User.objects.filter(is_active=True).exists():
            raise AccountError("This workspace is already set up. Log in instead.", code="already_set_up")
        user = user_create(email=email, password=password, full_name=full_name, role=Role.ADMIN)
        audit_event_record(action="user.signed_up", actor=user, target=user, changes={"after": {"role": Role.ADMIN}})
    return user


def workspace_settings_update(*, actor: Actor | User, tenant: Tenant, name: str, timezone: str) -> Tenant:
    """Rename the workspace or change its time zone (audited)."""
    before = {"name": tenant.name, "timezone": tenant.timezone}
    after = {"name": name.strip()[:120], "timezone": timezone}
    if before == after:
        return tenant
    with transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).update(**after)
        workspace_changed(tenant.pk)  # an update() sends no post_save (tenants.hostcache)
        tenant.name, tenant.timezone = after["name"], after["timezone"]
        audit_event_record(
            action="workspace.settings_changed", actor=actor, target=tenant, changes={"before": before, "after": after}
        )
    return tenant
