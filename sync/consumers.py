"""The phone sync websocket (`/sync/v1/`): RxDB's websocket replication protocol, served per device.

Connecting: the device token comes in the query string (`?token=tsd_…`) or as a websocket
subprotocol; the workspace comes from the Host, exactly as for HTTP (tenants.runtime.workspace_for_host).
A connection without a valid token is refused before it is accepted (HTTP 401 with a problem+json
body where the server supports the ASGI denial response, else a plain 403).

Frames, all JSON text:
- requests `{id, collection, method, params}` → replies `{id, collection, result}`;
- `masterChangesSince` [checkpoint, batchSize] → `{documents, checkpoint}`;
- `masterWrite` [rows] → the master document of every row that differs from it (every row written,
  refused or merged: sync/replication.py says why), `[]` when all already were the master;
- `masterChangeStream$` → `"RESYNC"` at once, then `{documents, checkpoint}` for every change of
  the collection, and `"RESYNC"` again whenever a change went missing; these frames carry the
  request's id (RxDB uses "stream"). A change that arrives after a later one of the same collection
  (two server processes published in the wrong order) is never sent: it is replaced by a `"RESYNC"`,
  so no socket sends a document older than one it already sent, and a gap is always a pull.
  The process's fan-out hub (sync/fanout.py) hands each change's frame, built once, to every
  socket streaming the collection; a socket sends them in order from its outbox, and one that cannot
  keep up (OUTBOX_MAX frames waiting) drops them for a `"RESYNC"`;
- a `masterWrite` row refused because its record's processing is restricted (GDPR art. 18) is answered
  with the master (a tombstone) like any refused row, then an error frame `subject_restricted` with the
  request's id names those records;
- `auth` (RxDB sends its `headers` option; the device was authenticated when connecting) → `true`;
- anything that cannot be answered → `{id, collection, error: {code, message}}`.
The server sends `{"id": "heartbeat", "collection": null, "result": {"at": …}}` every
TESSERA_SYNC_HEARTBEAT_SECONDS, on the same ticks for all of a process's sockets, and re-checks the
device (sync.heartbeats: one query per workspace per tick for them all); a connection that
subscribed to no stream and sent nothing for TESSERA_SYNC_IDLE_SECONDS is closed (4408). A revoked
device's sockets are closed at once (4401).

A workspace another cell serves (reached the wrong cell, or moved away while the socket was open: the
heartbeat's re-check finds it gone and asks the directory) is accepted just long enough to be told
where: one frame `{"id": "workspace_elsewhere", "collection": null, "error": {"code":
"workspace_elsewhere", "message", "url": "wss://<its cell>/sync/v1/", "region"}}`, then a close with
code 4421 and the same URL in the reason. Accepted rather than refused with an HTTP answer: a browser's
or React Native's WebSocket never shows a refusal's status or body, but shows every close's code and
reason. The URL carries no token: the device reconnects there with its own.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import time
from collections.abc import Callable
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from core.bounded_json import JsonTooDeep, json_loads_bounded
from core.errors import ServiceError
from core.request_context import client_address
from rbac.permissions import has_permission
from records.models import Change, Collection
from sync import replication
from sync.documents import instant, json_text, result_frame
from sync.fanout import Stream, collection_group, device_group, hub_for, server_loop_register
from sync.heartbeats import rechecks_for, until_next_tick
from sync.replication import ProtocolError
from sync.services import TOKEN_PREFIX, device_checkpoints_save, device_for_token, device_seen
from tenants.runtime import (
    workspace_context,
    workspace_current_or_none,
    workspace_for_host,
    workspace_sockets_group,
    workspace_still_serving,
)
from tenants.topology import Elsewhere, workspace_elsewhere, workspace_elsewhere_for_host

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 1024 * 1024
CHECKPOINT_SAVE_EVERY = 10.0  # seconds between checkpoint writes of one connection
OUTBOX_MAX = 1000  # stream frames waiting to be sent to a socket before they are dropped for a RESYNC
SUBPROTOCOL = "tessera-sync.v1"
METHODS = ("masterChangesSince", "masterWrite", "masterChangeStream$", "auth")
CLOSE_REVOKED = 4401
CLOSE_IDLE = 4408
CLOSE_ELSEWHERE = 4421  # HTTP's 421 Misdirected Request: the workspace is served by another cell
_ID_PREFIX = re.compile(r'^\s*\{\s*"id"\s*:\s*"([^"\\]{0,200})"')


def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


def _client_ip(scope) -> str | None:
    client = scope.get("client")
    return client_address(client[0] if client else None, _header(scope, b"x-forwarded-for"))


def _token_from(scope) -> tuple[str | None, str | None]:
    """(token, subprotocol to accept with)."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    token = (query.get("token") or [None])[0]
    offered = list(scope.get("subprotocols") or [])
    from_protocol = next((p for p in offered if p.startswith(TOKEN_PREFIX)), None)
    chosen = SUBPROTOCOL if SUBPROTOCOL in offered else (from_protocol if offered else None)
    return token or from_protocol, chosen


