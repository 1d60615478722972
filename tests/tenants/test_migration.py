"""tenants.migration: `migrate_schemas` skips schemas that are already current, migrates the rest."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from tenants.migration import migrations_expected, schemas_applied, schemas_pending

pytestmark = pytest.mark.saas_only


@pytest.fixture
def migrated(monkeypatch):
    """Records the schemas django-tenants really runs Django's migrate in (`call_through=False`: only records)."""
    import django_tenants.migration_executors.standard as standard

    real = standard.run_migrations
    seen = SimpleNamespace(schemas=[], call_through=True)

    def spy(args, options, codename, schema_name, *rest, **kw):
        seen.schemas.append(schema_name)
        if seen.call_through:
            return real(args, options, codename, schema_name, *rest, **kw)
        return None

    monkeypatch.setattr(standard, "run_migrations", spy)
    return seen


def all_schemas() -> list[str]:
    from tenants.models import Tenant

    return list(Tenant.objects.exclude(schema_name="public").values_list("schema_name", flat=True))


def migrate(**options) -> None:
    call_command("migrate_schemas", interactive=False, **options)


def test_nothing_pending_skips_every_schema(tenants_provisioned, db, migrated, capsys):
    schemas = all_schemas()
    assert {"t_alpha", "t_beta", settings.TESSERA_TEMPLATE_SCHEMA} <= set(schemas)

    migrate(verbosity=1)

    assert migrated.schemas == [], "no schema reached Django's migrate"
    out = capsys.readouterr().out
    assert "1 of 1 schema(s) already up to date; skipped." in out  # public
    assert f"{len(schemas)} of {len(schemas)} schema(s) already up to date; skipped." in out
    assert "=== Starting migration" not in out


def test_quiet_run_prints_nothing(tenants_provisioned, db, migrated, capsys):
    migrate(verbosity=0)
    assert migrated.schemas == []
    assert "skipped" not in capsys.readouterr().out


def test_schema_missing_a_migration_record_is_migrated(tenants_provisioned, db, migrated, capsys):
    """beta lost its record of audit 0003 and what came after it (and what they did, its audit log with
    them): only beta is migrated, and it is whole again."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM t_beta.django_migrations WHERE app = 'audit' AND name IN "
            "('0003_chain_head_forward_only', '0004_vault', '0005_reseal', '0006_personal_columns', "
            "'0007_reseal_personal_columns')"
        )
        cursor.execute("DROP TRIGGER audit_chain_head_forward_only ON t_beta.audit_auditchainhead")
        cursor.execute("DROP TABLE t_beta.audit_auditvaultkey, t_beta.audit_auditvaultshred CASCADE")
        cursor.execute("TRUNCATE t_beta.audit_auditevent, t_beta.audit_auditchainhead")
        cursor.execute("ALTER TABLE t_beta.audit_auditevent DROP COLUMN personal")
    assert schemas_pending(all_schemas()) == ["t_beta"]

    migrate(verbosity=1)

    schemas = all_schemas()
    assert migrated.schemas == ["t_beta"]
    out = capsys.readouterr().out
    assert f"{len(schemas) - 1} of {len(schemas)} schema(s) already up to date; skipped." in out
    assert re.search(r"t_beta.*Applying audit\.0003_chain_head_forward_only", out), out
    assert schemas_pending(schemas) == []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 't_beta' AND t.tgname = 'audit_chain_head_forward_only'"
        )
        assert cursor.fetchone() is not None


def test_one_schema_by_name_is_also_skipped_when_current(tenants_provisioned, db, migrated, capsys):
    migrate(schema_name="t_alpha", tenant=True, verbosity=1)
    assert migrated.schemas == []
    assert "1 of 1 schema(s) already up to date; skipped." in capsys.readouterr().out


@pytest.mark.parametrize("option", [{"fake": True}, {"plan": True}, {"app_label": "audit"}])
def test_options_that_change_what_migrate_does_are_never_skipped(tenants_provisioned, db, migrated, option):
    migrated.call_through = False
    migrate(verbosity=0, **option)
    assert set(migrated.schemas) == {"public", *all_schemas()}


def test_applied_and_expected_migrations(tenants_provisioned, db):
    applied = schemas_applied(["public", "t_alpha", "no_such_schema"])
    assert "no_such_schema" not in applied
    assert migrations_expected(public=False) <= applied["t_alpha"]
    assert migrations_expected(public=True) <= applied["public"]
    assert ("audit", "0001_initial") in migrations_expected(public=False)
    assert ("audit", "0001_initial") not in migrations_expected(public=True)
    assert ("tenants", "0001_initial") in migrations_expected(public=True)


def test_schema_without_a_migrations_table_is_pending(tenants_provisioned, db):
    with connection.cursor() as cursor:
        cursor.execute("CREATE SCHEMA t_empty")
    assert schemas_pending(["t_alpha", "t_empty"]) == ["t_empty"]
