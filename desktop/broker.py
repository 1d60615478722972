"""The desktop's Celery broker: kombu's filesystem transport, made safe across crashes and restarts.

Stock filesystem transport writes a message in place (a reader can take it half-written) and deletes
it when a worker fetches it, so a job is lost if the app dies before the job ran. Here:

- a message is written to a temporary file and renamed into the queue folder (atomic, fsynced);
- fetching renames it into the `inflight` folder, where it stays until the worker acknowledges it;
- a warm shutdown puts unacknowledged messages (prefetched, or waiting for their ETA) back in the
  queue under their original names, so the original order holds;
- `queue_recover()` runs before the app's worker starts and returns anything a crash left in flight.

File names start with the wall-clock time in nanoseconds, so the order survives a reboot.
Selected with CELERY_BROKER_TRANSPORT = "desktop.broker:Transport" (config/settings/desktop.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from pathlib import Path

from kombu.transport import filesystem
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)

INFLIGHT = "inflight"
CORRUPT = "corrupt"


def _inflight_folder(queue_folder: str | os.PathLike) -> Path:
    return Path(queue_folder) / INFLIGHT


def queue_recover(queue_folder: str | os.PathLike) -> int:
    """Move messages left in flight by a crash back into the queue. Only while no worker consumes."""
    inflight = _inflight_folder(queue_folder)
    if not inflight.is_dir():
        return 0
    count = 0
    for path in sorted(inflight.iterdir()):
        if path.name.endswith(".msg"):
            os.replace(path, Path(queue_folder) / path.name)
            count += 1
    if count:
        logger.info("queue: %d job(s) interrupted by the last exit are queued again", count)
    return count


def queue_size(queue_folder: str | os.PathLike, queue: str = "celery") -> int:
    try:
        return sum(1 for name in os.listdir(queue_folder) if name.partition(".")[2] == f"{queue}.msg")
    except FileNotFoundError:
        return 0


class Channel(filesystem.Channel):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._inflight_files: dict[str, Path] = {}
        for folder in (self.data_folder_in, self.data_folder_out):
            Path(folder).mkdir(parents=True, exist_ok=True)

    @property
    def inflight_folder(self) -> Path:
        folder = _inflight_folder(self.data_folder_in)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _put(self, queue, payload, **kwargs):
        name = f"{time.time_ns():020d}_{uuid.uuid4()}.{queue}.msg"
        folder = Path(self.data_folder_out)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{name}.tmp"
        data = dumps(payload).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, folder / name)

    def _get(self, queue):
        wanted = f"{queue}.msg"
        folder = Path(self.data_folder_in)
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            raise filesystem.Empty() from None
        for name in names:
            if name.partition(".")[2] != wanted:
                continue
            target = self.inflight_folder / name
            try:
                os.rename(folder / name, target)  # atomic: exactly one consumer wins a message
            except OSError:
                continue
            try:
                payload = loads(target.read_bytes())
                tag = payload["properties"]["delivery_tag"]
            except (ValueError, KeyError, TypeError, OSError):
                corrupt = folder / CORRUPT
                corrupt.mkdir(exist_ok=True)
                with contextlib.suppress(OSError):
                    os.replace(target, corrupt / name)
                logger.error("queue: unreadable message %s set aside in %s", name, corrupt)
                continue
            self._inflight_files[tag] = target
            return payload
        raise filesystem.Empty()

    def _inflight_forget(self, delivery_tag) -> None:
        path = self._inflight_files.pop(delivery_tag, None)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def basic_ack(self, delivery_tag, multiple=False):
        super().basic_ack(delivery_tag, multiple=multiple)
        self._inflight_forget(delivery_tag)

    def basic_reject(self, delivery_tag, requeue=False):
        # requeue=True goes through _restore below, which moves the file back first
        super().basic_reject(delivery_tag, requeue=requeue)
        self._inflight_forget(delivery_tag)

    def _restore(self, message):
        path = self._inflight_files.pop(message.delivery_tag, None)
        if path is not None and path.exists():
            os.replace(path, Path(self.data_folder_in) / path.name)
            return
        super()._restore(message)


class Transport(filesystem.Transport):
    Channel = Channel
    driver_type = "filesystem"
    driver_name = "filesystem"

    #: Longest wait in one drain: the worker's loop checks for shutdown between drains (Celery asks for
    #: 2 s), and a quick, warm stop is what lets the app quit promptly.
    drain_timeout_max = 0.5

    def drain_events(self, connection, timeout=None):
        if timeout is not None and timeout > self.drain_timeout_max:
            timeout = self.drain_timeout_max
        return super().drain_events(connection, timeout=timeout)
