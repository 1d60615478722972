"""The LAN listener serves only phone sync; the hub's address and mDNS announcement."""

from __future__ import annotations

import asyncio
import socket

import pytest

from desktop.lan import SERVICE_TYPE, LanOnlySync, MdnsAdvertiser, lan_address, lan_socket, sync_path_allowed

pytestmark = pytest.mark.desktop_only


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/sync/v1/", True),
        ("/sync/v1", True),
        ("/sync/v1/ws", True),
        ("/sync/v1/../accounts/login/", False),
        ("/sync/v1/./x", False),
        ("/sync/v10/", False),
        ("/sync/", False),
        ("/health", False),
        ("/", False),
        ("/accounts/login/", False),
        ("/sync/v1/\\..\\x", False),
        ("", False),
    ],
)
def test_only_the_sync_path_is_reachable_from_the_lan(path, allowed):
    assert sync_path_allowed(path) is allowed


def run_asgi(app, scope):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_the_lan_listener_answers_404_itself_and_passes_sync_through():
    reached = []

    async def tessera(scope, receive, send):
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = LanOnlySync(tessera)
    sent = run_asgi(app, {"type": "http", "path": "/accounts/login/", "root_path": "", "method": "GET"})
    assert sent[0]["status"] == 404 and b"only Tessera's phone sync" in sent[1]["body"]
    sent = run_asgi(app, {"type": "websocket", "path": "/console", "root_path": ""})
    assert sent == [{"type": "websocket.close", "code": 4404}]
    sent = run_asgi(app, {"type": "http", "path": "/sync/v1/pull", "root_path": "", "method": "GET"})
    assert sent[0]["status"] == 200 and reached == ["/sync/v1/pull"]


def test_the_lan_address_can_be_pinned_and_is_never_loopback(monkeypatch):
    monkeypatch.setenv("TESSERA_LAN_ADDRESS", "127.0.0.9")
    assert lan_address() == "127.0.0.9"
    monkeypatch.delenv("TESSERA_LAN_ADDRESS")
    found = lan_address()
    assert found is None or not found.startswith("127.")


def test_the_lan_port_is_remembered_and_a_busy_one_falls_back():
    taken = lan_socket("127.0.0.1", 0)
    port = taken.getsockname()[1]
    try:
        other = lan_socket("127.0.0.1", port)  # busy: the kernel picks another
        assert other.getsockname()[1] != port
        other.close()
    finally:
        taken.close()
    again = lan_socket("127.0.0.1", port)  # free again: the remembered port is used
    assert again.getsockname()[1] == port
    again.close()


def test_the_mdns_record_names_the_service_address_and_sync_path():
    info = MdnsAdvertiser(address="192.168.1.20", port=47800, name="Tessera Smith & Co", properties={"version": "1"})
    record = info.service_info()
    assert record.type == SERVICE_TYPE == "_tessera._tcp.local."
    assert record.name == f"Tessera Smith - Co.{SERVICE_TYPE}"
    assert record.port == 47800
    assert record.addresses == [socket.inet_aton("192.168.1.20")]
    assert record.properties == {b"path": b"/sync/v1/", b"version": b"1"}


def test_mdns_failure_degrades_to_no_announcement(monkeypatch):
    import zeroconf

    def broken(*args, **kwargs):
        raise OSError("no multicast here")

    monkeypatch.setattr(zeroconf, "Zeroconf", broken)
    advertiser = MdnsAdvertiser(address="127.0.0.1", port=1, name="Tessera")
    assert advertiser.start() is False
    advertiser.stop()  # nothing to undo, no error
