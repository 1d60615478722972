"""Fan-out of record changes and revocations to connected devices, through the channel layer.

Groups (channels-redis in SaaS, so they cross server processes; in-memory on the desktop):
- `sync.<tenant schema>.<collection id>`: every live change of the collection, published on commit
  by the write spine's `commit_publishers` hook;
- `syncdev.<tenant schema>.<device id>`: the device's sockets, told to close when it is revoked.

Publishing never waits for the channel layer: messages go, in order, to one publisher task on the
event loop of this process's websocket server when it has one (so the in-memory layer is only ever
touched from its own loop), else on a background loop of their own (Celery workers, management
commands, plain threads) whose Redis connections are kept, not opened per message.

A change message carries its stream frame's `result` as JSON text, built once by the publisher, plus
the sequence number of the previous change of the same collection (`prev_seq`) and when it was
published. Each server process receives it once however many of its sockets stream the collection:
the process's hub (`hub_for`) is the only member of the collection groups in that process, builds the
frame text once per change (per stream request id, which RxDB always sets to "stream") and hands it
to every socket streaming the collection, each of which sends it in order from an outbox of its own
(sync/consumers.py). A socket whose last known change is older than `prev_seq` has missed a message
(channel layers drop messages to a full channel) and tells its client to RESYNC.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from channels.layers import get_channel_layer

from core.events import DomainEvent
from records.events import RecordChanged, RecordRestricted
from records.models import Change, Record
from sync.documents import document_from_notice, document_of, json_text, result_frame
from tenants.runtime import workspace_current_or_none

logger = logging.getLogger(__name__)


def tenant_key(tenant) -> str:
    return tenant.schema_name


def collection_group(tenant, collection_id: int) -> str:
    return f"sync.{tenant_key(tenant)}.{collection_id}"


def device_group(tenant, device_id: int) -> str:
    return f"syncdev.{tenant_key(tenant)}.{device_id}"


_last_published = threading.local()


def _previous_seq(tenant, collection_id: int, seq: int) -> int:
    """The seq of the collection's change before `seq` (devices detect gaps with it). A transaction that
    wrote many records publishes them in seq order on this thread: when the change just published
    here was seq - 1 in the same collection, that is the answer without a query."""
    last = getattr(_last_published, "change", None)
    _last_published.change = (tenant.schema_name, collection_id, seq)
    if last == (tenant.schema_name, collection_id, seq - 1):
        return seq - 1
    previous = (
        Change.objects.filter(collection_id=collection_id, livemode=True, seq__lt=seq)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )
    return previous or 0


class _Publisher:
    """Sends (group, message) pairs one after another on one event loop.

    Submitting wakes the loop only when it is not already due to take what was handed over: a bulk
    write's thousand changes wake it a few times, not a thousand (each wake-up is a write to the loop's
    self-pipe and a fight with the publishing thread for the interpreter)."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.queue: asyncio.Queue | None = None
        self.pending = 0
        self.handed: deque[tuple[str, dict]] = deque()
        self.wake_due = False
        self.lock = threading.Lock()

    def submit(self, group: str, message: dict) -> None:
        with self.lock:
            self.pending += 1
            self.handed.append((group, message))
            if self.wake_due:
                return
            self.wake_due = True
        self.loop.call_soon_threadsafe(self._take)

    def _take(self) -> None:
        if self.queue is None:
            self.queue = asyncio.Queue()
            self.loop.create_task(self._run())
        with self.lock:
            self.wake_due = False
            while self.handed:
                self.queue.put_nowait(self.handed.popleft())

    async def _run(self) -> None:
        while True:
            group, message = await self.queue.get()
            try:
                await get_channel_layer().group_send(group, message)
            except Exception:
                logger.exception("sync fan-out to %s failed", group)
            finally:
                with self.lock:
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


def _workspace_of(notice: DomainEvent):
    """The workspace the change happened in; the events of one bulk write look it up once between them
    (on the desktop the lookup is a query, and a 1,000-record delete made a thousand of them)."""
    if notice.batch is None:
        return workspace_current_or_none()
    if "sync.workspace" not in notice.batch:
        notice.batch["sync.workspace"] = workspace_current_or_none()
    return notice.batch["sync.workspace"]


def change_publish(notice: DomainEvent) -> None:
    """Subscriber (on commit) of record changes: send a live change to its collection's group. Never
    raises: the change is committed already, and a device that misses it catches up on its next pull."""
    if not isinstance(notice, RecordChanged | RecordRestricted) or not notice.livemode:
        return  # devices sync live record data only
    try:
        published_at = time.time()
        tenant = _workspace_of(notice)
        layer = get_channel_layer()
        if tenant is None or layer is None:
            return
        if isinstance(notice, RecordRestricted):  # a tombstone while restricted, the record once lifted
            record = Record.objects.filter(livemode=True, id=notice.record_id).first()
            if record is None:
                return
            doc = document_of(record)
        else:
            doc = document_from_notice(notice)
        group = collection_group(tenant, notice.collection_id)
        message = {
            "type": "sync.change",
            "group": group,
            "collection_id": notice.collection_id,
            "seq": notice.seq,
            "prev_seq": _previous_seq(tenant, notice.collection_id, notice.seq),
            "record_id": notice.record_id,
            "result": json_text({"documents": [doc], "checkpoint": {"seq": notice.seq, "id": doc["id"]}}),
            "published_at": published_at,  # on commit (bench/sync times fan-out from here)
        }
        _submit(group, message)
    except Exception:
        logger.exception("sync fan-out failed for change %s", notice.seq)


