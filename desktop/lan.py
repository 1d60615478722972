"""The LAN sync hub's network side: which address to listen on, what the LAN may reach, mDNS.

Off by default. When on, the app also listens on the machine's LAN address, where only the phone
sync path (/sync/v1/) is served — the console and everything else stay on 127.0.0.1 — and it
advertises `_tessera._tcp` over mDNS so phones on the same network find it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import posixpath
import socket
from pathlib import Path

logger = logging.getLogger(__name__)

SYNC_PREFIX = "/sync/v1"
SERVICE_TYPE = "_tessera._tcp.local."
DEFAULT_LAN_PORT = 47800


def _default_route_interfaces() -> list[str]:
    """Interfaces carrying a default route (Linux /proc/net/route), best metric first. No traffic."""
    try:
        lines = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return []
    routes = []
    for line in lines:
        parts = line.split()
        if len(parts) > 6 and parts[1] == "00000000":
            routes.append((int(parts[6]), parts[0]))
    return [name for _, name in sorted(routes)]


def lan_address() -> str | None:
    """The IPv4 address phones on the same network reach this machine at (None when offline).

    TESSERA_LAN_ADDRESS overrides (tests use a loopback-range address). Prefers the interface of the
    default route, then any private address; never loopback or link-local."""
    override = os.environ.get("TESSERA_LAN_ADDRESS")
    if override:
        return override
    try:
        import ifaddr
    except ImportError:  # pragma: no cover - a dependency of zeroconf
        return None
    candidates: dict[str, list[str]] = {}
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if not isinstance(ip.ip, str):
                continue  # IPv6
            addr = ipaddress.ip_address(ip.ip)
            if addr.is_loopback or addr.is_link_local or addr.is_multicast or addr.is_unspecified:
                continue
            candidates.setdefault(adapter.nice_name, []).append(ip.ip)
    for name in _default_route_interfaces():
        if candidates.get(name):
            return candidates[name][0]
    private = [a for addrs in candidates.values() for a in addrs if ipaddress.ip_address(a).is_private]
    return private[0] if private else None


def sync_path_allowed(path: str) -> bool:
    """True for /sync/v1 and paths under it, with no `..` or `.` segments to step outside."""
    if "\\" in path or "\x00" in path:
        return False
    segments = path.split("/")
    if ".." in segments or "." in segments:
        return False
    normalized = posixpath.normpath(path) if path else ""
    return normalized == SYNC_PREFIX or normalized.startswith(SYNC_PREFIX + "/")


class LanOnlySync:
    """ASGI wrapper for the LAN listener: /sync/v1/ goes to Tessera, everything else is a 404."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        lan_reachable = scope["type"] in {"http", "websocket"} and scope.get("root_path", "") == ""
        if lan_reachable and sync_path_allowed(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http":
            body = b"Not found. This address serves only Tessera's phone sync (/sync/v1/).\n"
            await send(
                {
                    "type": "http.response.start",
                    "status": 404,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4404})


def lan_socket(address: str, preferred_port: int) -> socket.socket:
    """A listening socket on the LAN address: the remembered port if free (paired phones keep it)."""
    last_error: OSError | None = None
    for port in (preferred_port or DEFAULT_LAN_PORT, 0):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
            sock.listen(128)
            sock.setblocking(False)
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
    raise last_error or OSError("could not listen on the LAN address")


class MdnsAdvertiser:
    """Announces `<name>._tessera._tcp` on the LAN address; failures are logged, never raised."""

    def __init__(self, *, address: str, port: int, name: str, properties: dict[str, str] | None = None):
        self.address = address
        self.port = port
        self.name = name
        self.properties = properties or {}
        self._zeroconf = None
        self._info = None

    def service_info(self):
        from zeroconf import ServiceInfo

        safe = "".join(ch if ch.isalnum() or ch in " -" else "-" for ch in self.name).strip()[:60] or "Tessera"
        host = socket.gethostname().split(".")[0] or "tessera"
        return ServiceInfo(
            SERVICE_TYPE,
            f"{safe}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(self.address)],
            port=self.port,
            properties={"path": SYNC_PREFIX + "/", **self.properties},
            server=f"{host}.local.",
        )

    def start(self) -> bool:
        try:
            from zeroconf import IPVersion, Zeroconf

            self._info = self.service_info()
            self._zeroconf = Zeroconf(interfaces=[self.address], ip_version=IPVersion.V4Only)
            self._zeroconf.register_service(self._info, allow_name_change=True)
            return True
        except Exception as exc:  # no multicast on this network: the hub still works by address
            logger.warning("LAN sync hub: mDNS advertisement unavailable (%s)", exc)
            self.stop()
            return False

    def stop(self) -> None:
        zc, self._zeroconf = self._zeroconf, None
        if zc is None:
            return
        try:
            if self._info is not None:
                zc.unregister_service(self._info)
        except Exception:
            logger.debug("LAN sync hub: mDNS unregister failed", exc_info=True)
        finally:
            zc.close()
