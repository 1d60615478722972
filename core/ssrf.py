"""The SSRF guard: requests to URLs a workspace entered (webhook endpoints, its identity provider's
discovery document, keys and metadata) go only to public addresses, checked after DNS resolution and
again for the address actually connected to.

`target_resolve(url)` resolves the host and refuses the URL if ANY of its addresses is loopback,
private, link-local (cloud metadata 169.254.169.254 included), CGNAT (100.64/10), multicast, reserved,
unspecified or otherwise not globally routable — looking through IPv4-mapped, IPv4-compatible, 6to4,
NAT64 and Teredo IPv6 forms to the IPv4 address inside. The caller then connects to the vetted
address itself (`connection_open`, with the name kept for the Host header and TLS SNI/certificate
check), so a DNS answer that changes between the check and the connection (rebinding) is never
used; the connected peer is checked once more.

TESSERA_OUTBOUND_ALLOWED_HOSTS lists host names and networks (CIDR) allowed anyway — for development
and the desktop edition. TESSERA_WEBHOOK_HTTPS_REQUIRED refuses plain http:// (SaaS production).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_BENCHMARK = ipaddress.ip_network("198.18.0.0/15")


class AddressRefused(Exception):
    """The URL may not be requested; `reason` says why in words an Admin understands."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client's (obfuscated) address, decoded by ipaddress
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # deprecated ::a.b.c.d
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_refusal(ip: IPAddress) -> str | None:
    """Why `ip` is not a place to send requests to, or None when it is a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            why = address_refusal(inner)
            return f"{why} (inside the IPv6 address {ip})" if why else None
        if ip.scope_id:
            return f"{ip} is a scoped (link-local) address"
    checks = [
        (ip.is_unspecified, "the unspecified address"),
        (ip.is_loopback, "a loopback address (this server itself)"),
        (ip.is_link_local, "a link-local address (cloud metadata services live here)"),
        (ip.is_multicast, "a multicast address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "a carrier-grade NAT address (100.64.0.0/10)"),
        (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local, "a site-local address"),
        (ip.is_private, "a private network address"),
        (ip.is_reserved, "a reserved address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _BENCHMARK, "a benchmarking network address"),
        (not ip.is_global, "not a public internet address"),
    ]
    for refused, why in checks:
        if refused:
            return f"{ip} is {why}"
    return None


def _allowed_networks() -> tuple[set[str], list]:
    names: set[str] = set()
    networks = []
    for entry in getattr(settings, "TESSERA_OUTBOUND_ALLOWED_HOSTS", []) or []:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.strip().lower().rstrip("."))
    return names, networks


def address_allowed(ip: IPAddress) -> bool:
    """True if `ip` is public, or in a network of the allow-list."""
    _, networks = _allowed_networks()
    if any(ip.version == net.version and ip in net for net in networks):
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        mapped = ip.ipv4_mapped
        if any(net.version == 4 and mapped in net for net in networks):
            return True
    return address_refusal(ip) is None


@dataclass(frozen=True)
class Target:
    """Where one request goes: the URL's parts and the vetted addresses to connect to."""

    scheme: str
    host: str  # as in the URL (Host header, TLS server name)
    port: int
    path: str  # path and query
    addresses: tuple[str, ...]
    name_allowed: bool = False  # the host name itself is on the allow-list


