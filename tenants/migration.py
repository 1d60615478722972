"""Fast `migrate_schemas`: schemas whose applied migrations already match the code are skipped.

django-tenants reconnects and runs Django's full migrate command per schema even when nothing is
pending (minutes for a thousand tenants). One cheap query per schema tells us whether there is
anything to do; the rest are handed to django-tenants' own executor unchanged.
"""

from __future__ import annotations

import functools

from django.apps import apps
from django.conf import settings
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django_tenants.migration_executors import get_executor as tenants_get_executor
from django_tenants.migration_executors.standard import StandardExecutor

PUBLIC_SCHEMA = "public"


@functools.cache
def migrations_expected(public: bool) -> frozenset[tuple[str, str]]:
    """Every (app_label, migration) the code holds for the public schema or for tenant schemas."""
    app_names = settings.SHARED_APPS if public else settings.TENANT_APPS
    labels = {cfg.label for cfg in apps.get_app_configs() if cfg.name in app_names}
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return frozenset(key for key in loader.graph.nodes if key[0] in labels)


def schemas_applied(schemas: list[str]) -> dict[str, set[tuple[str, str]]]:
    """Applied migrations per schema, read in batches with a single round trip each."""
    applied: dict[str, set[tuple[str, str]]] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = 'django_migrations' AND c.relkind = 'r' AND n.nspname = ANY(%s)",
            [schemas],
        )
        present = [row[0] for row in cursor.fetchall()]
        for start in range(0, len(present), 250):
            batch = present[start : start + 250]
            tables = [connection.ops.quote_name(schema) + ".django_migrations" for schema in batch]
            sql = " UNION ALL ".join(f"SELECT %s, app, name FROM {t}" for t in tables)  # noqa: S608 (quoted)
            cursor.execute(sql, batch)
            for schema, app, name in cursor.fetchall():
                applied.setdefault(schema, set()).add((app, name))
    return applied


def schemas_pending(schemas: list[str]) -> list[str]:
    """The schemas that have at least one migration of theirs not yet applied."""
    applied = schemas_applied(schemas)
    pending = []
    for schema in schemas:
        expected = migrations_expected(public=schema == PUBLIC_SCHEMA)
        if not expected <= applied.get(schema, set()):
            pending.append(schema)
    return pending


class SkipCurrentExecutor(StandardExecutor):
    """django-tenants' standard executor, minus the schemas that are already current."""

    def _may_skip(self) -> bool:
        opts = self.options
        return not (
            # another database than the tenants' (the cells' directory): the check below reads the default one
            opts.get("database", "default") != "default"
            or opts.get("app_label")
            or opts.get("migration_name")
            or opts.get("fake")
            or opts.get("fake_initial")
            or opts.get("plan")
            or opts.get("prune")
            or opts.get("run_syncdb")
        )  # --check passes through: pending schemas still reach Django's own check

    def run_migrations(self, tenants=None):
        tenants = list(tenants or [])
        if tenants and self._may_skip():
            pending = schemas_pending(tenants)
            skipped = len(tenants) - len(pending)
            if skipped and int(self.options.get("verbosity", 1)) >= 1:
                self.logger_info(f"{skipped} of {len(tenants)} schema(s) already up to date; skipped.")
            tenants = pending
        return super().run_migrations(tenants=tenants)

    def logger_info(self, message: str) -> None:
        import sys

        sys.stdout.write(message + "\n")


def get_executor(codename=None):
    if codename in (None, StandardExecutor.codename):
        return SkipCurrentExecutor
    return tenants_get_executor(codename)
