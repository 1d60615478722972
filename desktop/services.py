"""Writes of the desktop edition: backups, restores and the LAN sync hub switch."""

from __future__ import annotations

import logging
import os
import sqlite3
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

__all__ = ["BackupError", "backup_create", "backup_daily", "backup_restore", "lan_hub_set"]


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


def backup_restore(*, actor: Any = None, path: Path, offline: bool = False) -> BackupInfo:
    """Replace the workspace with a backup's content, keeping a copy of whatever it replaces first.

    Checks the file completely before touching anything; migrates it if it came from an older
    version. Works on a fresh install (no database yet: nothing to keep) and on a damaged database
    (kept byte for byte in backups/, then replaced). `offline`: the app is not serving (command line,
    start-up error page), so the database file is replaced rather than written into. Sessions are
    those of the backup: whoever restored logs in again."""
    if actor is not None:
        permission_check(actor, "settings.manage")
    backup.backup_check(path)  # a bad file is refused before anything is written
    known = known_migrations()
    db_path, data_dir = _db_path(), _data_dir()
    state = backup.database_state(db_path)
    # Before anything of ours opens the files: SQLite's locks belong to the process, and a copy's
    # close of the database file would drop those of any connection still open on it.
    connections.close_all()
    previous = ""
    if state == "ok":
        previous = backup.backup_write(db_path=db_path, data_dir=data_dir, reason="pre-restore").name
    elif state == "damaged":
        previous = backup.database_set_aside(db_path=db_path, data_dir=data_dir).name
    connections.close_all()
    info = backup.backup_restore(
        path=path, db_path=db_path, data_dir=data_dir, known_migrations=known, replace_files=offline or state != "ok"
    )
    connections.close_all()
    upgrade_marker_clear(data_dir)
    if pending_migrations():
        call_command("migrate", interactive=False, verbosity=0)
    secret = data_dir / "secret_key"
    if secret.is_file() and not os.environ.get("TESSERA_SECRET_KEY"):
        settings.SECRET_KEY = secret.read_text().strip()
    _process_caches_reset()
    audit_event_record(
        action="workspace.restored",
        actor=actor if actor is not None else Actor.system("restore"),
        target=workspace_current(),
        changes={"file": path.name, "made_at": info.created_at.isoformat(), "previous_state": previous or state},
    )
    logger.info("backup restored", extra={"file": str(path), "previous_state": previous or state})
    return info


def backup_daily(*, keep: int) -> BackupInfo | None:
    """The automatic daily backup (when none was made in the last day), then the oldest beyond `keep`
    removed. A failure is logged and told on the desktop (a notification), and raised."""
    data_dir = _data_dir()
    if not backup.backup_daily_due(data_dir):
        return None
    try:
        info = backup.backup_write(db_path=_db_path(), data_dir=data_dir, reason="daily")
    except (BackupError, OSError, sqlite3.Error) as exc:
        message = exc.message if isinstance(exc, BackupError) else str(exc)
        logger.error("automatic backup failed: %s", message)
        runtime = runtime_current()
        if runtime is not None:
            runtime.notify("Tessera could not back up", f"The automatic daily backup failed: {message}")
        raise
    backup.backups_prune(data_dir, keep=keep, reasons={"daily"})
    backup.backups_prune(data_dir, keep=10, reasons={"pre-migration", "pre-restore"})
    logger.info("daily backup written", extra={"file": str(info.path)})
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


def desktop_preferences_set(
    *, actor: Any, quit_on_close: bool, autostart: bool, backups_keep: int, update_feed_url: str
) -> preferences.Preferences:
    """This computer's switches: close to the tray or quit, start at log-in, daily backups kept, the
    update feed. Saved for the machine (desktop.json, the autostart entry), not in the workspace."""
    permission_check(actor, "settings.manage")
    from desktop.autostart import autostart_enabled, autostart_set

    if update_feed_url and not update_feed_url.startswith(("https://", "http://")):
        from desktop.updates import UpdateError

        raise UpdateError("The update feed must be an http(s) address.")
    prefs = preferences.preferences_load()
    before = {
        "quit_on_close": prefs.quit_on_close,
        "autostart": autostart_enabled(),
        "backups_keep": prefs.backups_keep,
        "update_feed_url": prefs.update_feed_url,
    }
    prefs.quit_on_close = quit_on_close
    prefs.backups_keep = min(max(int(backups_keep), 1), 365)
    prefs.update_feed_url = update_feed_url.strip()
    preferences.preferences_save(prefs)
    if autostart != before["autostart"]:
        autostart_set(autostart)
    after = {
        "quit_on_close": prefs.quit_on_close,
        "autostart": autostart,
        "backups_keep": prefs.backups_keep,
        "update_feed_url": prefs.update_feed_url,
    }
    if after != before:
        audit_event_record(
            action="workspace.desktop_preferences_changed",
            actor=actor,
            target=workspace_current(),
            changes={"before": before, "after": after},
        )
    return prefs


def update_check_now(*, actor: Any):
    """Look at the update feed now; a verified newer .deb is downloaded and offered (desktop.updates)."""
    permission_check(actor, "settings.manage")
    from desktop.updates import update_check

    feed = preferences.preferences_load().update_feed_url
    if not feed:
        return None
    return update_check(feed, data_dir=_data_dir())


def update_install_start(*, actor: Any, name: str):
    permission_check(actor, "settings.manage")
    from desktop.updates import update_install

    process = update_install(_data_dir() / "updates" / Path(name).name)
    audit_event_record(
        action="workspace.update_started", actor=actor, target=workspace_current(), changes={"file": name}
    )
    return process