def _parts(url: str, https_required: bool = False) -> tuple[str, str, int, str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise AddressRefused(f"The URL is not valid: {exc}.") from exc
    scheme = (parts.scheme or "").lower()
    if scheme not in ("http", "https"):
        raise AddressRefused("The URL must start with https:// (or http://).")
    if https_required and scheme != "https":
        raise AddressRefused("The URL must use https://.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise AddressRefused("The URL has no host name.")
    if parts.username or parts.password:
        raise AddressRefused("Put credentials in a custom header, not in the URL.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, host, port or (443 if scheme == "https" else 80), path


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def url_check_static(url: str, *, https_required: bool = False) -> None:
    """What can be checked without DNS (when an endpoint is saved): scheme, form, literal addresses,
    names that are always local. Raises AddressRefused."""
    _, host, _, _ = _parts(url, https_required)
    names, _ = _allowed_networks()
    if host.lower() in names:
        return
    ip = _literal_ip(host)
    if ip is None and (host.lower() == "localhost" or host.lower().endswith((".localhost", ".local", ".internal"))):
        raise AddressRefused(f"{host} is a local host name; only public addresses are allowed.")
    if ip is None and (host.replace(".", "").isdigit() or host.lower().startswith("0x")):
        ip = _numeric_ipv4(host)
    if ip is not None and not address_allowed(ip):
        raise AddressRefused(f"Refused: {address_refusal(ip)}.")


def _numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Decimal, octal and hex IPv4 forms the C resolver accepts (2130706433, 0177.0.0.1, 0x7f.1)."""
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def target_resolve(url: str, *, https_required: bool = False) -> Target:
    """Resolve the URL's host and vet every address. Raises AddressRefused."""
    scheme, host, port, path = _parts(url, https_required)
    names, _ = _allowed_networks()
    name_allowed = host.lower() in names
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise AddressRefused(f"The host name {host} does not resolve ({exc}).") from exc
    addresses: list[str] = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if not name_allowed and not address_allowed(ip):
            raise AddressRefused(f"Refused: {host} resolves to {address_refusal(ip)}.")
        if str(ip) not in addresses:
            addresses.append(str(ip))
    if not addresses:
        raise AddressRefused(f"The host name {host} has no usable address.")
    return Target(scheme=scheme, host=host, port=port, path=path, addresses=tuple(addresses), name_allowed=name_allowed)


def _peer_check(sock: socket.socket, target: Target) -> None:
    peer = ipaddress.ip_address(sock.getpeername()[0].split("%", 1)[0])
    if str(peer) not in target.addresses or (not target.name_allowed and not address_allowed(peer)):
        sock.close()
        raise AddressRefused(f"Refused: connected to {peer}, which was not the vetted address.")


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to a vetted address; the Host header still names the URL's host."""

    def __init__(self, target: Target, address: str, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._target, self._address = target, address

    @property
    def address(self) -> str:
        """The vetted address this connection is pinned to (its peer is checked on connect)."""
        return self._address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _peer_check(self.sock, self._target)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a vetted address; SNI and the certificate check use the URL's host name."""

    def __init__(self, target: Target, address: str, timeout: float, context: ssl.SSLContext):
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._target, self._address = target, address

    @property
    def address(self) -> str:
        return self._address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        _peer_check(sock, self._target)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._target.host)


def connection_open(target: Target, *, timeout: float) -> http.client.HTTPConnection:
    """An HTTP(S) connection pinned to the first vetted address of `target` (connects lazily)."""
    address = target.addresses[0]
    if target.scheme == "https":
        return _PinnedHTTPSConnection(target, address, timeout, ssl.create_default_context())
    return _PinnedHTTPConnection(target, address, timeout)


@dataclass(frozen=True)
class Fetched:
    status: int
    content_type: str
    body: bytes


def url_get(url: str, *, timeout: float, max_bytes: int, accept: str = "*/*") -> Fetched:
    """GET a small document from a vetted, pinned address (no redirects followed: a redirect would be
    a new, unvetted URL). Raises AddressRefused, or OSError / http.client.HTTPException when the
    server cannot be reached or answers more than `max_bytes`."""
    target = target_resolve(url)
    conn = connection_open(target, timeout=timeout)
    try:
        conn.request("GET", target.path, headers={"Accept": accept, "User-Agent": "Tessera"})
        response = conn.getresponse()
        body = response.read(max_bytes + 1)
        if len(body) > max_bytes:
            raise http.client.HTTPException(f"the answer is over {max_bytes} bytes")
        return Fetched(response.status, response.getheader("Content-Type", ""), body)
    finally:
        conn.close()
