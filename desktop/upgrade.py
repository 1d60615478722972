"""Bring the database up to this version before serving: migrate, after keeping a pre-migration backup.

Checking the migration graph costs a noticeable part of a cold start, so a fingerprint of the shipped
migration files (and the app version) is remembered after a successful migrate; while it matches,
the check is skipped.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from desktop.version import app_version

logger = logging.getLogger(__name__)

FINGERPRINT_FILE = "schema.fingerprint"


@dataclass(frozen=True)
class UpgradeResult:
    migrated: int
    backup: Path | None
    skipped: bool


def migrations_fingerprint() -> str:
    from django.apps import apps

    digest = hashlib.sha256(app_version().encode())
    for config in sorted(apps.get_app_configs(), key=lambda c: c.label):
        folder = Path(config.path) / "migrations"
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(".py") and n != "__init__.py")
        except OSError:
            continue
        digest.update(f"{config.label}:{','.join(names)};".encode())
    return digest.hexdigest()


def known_migrations() -> dict[str, set[str]]:
    from django.db.migrations.loader import MigrationLoader

    # From the files only: the database may be missing or damaged (a restore is about to replace it).
    loader = MigrationLoader(None, ignore_no_migrations=True, load=True)
    known: dict[str, set[str]] = {}
    for app, name in loader.disk_migrations:
        known.setdefault(app, set()).add(name)
    return known


def pending_migrations() -> list[tuple[str, str]]:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [(migration.app_label, migration.name) for migration, backwards in plan if not backwards]


def _has_applied_migrations() -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        if "django_migrations" not in tables:
            return False
        cursor.execute("SELECT COUNT(*) FROM django_migrations")
        return cursor.fetchone()[0] > 0


def database_upgrade(*, data_dir: Path, force_check: bool = False) -> UpgradeResult:
    from django.conf import settings
    from django.core.management import call_command

    from desktop.backup import backup_write

    marker = data_dir / FINGERPRINT_FILE
    db_path = Path(settings.DATABASES["default"]["NAME"])
    fingerprint = migrations_fingerprint()
    if not force_check and db_path.exists():
        try:
            if marker.read_text().strip() == f"{fingerprint} {db_path}":
                return UpgradeResult(0, None, True)
        except OSError:
            pass
    pending = pending_migrations()
    backup = None
    if pending:
        if db_path.exists() and _has_applied_migrations():
            backup = backup_write(db_path=db_path, data_dir=data_dir, reason="pre-migration").path
            logger.info("upgrade: %d migration(s) to apply; backup kept at %s", len(pending), backup)
        call_command("migrate", interactive=False, verbosity=0)
    marker.write_text(f"{fingerprint} {db_path}\n")
    return UpgradeResult(len(pending), backup, False)


def upgrade_marker_clear(data_dir: Path) -> None:
    """Forget the fingerprint (after a restore the database may need migrating again)."""
    try:
        (data_dir / FINGERPRINT_FILE).unlink()
    except FileNotFoundError:
        pass
