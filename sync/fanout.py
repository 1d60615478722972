"""Fan-out of record changes and revocations to connected devices, through the channel layer.

Groups (channels-redis in SaaS, so they cross server processes; in-memory on the desktop):
- `sync.<tenant schema>.<collection id>`: every live change of the collection, published on commit
  by the write spine's `commit_publishers` hook;
- `syncdev.<tenant schema>.<device id>`: the device's sockets, told to close when it is revoked.

Publishing never waits for the channel layer: messages go, in order, to one publisher task on the
event loop of this process's websocket server when it has one (so the in-memory layer is only ever
touched from its own loop), else on a background loop of their own (Celery workers, management
commands, plain threads) whose Redis connections are kept, not opened per message.

A change message carries the document as devices see it, plus the sequence number of the previous
change of the same collection (`prev_seq`): a socket whose last known change is older than that has
missed a message (channel layers drop messages to a full channel) and tells its client to RESYNC.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time

from channels.layers import get_channel_layer

from records.hooks import ChangeNotice
from records.models import Change
from sync.documents import document_from_notice
from tenants.runtime import tenant_current_or_none

logger = logging.getLogger(__name__)


def tenant_key(tenant) -> str:
    return tenant.schema_name


def collection_group(tenant, collection_id: int) -> str:
    return f"sync.{tenant_key(tenant)}.{collection_id}"


def device_group(tenant, device_id: int) -> str:
    return f"syncdev.{tenant_key(tenant)}.{device_id}"


def _previous_seq(collection_id: int, seq: int) -> int:
    previous = (
        Change.objects.filter(collection_id=collection_id, livemode=True, seq__lt=seq)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )
    return previous or 0


class _Publisher:
    """Sends (group, message) pairs one after another on one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.queue: asyncio.Queue | None = None
        self.pending = 0

    def submit(self, group: str, message: dict) -> None:
        self.pending += 1
        self.loop.call_soon_threadsafe(self._put, group, message)

    def _put(self, group: str, message: dict) -> None:
        if self.queue is None:
            self.queue = asyncio.Queue()
            self.loop.create_task(self._run())
        self.queue.put_nowait((group, message))

    async def _run(self) -> None:
        while True:
            group, message = await self.queue.get()
            try:
                await get_channel_layer().group_send(group, message)
            except Exception:
                logger.exception("sync fan-out to %s failed", group)
            finally:
                self.pending -= 1


_lock = threading.Lock()
_server_publisher: _Publisher | None = None
_server_loop: asyncio.AbstractEventLoop | None = None
_background: _Publisher | None = None


def server_loop_register(loop: asyncio.AbstractEventLoop) -> None:
    """Called by the websocket consumer: this process serves sockets on `loop`."""
    global _server_loop
    _server_loop = loop


def _background_publisher() -> _Publisher:
    global _background
    with _lock:
        if _background is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="sync-fanout", daemon=True).start()
            _background = _Publisher(loop)
            atexit.register(_background_drain)
        return _background


def _background_drain(timeout: float = 2.0) -> None:
    """At exit, give queued messages a moment to leave (a device that misses one catches up later)."""
    deadline = time.monotonic() + timeout
    while _background is not None and _background.pending > 0 and time.monotonic() < deadline:
        time.sleep(0.01)


def _submit(group: str, message: dict) -> None:
    global _server_publisher
    loop = _server_loop
    if loop is not None and loop.is_running() and not loop.is_closed():
        with _lock:
            if _server_publisher is None or _server_publisher.loop is not loop:
                _server_publisher = _Publisher(loop)
            publisher = _server_publisher
        publisher.submit(group, message)
    else:
        _background_publisher().submit(group, message)


def change_publish(notice: ChangeNotice) -> None:
    """The spine's commit publisher: send a live change to its collection's group. Never raises: the
    change is committed already, and a device that misses it catches up on its next pull."""
    if not notice.livemode:
        return  # devices sync live data only
    try:
        tenant = tenant_current_or_none()
        layer = get_channel_layer()
        if tenant is None or layer is None:
            return
        message = {
            "type": "sync.change",
            "collection_id": notice.collection_id,
            "seq": notice.seq,
            "prev_seq": _previous_seq(notice.collection_id, notice.seq),
            "document": document_from_notice(notice),
        }
        _submit(collection_group(tenant, notice.collection_id), message)
    except Exception:
        logger.exception("sync fan-out failed for change %s", notice.seq)


def device_disconnect(device_id: int) -> None:
    """Close every open socket of the device (in any server process)."""
    try:
        tenant = tenant_current_or_none()
        layer = get_channel_layer()
        if tenant is None or layer is None:
            return
        _submit(device_group(tenant, device_id), {"type": "sync.revoked"})
    except Exception:
        logger.exception("could not tell device %s's sockets to close", device_id)