def device_disconnect(device_id: int) -> None:
    """Close every open socket of the device (in any server process)."""
    try:
        tenant = workspace_current_or_none()
        layer = get_channel_layer()
        if tenant is None or layer is None:
            return
        _submit(device_group(tenant, device_id), {"type": "sync.revoked"})
    except Exception:
        logger.exception("could not tell device %s's sockets to close", device_id)


# --- the receiving side: one hub per server process (event loop) ----------------------------------


class StreamSocket(Protocol):
    def stream_change(self, stream: Stream, message: dict, frame: str) -> None: ...


@dataclass(eq=False)
class Stream:
    """One socket's `masterChangeStream$` of one collection."""

    socket: StreamSocket
    request_id: Any
    slug: str
    collection_id: int
    group: str
    known: int  # the last change sequence number this socket has been told about (or pulled past)


class _Hub:
    """This event loop's member of the collection groups: one channel-layer subscription and one
    decoded message per change, whatever the number of sockets streaming the collection here."""

    REFRESH_EVERY = 3600.0  # the in-memory layer forgets a group member after a day

    def __init__(self, loop: asyncio.AbstractEventLoop, layer):
        self.loop, self.layer = loop, layer
        self.streams: dict[str, dict[Stream, None]] = {}  # group -> streams (ordered: arrival order)
        self.refs: dict[str, int] = {}  # group -> streams joined or joining
        self.subscribed: set[str] = set()
        self.channel: str | None = None
        self.tasks: list[asyncio.Task] = []
        self.lock = asyncio.Lock()

    async def join(self, group: str) -> None:
        """Make sure this process receives the group's changes (before the caller reads where the
        collection stands, so no change falls between the two). Pair with leave()."""
        self.refs[group] = self.refs.get(group, 0) + 1
        try:
            async with self.lock:
                if self.channel is None:
                    self.channel = await self.layer.new_channel()
                    self.tasks = [self.loop.create_task(self._receive()), self.loop.create_task(self._refresh())]
                if group not in self.subscribed:
                    await self.layer.group_add(group, self.channel)
                    self.subscribed.add(group)
        except BaseException:
            self.refs[group] -= 1
            raise

    def attach(self, stream: Stream) -> None:
        self.streams.setdefault(stream.group, {})[stream] = None

    def detach(self, stream: Stream) -> None:
        members = self.streams.get(stream.group)
        if members is not None:
            members.pop(stream, None)
            if not members:
                del self.streams[stream.group]

    async def leave(self, group: str) -> None:
        self.refs[group] = self.refs.get(group, 1) - 1
        if self.refs[group] > 0:
            return
        async with self.lock:
            if self.refs.get(group, 0) > 0:
                return  # joined again meanwhile
            self.refs.pop(group, None)
            if group not in self.subscribed:
                return
            self.subscribed.discard(group)
            await self.layer.group_discard(group, self.channel)
            if not self.subscribed:  # nothing streams here any more: stop listening
                tasks, self.tasks, self.channel = self.tasks, [], None
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _receive(self) -> None:
        channel = self.channel
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("sync fan-out: receiving from the channel layer failed")
                await asyncio.sleep(1)
                continue
            try:
                if message.get("type") == "sync.change":
                    self.deliver(message)
            except Exception:
                logger.exception("sync fan-out: delivering change %s failed", message.get("seq"))

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.REFRESH_EVERY)
            async with self.lock:
                for group in list(self.subscribed):
                    await self.layer.group_add(group, self.channel)

    def deliver(self, message: dict) -> None:
        members = self.streams.get(message["group"])
        if not members:
            return
        frames: dict[tuple, str] = {}
        for stream in tuple(members):
            key = (stream.request_id, stream.slug)
            frame = frames.get(key)
            if frame is None:
                frame = frames[key] = result_frame(stream.request_id, stream.slug, message["result"])
            stream.socket.stream_change(stream, message, frame)


_hubs: dict[int, _Hub] = {}


def hub_for(loop: asyncio.AbstractEventLoop) -> _Hub:
    """The hub of this event loop (the websocket server's) and the current channel layer."""
    layer = get_channel_layer()
    hub = _hubs.get(id(loop))
    if hub is None or hub.loop is not loop or hub.layer is not layer:
        for key in [k for k, h in _hubs.items() if h.loop.is_closed()]:
            del _hubs[key]
        hub = _hubs[id(loop)] = _Hub(loop, layer)
    return hub
