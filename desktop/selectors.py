"""Reads of the desktop edition: backups on disk, the LAN hub's state, whether background jobs run."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from desktop import backup, preferences
from desktop.backup import BackupInfo
from desktop.broker import queue_size
from desktop.runtime import LanStatus, runtime_current

HEARTBEAT_FILE = "jobs.heartbeat"


def backup_list() -> list[BackupInfo]:
    return backup.backup_list(Path(settings.DATA_DIR))


def backup_find(name: str) -> BackupInfo | None:
    """A backup in the data folder's backups/ by file name (never a path from outside it)."""
    return next((b for b in backup_list() if b.name == name), None)


def lan_status() -> LanStatus:
    runtime = runtime_current()
    if runtime is not None:
        return runtime.lan_status()
    return LanStatus(enabled=preferences.preferences_load().lan_hub_enabled)


@dataclass(frozen=True)
class JobsStatus:
    running: bool | None  # None: not run by this process (plain uvicorn)
    queued: int
    last_heartbeat_seconds: float | None


def jobs_status() -> JobsStatus:
    runtime = runtime_current()
    try:
        beat = time.time() - (Path(settings.DATA_DIR) / HEARTBEAT_FILE).stat().st_mtime
    except OSError:
        beat = None
    folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
    return JobsStatus(runtime.jobs_running() if runtime else None, queue_size(folder), beat)
