"""Writes of the desktop edition: backups, restores and the LAN sync hub switch."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.db import connections

from audit.services import audit_event_record
from core.actors import Actor
from desktop import backup, preferences
from desktop.backup import BackupError, BackupInfo
from desktop.runtime import LanStatus, runtime_current
from desktop.upgrade import known_migrations, pending_migrations, upgrade_marker_clear
from rbac.permissions import permission_check
from tenants.runtime import workspace_current

logger = logging.getLogger(__name__)

__all__ = ["BackupError", "backup_create", "backup_restore", "lan_hub_set"]


def _db_path() -> Path:
    return Path(connections["default"].settings_dict["NAME"])


def _data_dir() -> Path:
    return Path(settings.DATA_DIR)


def backup_create(*, actor: Any = None, reason: str = "manual", dest: Path | None = None) -> BackupInfo:
    """The whole workspace in one file. People's backups (an actor) need settings.manage and are audited."""
    if actor is not None:
        permission_check(actor, "settings.manage")
    info = backup.backup_write(db_path=_db_path(), data_dir=_data_dir(), dest=dest, reason=reason)
    if actor is not None:
        audit_event_record(
            action="workspace.backed_up",
            actor=actor,
            target=workspace_current(),
            changes={"file": info.name, "reason": reason, "bytes": info.size},
        )
    logger.info("backup written", extra={"file": str(info.path), "reason": reason})
    return info


def backup_restore(*, actor: Any = None, path: Path) -> BackupInfo:
    """Replace the workspace with a backup's content, keeping a backup of what it replaces first.

    Checks the file completely before touching anything; migrates it if it came from an older
    version. Sessions are those of the backup: whoever restored logs in again."""
    if actor is not None:
        permission_check(actor, "settings.manage")
    backup.backup_check(path)  # a bad file is refused before anything is written
    known = known_migrations()
    safety = backup.backup_write(db_path=_db_path(), data_dir=_data_dir(), reason="pre-restore")
    connections.close_all()
    info = backup.backup_restore(path=path, db_path=_db_path(), data_dir=_data_dir(), known_migrations=known)
    connections.close_all()
    upgrade_marker_clear(_data_dir())
    if pending_migrations():
        call_command("migrate", interactive=False, verbosity=0)
    secret = _data_dir() / "secret_key"
    if secret.is_file() and not os.environ.get("TESSERA_SECRET_KEY"):
        settings.SECRET_KEY = secret.read_text().strip()
    _process_caches_reset()
    audit_event_record(
        action="workspace.restored",
        actor=actor if actor is not None else Actor.system("restore"),
        target=workspace_current(),
        changes={"file": path.name, "made_at": info.created_at.isoformat(), "previous_state": safety.name},
    )
    logger.info("backup restored", extra={"file": str(path), "previous_state": str(safety.path)})
    return info


def _process_caches_reset() -> None:
    import accounts.selectors

    accounts.selectors._setup_done = False


def lan_hub_set(*, actor: Any, enabled: bool) -> LanStatus:
    """Turn the LAN sync hub on or off for this machine; applied at once when the desktop app runs."""
    permission_check(actor, "settings.manage")
    prefs = preferences.preferences_load()
    changed = prefs.lan_hub_enabled != enabled
    prefs.lan_hub_enabled = enabled
    preferences.preferences_save(prefs)
    runtime = runtime_current()
    status = runtime.lan_hub_apply(enabled) if runtime is not None else LanStatus(enabled=enabled)
    if changed:
        audit_event_record(
            action="workspace.lan_hub_changed",
            actor=actor,
            target=workspace_current(),
            changes={"after": {"enabled": enabled, "address": status.address, "port": status.port}},
        )
    return status
