"""tenants.services: provisioning clones the migrated template; it is all or nothing."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection

from accounts.onboarding import workspace_settings_update, workspace_signup
from accounts.services import AccountError
from billing.plans import Plan
from tenants.models import Domain, Tenant
from tenants.runtime import workspace_context
from tenants.services import ProvisioningError, tenant_single_ensure
from tests.conftest import ADMIN_PASSWORD

saas_only = pytest.mark.saas_only


def schema_tables(schema: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema])
        return {row[0] for row in cursor.fetchall()}


def schema_migrations(schema: str) -> set[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT app, name FROM "{schema}".django_migrations')
        return {(app, name) for app, name in cursor.fetchall()}


def schema_exists(schema: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
        return cursor.fetchone() is not None


def schemas() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace")
        return {row[0] for row in cursor.fetchall()}


def tenant_app_tables() -> set[str]:
    """Every table the tenant apps' models need (what a tenant schema must hold)."""
    tables = set()
    for config in apps.get_app_configs():
        if config.name in settings.TENANT_APPS:
            for model in config.get_models(include_auto_created=True):
                if model._meta.managed and not model._meta.proxy:
                    tables.add(model._meta.db_table)
    return tables


def provision(slug: str = "gamma", **kw):
    defaults = {
        "name": f"{slug.title()} Ltd",
        "admin_email": f"admin@{slug.strip().lower()}.test",
        "admin_password": ADMIN_PASSWORD,
        "admin_name": "First Admin",
    }
    return workspace_signup(slug=slug, **{**defaults, **kw})


# --- provisioning -----------------------------------------------------------------------------------


@saas_only
def test_provisioned_schema_has_every_tenant_table_and_migration(tenants_provisioned, db):
    from tenants.migration import migrations_expected

    result = provision("gamma")
    tenant = result.tenant
    assert tenant.schema_name == "t_gamma"
    assert result.seconds > 0

    tables = schema_tables("t_gamma")
    assert tenant_app_tables() <= tables, tenant_app_tables() - tables
    assert tables == schema_tables(settings.TESSERA_TEMPLATE_SCHEMA)
    assert "tenants_tenant" not in tables, "shared tables stay in the public schema"
    assert migrations_expected(public=False) <= schema_migrations("t_gamma")


@saas_only
def test_provisioning_creates_row_domain_admin_and_audit_trail(tenants_provisioned, db):
    from accounts.models import User
    from audit.models import AuditEvent
    from audit.selectors import audit_chain_verify
    from rbac.roles import Role

    result = provision("gamma", name="  Gamma Trading  ", plan=Plan.STARTER)
    tenant = Tenant.objects.get(slug="gamma")
    assert (tenant.name, tenant.plan, tenant.status, tenant.is_template) == (
        "Gamma Trading",
        "starter",
        "active",
        False,
    )
    domain = Domain.objects.get(tenant=tenant)
    assert (domain.domain, domain.is_primary) == ("gamma.tessera.localhost", True)
    assert tenant.host() == "gamma.tessera.localhost"

    with workspace_context(tenant):
        users = list(User.objects.all())
        # the clone carries the template's structure, none of another workspace's people: just its first Admin
        assert [(u.email, u.role, u.full_name) for u in users] == [("admin@gamma.test", Role.ADMIN, "First Admin")]
        assert users[0].check_password(ADMIN_PASSWORD)
        assert users[0].pk == result.admin.pk
        events = list(AuditEvent.objects.order_by("seq"))
        assert [(e.seq, e.action, e.actor_label) for e in events] == [(1, "workspace.created", "admin@gamma.test")]
        assert events[0].changes == {"after": {"name": "Gamma Trading", "slug": "gamma", "plan": "starter"}}
        assert audit_chain_verify().ok


@saas_only
def test_slug_is_normalised(tenants_provisioned, db):
    tenant = provision("  Gamma-2  ").tenant
    assert (tenant.slug, tenant.schema_name) == ("gamma-2", "t_gamma_2")


