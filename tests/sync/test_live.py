"""Phone sync against real servers: uvicorn running config.asgi with the production settings, a
real websocket client (`websockets`), and — in SaaS — two server processes sharing Redis, so a
change made through the REST API on one reaches a device connected to the other.

The servers work on committed data of their own (tests/sync/live_workspace.py: a throwaway tenant
in SaaS, a copy of the test database on the desktop), so nothing here meets the rest of the suite.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests import live_server
from tests.conftest import SAAS

pytestmark = pytest.mark.django_db  # the test database must exist; the servers use committed data of their own


def _committed_env(connection, workdir: Path) -> dict[str, str]:
    return live_server.committed_database_env(connection, workdir, "sync-live")


def _manage(env: dict, *args: str) -> str:
    return live_server.run_module("tests.sync.live_workspace", env, *args)


class Live:
    def __init__(self, env: dict, workspace: dict, servers: list):
        self.env, self.workspace, self.servers = env, workspace, servers

    def host(self, server) -> str:
        return self.workspace["host"] if SAAS else "127.0.0.1"

    def socket(self, server, token: str | None = None, host: str | None = None):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        token = token or self.workspace["token"]
        uri = f"ws://{host or self.host(server)}:{server.port}/sync/v1/?token={token}"
        return connect(uri, sock=sock, proxy=None, max_size=None, open_timeout=10)

    def api(self, server, method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            server.url("/api/v1/" + path),
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Host": f"{self.host(server)}:{server.port}",
                "Authorization": f"Bearer {self.workspace['api_key']}",
                "Content-Type": "application/merge-patch+json" if method == "PATCH" else "application/json",
            },
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=20) as response:
            return json.loads(response.read())


def _recv(ws, timeout: float = 10) -> dict:
    """The next frame that is not a heartbeat."""
    while True:
        frame = json.loads(ws.recv(timeout=timeout))
        if frame.get("id") != "heartbeat":
            return frame


def _call(ws, request_id: str, method: str, params: list, collection: str = "livejobs") -> dict:
    ws.send(json.dumps({"id": request_id, "collection": collection, "method": method, "params": params}))
    frame = _recv(ws)
    assert frame["id"] == request_id, frame
    return frame


@pytest.fixture(scope="module")
def live(django_db_setup, django_db_blocker, tenants_provisioned, tmp_path_factory):
    """A workspace of its own and one server (two in SaaS, sharing Redis), for the module."""
    from django.conf import settings
    from django.db import connection

    assert live_server.is_test_database(connection.settings_dict)
    base_domain = getattr(settings, "TESSERA_BASE_DOMAIN", "")
    tmp_path = tmp_path_factory.mktemp("sync-live")
    with django_db_blocker.unblock():
        env_db = _committed_env(connection, tmp_path)
    env = {**env_db, **({"TESSERA_BASE_DOMAIN": base_domain} if SAAS else {"TESSERA_DATA_DIR": str(tmp_path)})}
    workspace = json.loads(_manage(env, "setup").strip().splitlines()[-1])
    servers = []
    try:
        for _ in range(2 if SAAS else 1):
            servers.append(live_server.start_server(env_db, base_domain))
        yield Live(env, workspace, servers)
    finally:
        for server in servers:
            server.stop()
            if server.workdir is not None:
                shutil.rmtree(server.workdir, ignore_errors=True)
        if SAAS:
            _manage(env, "teardown", workspace["slug"])


def test_a_phone_syncs_with_a_real_server(live):
    server = live.servers[0]
    with live.socket(server) as ws:
        pulled = _call(ws, "p1", "masterChangesSince", [None, 100])["result"]
        assert [d["id"] for d in pulled["documents"]] == ["job0", "job1", "job2"]
        base = pulled["documents"][1]
        write = _call(
            ws, "w1", "masterWrite", [[{"assumedMasterState": base, "newDocumentState": {**base, "notes": "done"}}]]
        )
        assert write["result"][0]["notes"] == "done" and write["result"][0]["version"] == 2
        ws.send(json.dumps({"id": "stream", "collection": "livejobs", "method": "masterChangeStream$", "params": []}))
        assert _recv(ws)["result"] == "RESYNC"
        live.api(server, "PATCH", "collections/livejobs/records/job2", {"data": {"title": "From the office"}})
        event = _recv(ws)
        assert event["id"] == "stream" and event["result"]["documents"][0]["title"] == "From the office"
    assert live.api(server, "GET", "collections/livejobs/records/job1")["data"]["notes"] == "done"
    log = server.log_tail(2000)
    assert "token=[redacted]" in log and live.workspace["token"] not in log  # tokens stay out of logs


def test_a_refused_handshake_is_an_http_error_with_a_problem(live):
    server = live.servers[0]
    with pytest.raises(InvalidStatus) as refused:
        live.socket(server, token="tsd_wrong")
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body)["code"] == "unauthenticated"


@pytest.mark.saas_only
def test_a_device_token_means_nothing_on_another_workspace_host(live, tenants_provisioned):
    server = live.servers[0]
    with pytest.raises(InvalidStatus) as refused:
        live.socket(server, host=tenants_provisioned["alpha"].host())
    assert refused.value.response.status_code == 401


@pytest.mark.saas_only
def test_a_rest_change_on_one_process_reaches_a_device_on_another(live):
    device_side, api_side = live.servers
    with live.socket(device_side) as ws:
        ws.send(json.dumps({"id": "stream", "collection": "livejobs", "method": "masterChangeStream$", "params": []}))
        assert _recv(ws)["result"] == "RESYNC"
        started = time.monotonic()
        live.api(api_side, "PATCH", "collections/livejobs/records/job0", {"data": {"qty": 42}})
        event = _recv(ws)
        elapsed = time.monotonic() - started
        (doc,) = event["result"]["documents"]
        assert (doc["id"], doc["qty"], doc["version"]) == ("job0", 42, 2)
        print(f"REST commit on one process → device on another: {elapsed * 1000:.1f} ms")


@pytest.mark.saas_only
def test_revoking_cuts_an_open_socket_on_another_process(live):
    token = live.workspace["revoke_token"]
    with live.socket(live.servers[0], token=token) as ws:
        assert _call(ws, "p1", "masterChangesSince", [None, 1])["result"]["documents"]
        _manage(live.env, "revoke", live.workspace["slug"], str(live.workspace["revoke_device_id"]))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                _recv(ws, timeout=10)
        assert closed.value.rcvd.code == 4401
    with pytest.raises(InvalidStatus):
        live.socket(live.servers[1], token=token)
    with live.socket(live.servers[1]) as ws:  # the workspace's other phone syncs on
        assert _call(ws, "p2", "masterChangesSince", [None, 1])["result"]["documents"]
