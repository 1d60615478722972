"""Fixtures for the sync tests: a collection, paired devices, and websocket clients.

Tests here use `own_counters` and `own_channel_layer` (pytestmark) so that xdist workers sharing one
Redis never see each other's PIN buckets or channel groups.

In-process protocol tests drive the real ASGI application (config.asgi) through asgiref's
ApplicationCommunicator (channels.testing's WebsocketCommunicator does the same, but importing it
needs daphne, which Tessera does not use), in one event loop per test; the consumer's database
calls then run in this thread, inside the test's transaction. Writes whose fan-out a test needs run inside
`django_capture_on_commit_callbacks(execute=True)`, so the spine's publish hook fires as on commit.
"""

from __future__ import annotations

import copy
import json
import uuid
from unittest import mock
from urllib.parse import unquote, urlparse

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async

from tests.conftest import host_of

FIELDS = [
    {"key": "title", "type": "text"},
    {"key": "notes", "type": "text"},
    {"key": "qty", "type": "integer"},
    {"key": "done", "type": "boolean"},
]


@pytest.fixture
def own_counters(settings):
    """PIN-guess buckets start full in every test, whatever other tests (or xdist workers sharing
    Redis) did: each test counts under a namespace of its own, as tests/partners does."""
    settings.TESSERA_COUNTERS_NAMESPACE = f"test-{uuid.uuid4().hex}"


@pytest.fixture
def own_channel_layer(settings):
    """Group names repeat between xdist workers (same schema, same collection ids) and their
    channels-redis layers share one Redis: each test gets a channel prefix of its own."""
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    config = layers["default"].setdefault("CONFIG", {})
    if "hosts" in config:
        config["prefix"] = f"test-{uuid.uuid4().hex[:12]}"
    settings.CHANNEL_LAYERS = layers


@pytest.fixture
def jobs(tenant, admin_user):
    from records.services import collection_create

    return collection_create(actor=admin_user, name="Jobs", slug="jobs", fields=FIELDS)


@pytest.fixture
def pair(tenant, admin_user):
    """pair(role="manager", user=None) -> (Device, raw token) of tenant alpha."""
    from sync.services import pairing_exchange, pairing_start

    def make(role: str = "manager", user=None, name: str = "Field phone"):
        started = pairing_start(actor=admin_user, user=user or admin_user, role=role)
        return pairing_exchange(tenant=tenant, code=started.code, name=name, client_version="test/1")

    return make


def run(coro_fn, *args, **kwargs):
    """Run an async scenario to completion from a sync test (DB calls stay on this thread). As in
    channels.testing, the consumer must not close "old" connections: that would be the test's own,
    in the middle of its transaction."""
    with mock.patch("channels.db.close_old_connections", lambda: None):
        return async_to_sync(coro_fn)(*args, **kwargs)


class WebsocketCommunicator(ApplicationCommunicator):
    """A websocket client for an ASGI app, in process (the shape of channels.testing's)."""

    def __init__(self, application, path: str, headers=None, subprotocols=None):
        parsed = urlparse(path)
        scope = {
            "type": "websocket",
            "path": unquote(parsed.path),
            "query_string": parsed.query.encode(),
            "headers": headers or [],
            "subprotocols": subprotocols or [],
            "client": ("127.0.0.1", 50000),
        }
        super().__init__(application, scope)

    async def connect(self, timeout=1):
        await self.send_input({"type": "websocket.connect"})
        response = await self.receive_output(timeout)
        if response["type"] == "websocket.close":
            return False, response.get("code", 1000)
        assert response["type"] == "websocket.accept", response
        return True, response.get("subprotocol")

    async def send_to(self, text_data: str):
        await self.send_input({"type": "websocket.receive", "text": text_data})

    async def receive_from(self, timeout=1) -> str:
        response = await self.receive_output(timeout)
        assert response["type"] == "websocket.send", response
        return response["text"]

    async def disconnect(self, code=1000, timeout=1):
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)


db = database_sync_to_async


class Socket:
    """A websocket client of /sync/v1/ speaking JSON frames, on the real ASGI application."""

    def __init__(
        self, tenant, token: str | None, *, host: str | None = None, subprotocols=None, query: str | None = None
    ):
        from config.asgi import application

        path = "/sync/v1/" + (f"?token={token}" if token and query is None else (query or ""))
        self.comm = WebsocketCommunicator(
            application, path, headers=[(b"host", (host or host_of(tenant)).encode())], subprotocols=subprotocols
        )
        self.counter = 0

    async def connect(self):
        return await self.comm.connect(timeout=5)

    async def send(self, frame):
        await self.comm.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, timeout: float = 3):
        """The next frame that is not a heartbeat."""
        while True:
            frame = json.loads(await self.comm.receive_from(timeout=timeout))
            if frame.get("id") != "heartbeat":
                return frame

    async def call(self, collection, method, params, timeout: float = 5):
        self.counter += 1
        request_id = f"r{self.counter}"
        await self.send({"id": request_id, "collection": collection, "method": method, "params": params})
        frame = await self.recv(timeout)
        assert frame["id"] == request_id, frame
        return frame

    async def close(self):
        await self.comm.disconnect()


# The live server(s) and RxDB driver of the tests that run real RxDB clients (module-scoped servers).
from tests.sync.rxdb_live import live, rx, rx_database  # noqa: E402, F401