@saas_only
def test_stale_template_is_migrated_before_cloning(tenants_provisioned, db, monkeypatch):
    """A template missing a migration (and its tables) must not be cloned as it is."""
    import tenants.services

    template = settings.TESSERA_TEMPLATE_SCHEMA
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM \"{template}\".django_migrations WHERE app = 'audit'")
        cursor.execute(
            f'DROP TABLE "{template}".audit_auditevent, "{template}".audit_auditchainhead, '
            f'"{template}".audit_auditvaultkey, "{template}".audit_auditvaultshred CASCADE'
        )
    assert "audit_auditevent" not in schema_tables(template)
    # A fresh process: the template has not been looked at yet.
    monkeypatch.setattr(tenants.services, "_template_checked", False)

    tenant = provision("gamma").tenant

    for schema in (template, tenant.schema_name):
        assert {"audit_auditevent", "audit_auditchainhead"} <= schema_tables(schema), schema
        assert {("audit", "0001_initial"), ("audit", "0002_append_only")} <= schema_migrations(schema)
    with workspace_context(tenant):
        from audit.models import AuditEvent

        assert AuditEvent.objects.filter(action="workspace.created").count() == 1


@saas_only
def test_missing_template_schema_is_created(tenants_provisioned, db, monkeypatch):
    import tenants.services

    with connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA "{settings.TESSERA_TEMPLATE_SCHEMA}" CASCADE')
    monkeypatch.setattr(tenants.services, "_template_checked", True)

    tenant = provision("gamma").tenant
    assert tenant_app_tables() <= schema_tables(tenant.schema_name)
    assert Tenant.objects.filter(schema_name=settings.TESSERA_TEMPLATE_SCHEMA, is_template=True).count() == 1


# --- all or nothing -------------------------------------------------------------------------------------


@saas_only
@pytest.mark.parametrize(
    "kwargs, error, field",
    [
        ({"slug": "gamma", "admin_password": "12345678901"}, AccountError, "password"),
        (
            {"slug": "gamma", "admin_password": "gamma-ltd-admin", "admin_email": "gamma-ltd-admin@x.test"},
            AccountError,
            "password",
        ),
        ({"slug": "gamma", "admin_email": "  "}, AccountError, "email"),
        ({"slug": "gamma", "name": "   "}, ProvisioningError, "name"),
        ({"slug": "alpha"}, ProvisioningError, "slug"),
        ({"slug": "ALPHA"}, ProvisioningError, "slug"),
        ({"slug": "admin"}, ProvisioningError, "slug"),
        ({"slug": "www"}, ProvisioningError, "slug"),
        ({"slug": "template"}, ProvisioningError, "slug"),
        ({"slug": "a"}, ProvisioningError, "slug"),
        ({"slug": "-gamma"}, ProvisioningError, "slug"),
        ({"slug": "gamma-"}, ProvisioningError, "slug"),
        ({"slug": "gam_ma"}, ProvisioningError, "slug"),
        ({"slug": "gam ma"}, ProvisioningError, "slug"),
        ({"slug": "gämma"}, ProvisioningError, "slug"),
        ({"slug": "g" * 41}, ProvisioningError, "slug"),
        ({"slug": ""}, ProvisioningError, "slug"),
    ],
)
def test_failed_provisioning_leaves_nothing_behind(tenants_provisioned, db, kwargs, error, field):
    tenants_before = set(Tenant.objects.values_list("pk", flat=True))
    domains_before = set(Domain.objects.values_list("pk", flat=True))
    schemas_before = schemas()
    slug = kwargs.pop("slug")

    with pytest.raises(error) as excinfo:
        provision(slug, **kwargs)

    assert excinfo.value.field == field
    assert excinfo.value.message
    assert set(Tenant.objects.values_list("pk", flat=True)) == tenants_before
    assert set(Domain.objects.values_list("pk", flat=True)) == domains_before
    assert not schema_exists("t_gamma")
    assert schemas() == schemas_before


