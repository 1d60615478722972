"""Desktop jobs (Celery, run by the app's own worker and beat): thin wrappers."""

from __future__ import annotations

import time
from pathlib import Path

from celery import shared_task
from django.conf import settings

from desktop import backup
from desktop.preferences import preferences_load
from desktop.selectors import HEARTBEAT_FILE


@shared_task(name="desktop.heartbeat")
def heartbeat() -> float:
    """Periodic: proves the worker and beat run (the console's Desktop page shows its age)."""
    path = Path(settings.DATA_DIR) / HEARTBEAT_FILE
    now = time.time()
    path.write_text(f"{now}\n")
    return now


@shared_task(name="desktop.backups_prune")
def backups_prune() -> int:
    """Kept for jobs queued by an earlier version: the daily backup prunes now."""
    return backup.backups_prune(Path(settings.DATA_DIR), keep=10, reasons={"pre-migration", "pre-restore"})


@shared_task(name="desktop.backup_daily")
def backup_daily() -> str:
    """Hourly: the automatic daily backup when the last is a day old; the oldest beyond the kept count go."""
    from desktop.services import backup_daily as daily

    info = daily(keep=preferences_load().backups_keep)
    return info.name if info is not None else ""


@shared_task(name="desktop.notices")
def notices() -> int:
    """Every minute: desktop notifications for what needs the owner's attention (desktop.notices)."""
    from desktop.notices import notices_send

    return notices_send()


@shared_task(name="desktop.probe")
def probe(token: str) -> str:
    """Diagnostics (`tessera jobs-probe`): leaves probes/<token> in the data folder when it runs."""
    folder = Path(settings.DATA_DIR) / "probes"
    folder.mkdir(exist_ok=True)
    safe = "".join(ch for ch in token if ch.isalnum() or ch in "-_")[:64] or "probe"
    (folder / safe).write_text(f"{time.time()}\n")
    return safe