def active_workspace_for_host(host: str):
    """The workspace served at `host` (as for HTTP), or None: unknown hosts, the public site and
    suspended workspaces have none. One being moved to another cell is served (reads; its writes are
    refused with `workspace_moving` until it is there, then the socket is told where it went)."""
    tenant = workspace_for_host(host)
    if tenant is None or tenant.status not in (tenant.Status.ACTIVE, tenant.Status.MOVING):
        return None
    with workspace_context(tenant):
        if workspace_current_or_none() is None:  # the public site is no workspace
            return None
    return tenant


class SyncConsumer(AsyncWebsocketConsumer):
    async def websocket_connect(self, message):
        server_loop_register(asyncio.get_running_loop())
        self.tenant = None
        self.device = None
        self.streams: dict[int, Stream] = {}  # collection id -> its stream on this socket
        self.outbox: collections.deque[str] = collections.deque()  # stream frames to send, in order
        self.outbox_task: asyncio.Task | None = None
        self.collections: dict[str, Collection] = {}
        self.pending_checkpoints: dict[int, tuple[int, str]] = {}
        self.checkpoints_saved_at = time.monotonic()
        self.last_heard = time.monotonic()
        self.heartbeat_task = None
        self.elsewhere: Elsewhere | None = None
        token, subprotocol = _token_from(self.scope)
        # One trip to the database thread: the workspace of the Host, the device of the token, seen now.
        self.tenant, self.device = await database_sync_to_async(self._authenticate)(token)
        if self.tenant is None and self.elsewhere is not None:
            await self.accept(subprotocol=subprotocol)
            return await self._elsewhere_close(self.elsewhere)
        if self.tenant is None:
            return await self._deny(404, "unknown_workspace", "No workspace at this address.")
        if self.device is None:
            return await self._deny(
                401, "unauthenticated", "Connect with ?token=<device token> of this workspace (unknown or revoked)."
            )
        await self.channel_layer.group_add(device_group(self.tenant, self.device.pk), self.channel_name)
        await self.channel_layer.group_add(workspace_sockets_group(self.tenant), self.channel_name)
        await self.accept(subprotocol=subprotocol)
        self.heartbeat_task = asyncio.create_task(self._heartbeat())

    def _authenticate(self, token: str | None):
        host = _header(self.scope, b"host")
        tenant = active_workspace_for_host(host)
        if tenant is None:
            self.elsewhere = workspace_elsewhere_for_host(host)
        if tenant is None or not token:
            return tenant, None
        with workspace_context(tenant):
            device = device_for_token(token)
            if device is not None:
                device_seen(device=device, ip=_client_ip(self.scope))
        return tenant, device

    async def _deny(self, status: int, code: str, detail: str):
        if "websocket.http.response" in self.scope.get("extensions", {}):
            body = json_text(
                {"type": "about:blank", "title": "Refused", "status": status, "code": code, "detail": detail}
            )
            await self.base_send(
                {
                    "type": "websocket.http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/problem+json")],
                }
            )
            await self.base_send({"type": "websocket.http.response.body", "body": body.encode()})
        else:
            await self.close()
        raise StopConsumer()

    async def __call__(self, scope, receive, send):
        self.streams = {}
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.streams:  # ended without its disconnect (an error): the hub must forget it all the same
                asyncio.get_running_loop().create_task(self._streams_end())

    async def websocket_disconnect(self, message):
        if self.heartbeat_task is not None:
            self.heartbeat_task.cancel()
        if self.device is not None:
            await self.channel_layer.group_discard(device_group(self.tenant, self.device.pk), self.channel_name)
            await self.channel_layer.group_discard(workspace_sockets_group(self.tenant), self.channel_name)
            await self._streams_end()
            await self._checkpoints_flush()
        raise StopConsumer()

    async def _streams_end(self):
        if self.outbox_task is not None:
            self.outbox_task.cancel()
        self.outbox.clear()
        hub = hub_for(asyncio.get_running_loop())
        streams, self.streams = list(self.streams.values()), {}
        for stream in streams:
            hub.detach(stream)
        for stream in streams:
            await hub.leave(stream.group)

    # --- database calls, inside the socket's workspace ------------------------------------------

    async def _db(self, fn: Callable, *args, **kwargs):
        def run():
            with workspace_context(self.tenant):
                return fn(*args, **kwargs)

        return await database_sync_to_async(run)()

    # --- frames from the client -----------------------------------------------------------------

    async def websocket_receive(self, message):
        self.last_heard = time.monotonic()
        text = message.get("text")
        if text is None:
            try:
                text = (message.get("bytes") or b"").decode()
            except UnicodeDecodeError:
                return await self._error(None, None, "invalid_json", "Frames are UTF-8 JSON text.")
        if len(text) > MAX_MESSAGE_BYTES or (
            len(text) * 4 > MAX_MESSAGE_BYTES and len(text.encode()) > MAX_MESSAGE_BYTES
        ):
            found = _ID_PREFIX.match(text[:300])
            return await self._error(
                found.group(1) if found else None, None, "message_too_large", "A frame may be at most 1 MiB."
            )
        try:
            request = json_loads_bounded(text)
        except JsonTooDeep as exc:
            return await self._error(None, None, "invalid_json", f"The frame is not accepted: {exc}")
        except ValueError:
            return await self._error(None, None, "invalid_json", "The frame is not valid JSON.")
        if not isinstance(request, dict):
            return await self._error(
                None, None, "invalid_request", "A request is a JSON object {id, collection, method, params}."
            )
        request_id, slug = request.get("id"), request.get("collection")
        try:
            await self._handle(request_id, slug, request.get("method"), request.get("params", []))
        except ServiceError as exc:  # a malformed request, or a service's refusal (ServiceError: core.errors)
            await self._error(request_id, slug, exc.code, exc.message, **exc.extra)
        except Exception:
            logger.exception("sync request failed")
            await self._error(request_id, slug, "server_error", "Something went wrong on our side; retry later.")

    async def _error(self, request_id, slug, code: str, message: str, **extra):
        """An error frame; a service's refusal carries its details too (a plan limit: the limit, the
        usage and the billing page's URL)."""
        error = {**extra, "code": code, "message": message}
        await self.send(text_data=json_text({"id": request_id, "collection": slug, "error": error}))

    async def _reply(self, request_id, slug, result):
        await self.send(text_data=json_text({"id": request_id, "collection": slug, "result": result}))

    async def _handle(self, request_id, slug, method, params):
        if not isinstance(request_id, str | int) or isinstance(request_id, bool):
            raise ProtocolError("invalid_request", "A request needs an `id` (string).")
        if method not in METHODS:
            raise ProtocolError(
                "unknown_method", f"Unknown method {str(method)[:80]!r}; use one of {', '.join(METHODS)}."
            )
        if method == "auth":
            return await self._reply(request_id, slug, True)  # authenticated when connecting
        if not isinstance(params, list):
            raise ProtocolError("invalid_params", "`params` must be a list.")
        collection = await self._collection(slug)
        if method == "masterChangesSince":
            if len(params) < 2:
                raise ProtocolError("invalid_params", "masterChangesSince takes [checkpoint, batchSize].")
            after = replication.checkpoint_parse(params[0])
            batch_size = replication.batch_size_check(params[1])
            page = await self._db(
                replication.changes_since_page, collection=collection, after=after, batch_size=batch_size
            )
            self._checkpoint_note(collection.pk, after)
            if page.count < batch_size:  # the client is now up to date (the lag column)
                self._checkpoint_note(collection.pk, page.checkpoint)
            await self.send(text_data=result_frame(request_id, slug, page.text))
            await self._checkpoints_flush(maybe=True)
        elif method == "masterWrite":
            if len(params) < 1:
                raise ProtocolError("invalid_params", "masterWrite takes [rows].")
            refused: list[str] = []
            result = await self._db(self._write, collection.pk, params[0], refused)
            await self._reply(request_id, slug, result)
            if refused:  # after the answer (RxDB takes the first frame with the request's id as it)
                await self._error(
                    request_id,
                    slug,
                    "subject_restricted",
                    "Not saved: the processing of these records is restricted at their data subject's request "
                    "(GDPR art. 18); they are kept as they are until the restriction is lifted.",
                    records=refused,
                )
        else:
            await self._stream_start(request_id, slug, collection)

    def _write(self, collection_id: int, rows, refused: list[str]):
        collection = Collection.objects.filter(pk=collection_id, livemode=True, deleted_at=None).first()
        if collection is None:
            raise ProtocolError("unknown_collection", "This collection was deleted.")
        return replication.master_write(actor=self.device, collection=collection, rows=rows, refused=refused)

    async def _collection(self, slug) -> Collection:
        if not isinstance(slug, str) or not slug:
            raise ProtocolError("unknown_collection", "A request names its `collection` (the collection's slug).")
        if not (has_permission(self.device, "records.view") and has_permission(self.device, "collections.view")):
            raise ProtocolError("forbidden", "This device's role may not read records.")
        collection = self.collections.get(slug)
        if collection is None:
            collection = await self._db(
                lambda: Collection.objects.filter(livemode=True, slug=slug, deleted_at=None).first()
            )
            if collection is None:
                raise ProtocolError("unknown_collection", f"No collection {slug[:80]!r} in this workspace.")
            self.collections[slug] = collection
        return collection

    # --- the change stream ----------------------------------------------------------------------

    async def _stream_start(self, request_id, slug: str, collection: Collection):
        current = self.streams.get(collection.pk)
        if current is not None:  # asked again on the same socket: the new request id, and a pull
            current.request_id, current.slug = request_id, slug
            return await self._reply(request_id, slug, "RESYNC")
        hub = hub_for(asyncio.get_running_loop())
        group = collection_group(self.tenant, collection.pk)
        await hub.join(group)  # receiving before reading where the collection stands: nothing falls between
        try:
            known = await self._db(
                lambda: (
                    Change.objects.filter(collection_id=collection.pk, livemode=True)
                    .order_by("-seq")
                    .values_list("seq", flat=True)
                    .first()
                    or 0
                )
            )
        except BaseException:
            await hub.leave(group)
            raise
        stream = Stream(
            socket=self, request_id=request_id, slug=slug, collection_id=collection.pk, group=group, known=known
        )
        self.streams[collection.pk] = stream
        hub.attach(stream)
        # The client may have missed anything while it was away: it pulls again.
        await self._reply(request_id, slug, "RESYNC")

    def stream_change(self, stream: Stream, message: dict, frame: str) -> None:
        """A change of a collection this socket streams (called by the hub, on this loop)."""
        if message["seq"] <= stream.known:
            # Later than a newer change of the collection: server processes publish on commit each on
            # their own, so two quick writes of one record can reach Redis in the wrong order. Sent as
            # is, it would put the phone back on an older version (and its checkpoint back) until the
            # record changed again. The client pulls instead, which reads what is stored now.
            return self._outbox_put(result_frame(stream.request_id, stream.slug, '"RESYNC"'))
        if message["prev_seq"] > stream.known:  # a change went missing on the way (or comes later)
            self._outbox_put(result_frame(stream.request_id, stream.slug, '"RESYNC"'))
        stream.known = message["seq"]
        self._checkpoint_note(stream.collection_id, (message["seq"], message["record_id"]))
        self._outbox_put(frame)

    def _outbox_put(self, frame: str) -> None:
        if len(self.outbox) >= OUTBOX_MAX:
            # The client does not keep up: what waits is replaced by a RESYNC of every stream (it pulls).
            self.outbox.clear()
            self.outbox.extend(result_frame(s.request_id, s.slug, '"RESYNC"') for s in self.streams.values())
            logger.warning("sync socket of device %s fell %s stream frames behind: RESYNC", self.device.pk, OUTBOX_MAX)
            return
        self.outbox.append(frame)
        if self.outbox_task is None:
            self.outbox_task = asyncio.get_running_loop().create_task(self._outbox_send())

    async def _outbox_send(self):
        try:
            while self.outbox:
                await self.base_send({"type": "websocket.send", "text": self.outbox.popleft()})
        except asyncio.CancelledError:
            raise
        except Exception:  # the socket is gone; its disconnect is on its way
            self.outbox.clear()
        finally:
            self.outbox_task = None

    async def dispatch(self, message):
        # Without channels' clean-up of old database connections before every message: a hop to the
        # database thread that every socket would queue for on every message. Database work here
        # always goes through database_sync_to_async, which does that clean-up itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def sync_revoked(self, event):
        await self.close(code=CLOSE_REVOKED, reason="device revoked")

    async def workspace_closed(self, event):
        """The workspace was deleted or suspended (tenants.runtime.workspace_sockets_close)."""
        await self._gone_close(reason="workspace closed")

    async def _gone_close(self, reason: str):
        """The socket's workspace no longer serves here: told where it went if another cell holds it
        now (moved), else closed as revoked."""
        elsewhere = await database_sync_to_async(workspace_elsewhere)(self.tenant.slug)
        if elsewhere is not None:
            await self._elsewhere_close(elsewhere)
        else:
            await self.close(code=CLOSE_REVOKED, reason=reason)

    async def _elsewhere_close(self, elsewhere: Elsewhere):
        url = elsewhere.cell.workspace_websocket_url(elsewhere.slug, "/sync/v1/")
        message = f"This workspace is served at {url} now: reconnect there with the same device token."
        error = {"code": "workspace_elsewhere", "message": message, "url": url, "region": elsewhere.region}
        await self.send(text_data=json_text({"id": "workspace_elsewhere", "collection": None, "error": error}))
        reason = f"workspace_elsewhere {url}"
        await self.close(code=CLOSE_ELSEWHERE, reason=reason if len(reason.encode()) <= 123 else "workspace_elsewhere")

    # --- checkpoints, heartbeats ----------------------------------------------------------------

    def _checkpoint_note(self, collection_id: int, after: tuple[int, str]):
        if after[0] > self.pending_checkpoints.get(collection_id, (-1, ""))[0]:
            self.pending_checkpoints[collection_id] = after

    async def _checkpoints_flush(self, maybe: bool = False):
        if not self.pending_checkpoints:
            return
        if maybe and time.monotonic() - self.checkpoints_saved_at < CHECKPOINT_SAVE_EVERY:
            return
        pending, self.pending_checkpoints = self.pending_checkpoints, {}
        self.checkpoints_saved_at = time.monotonic()
        await self._db(device_checkpoints_save, device=self.device, checkpoints=pending)

    async def _heartbeat(self):
        every = float(getattr(settings, "TESSERA_SYNC_HEARTBEAT_SECONDS", 25))
        idle = float(getattr(settings, "TESSERA_SYNC_IDLE_SECONDS", 300))
        try:
            while True:
                await asyncio.sleep(until_next_tick(min(every, idle)))
                if not self.streams and time.monotonic() - self.last_heard >= idle:
                    await self.close(code=CLOSE_IDLE, reason="idle")
                    return
                try:
                    if await self._heartbeat_tick():
                        return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # One tick failed (the database away, the workspace's schema renamed by a move
                    # between two queries): the next tick asks again, so the socket is never left
                    # without its re-checks (a revoked device, a workspace gone or moved).
                    logger.exception("sync heartbeat failed")
        except asyncio.CancelledError:
            pass

    async def _heartbeat_tick(self) -> bool:
        """Re-check the device and send the heartbeat; True when the socket was closed."""
        rechecks = rechecks_for(asyncio.get_running_loop())
        device = await rechecks.recheck(self.tenant, self.device.pk, _client_ip(self.scope))
        if device is None:
            # The same words as the channel layer's message, whichever comes first: a phone
            # told "device revoked" would ask to be paired again for a suspended workspace.
            serving = await database_sync_to_async(workspace_still_serving)(self.tenant)
            if serving:
                await self.close(code=CLOSE_REVOKED, reason="device revoked")
            else:
                await self._gone_close(reason="workspace closed")
            return True
        self.device = device
        await self._reply("heartbeat", None, {"at": instant(timezone.now())})
        await self._checkpoints_flush(maybe=True)
        return False