@saas_only
def test_a_leftover_schema_makes_the_address_taken_not_a_crash(tenants_provisioned, db):
    """A schema left behind by a removed workspace (no tenant row) must not turn sign-up into a 500."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE SCHEMA t_orphan")
    with pytest.raises(ProvisioningError) as excinfo:
        provision("orphan")
    assert excinfo.value.field == "slug"
    assert not Tenant.objects.filter(slug="orphan").exists()


@saas_only
def test_provisioned_tenant_can_be_dropped(tenants_provisioned, db):
    from tenants.services import tenant_drop

    tenant = provision("gamma").tenant
    tenant_drop(tenant=tenant)
    assert not Tenant.objects.filter(slug="gamma").exists()
    assert not Domain.objects.filter(domain="gamma.tessera.localhost").exists()
    assert not schema_exists("t_gamma")


@saas_only
def test_a_removed_workspace_address_is_held_back_from_sign_up(tenants_provisioned, db, settings):
    """Issue 14, finding 1: after a workspace is removed, someone signing up its address at once would
    receive what was still meant for the old business (links, phones, partners' calls)."""
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    from tenants.models import HeldSlug
    from tenants.services import tenant_drop

    settings.TESSERA_SLUG_HOLD_DAYS = 90
    tenant_drop(tenant=provision("delta").tenant)
    with pytest.raises(ProvisioningError, match="belonged to a workspace that was removed") as excinfo:
        provision("delta")
    assert (excinfo.value.field, excinfo.value.status) == ("slug", 409)
    assert not Tenant.objects.filter(slug="delta").exists()

    HeldSlug.objects.filter(slug="delta").update(held_until=timezone.now() - timedelta(seconds=1))
    tenant = provision("delta").tenant  # the hold ran out: the address is free again

    # The operators' command removes and holds too; an address other than a workspace's is refused.
    call_command("workspace_delete", "delta", "--yes")
    assert not Tenant.objects.filter(pk=tenant.pk).exists() and not schema_exists("t_delta")
    with pytest.raises(ProvisioningError, match="removed"):
        provision("delta")
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no workspace"):
        call_command("workspace_delete", "nope", "--yes")


# --- desktop and settings --------------------------------------------------------------------------------


@pytest.mark.desktop_only
def test_desktop_has_one_tenant_and_refuses_to_provision_more(tenants_provisioned, db):
    assert tenant_single_ensure() == tenant_single_ensure()
    assert Tenant.objects.filter(is_template=False).count() == 1
    with pytest.raises(ProvisioningError, match="single business"):
        provision("gamma")
    assert Tenant.objects.count() == 1


@pytest.mark.desktop_only
def test_desktop_tenant_is_created_on_first_run(tenants_provisioned, db):
    Tenant.objects.all().delete()
    tenant = tenant_single_ensure(name="Corner Shop")
    assert (tenant.name, tenant.slug) == ("Corner Shop", "workspace")
    assert tenant_single_ensure(name="Something else").pk == tenant.pk


def test_settings_change_is_audited_once(tenant, admin_user):
    from audit.models import AuditEvent

    tenant = Tenant.objects.get(pk=tenant.pk)  # the service updates the instance: not the shared fixture's
    count = AuditEvent.objects.count()
    workspace_settings_update(actor=admin_user, tenant=tenant, name="Alpha Two", timezone="Asia/Tokyo")
    workspace_settings_update(actor=admin_user, tenant=tenant, name="Alpha Two", timezone="Asia/Tokyo")
    assert AuditEvent.objects.count() == count + 1
    event = AuditEvent.objects.order_by("-seq").first()
    assert event.action == "workspace.settings_changed"
    assert event.changes["after"] == {"name": "Alpha Two", "timezone": "Asia/Tokyo"}
    assert Tenant.objects.get(pk=tenant.pk).timezone == "Asia/Tokyo"
