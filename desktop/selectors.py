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


@dataclass(frozen=True)
class OutboxMessage:
    to: str
    subject: str
    date: str
    body: str


_SEPARATOR = b"\n" + b"-" * 79 + b"\n"  # what Django's file mail backend writes after each message


def outbox_messages(limit: int = 50) -> list[OutboxMessage]:
    """The mail this computer would have sent (no mail server configured: Django's file backend keeps
    it in the data folder's outbox), newest first: invitation and password-reset links an Admin passes
    on by hand. Empty when mail is really sent, or none was written."""
    folder = getattr(settings, "EMAIL_FILE_PATH", None)
    if settings.TESSERA_MAIL_DELIVERED or not folder or not Path(folder).is_dir():
        return []
    import email
    from email import policy

    files = sorted(Path(folder).glob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True)
    found: list[OutboxMessage] = []
    for path in files:
        for raw in reversed([part for part in path.read_bytes().split(_SEPARATOR) if part.strip()]):
            message = email.message_from_bytes(raw, policy=policy.default)
            part = message.get_body(preferencelist=("plain",))
            found.append(
                OutboxMessage(
                    to=str(message.get("To", "")),
                    subject=str(message.get("Subject", "")),
                    date=str(message.get("Date", "")),
                    body=part.get_content() if part is not None else "",
                )
            )
            if len(found) >= limit:
                return found
    return found


def lan_pairing_base_url() -> str | None:
    """Where phones on the network reach this computer's sync (the LAN hub listening), e.g.
    `http://192.168.1.20:47800`; None while the hub is off. The pairing page puts it in the QR code
    instead of 127.0.0.1 (settings TESSERA_PAIRING_BASE_URL)."""
    status = lan_status()
    if not (status.listening and status.address and status.port):
        return None
    return f"http://{status.address}:{status.port}"
