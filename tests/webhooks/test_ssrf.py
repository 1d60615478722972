"""The SSRF guard refuses every non-public address, in every spelling, after DNS resolution, and
again for the address actually connected to. These run WITHOUT the loopback allow-list."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from core import ssrf
from webhooks.delivery import delivery_attempt
from webhooks.errors import WebhookError
from webhooks.maintenance import test_event_send
from webhooks.models import Attempt, Delivery
from webhooks.services import endpoint_create

REFUSED_HOSTS = [
    "127.0.0.1",
    "127.1.2.3",
    "[::1]",
    "10.0.0.5",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # CGNAT
    "0.0.0.0",
    "224.0.0.1",  # multicast
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "198.18.0.1",  # benchmarking
    "[::ffff:127.0.0.1]",  # IPv4-mapped
    "[::ffff:169.254.169.254]",
    "[::ffff:7f00:1]",
    "[::127.0.0.1]",  # IPv4-compatible (deprecated)
    "[fe80::1]",  # link-local
    "[fc00::1]",  # unique local
    "[fd12:3456::1]",
    "[ff02::1]",  # multicast
    "[::]",
    "[2002:7f00:1::]",  # 6to4 around 127.0.0.1
    "[2002:a9fe:a9fe::1]",  # 6to4 around 169.254.169.254
    "[64:ff9b::a9fe:a9fe]",  # NAT64 around 169.254.169.254
    "[64:ff9b::10.0.0.1]",
    "localhost",
    "2130706433",  # decimal 127.0.0.1
    "0177.0.0.1",  # octal
    "0x7f.0.0.1",  # hex
    "0x7f000001",
    "017700000001",
    "127.1",  # short form
]


@pytest.fixture(autouse=True)
def _no_allow_list(settings):
    settings.TESSERA_OUTBOUND_ALLOWED_HOSTS = []


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_every_non_public_address_is_refused(host):
    with pytest.raises(ssrf.AddressRefused) as err:
        ssrf.target_resolve(f"http://{host}:8080/hook")
    assert "Refused" in err.value.reason or "local host name" in err.value.reason


@pytest.mark.parametrize(
    "host", ["localhost", "127.0.0.1", "[::1]", "169.254.169.254", "2130706433", "0177.0.0.1", "[::ffff:10.0.0.1]"]
)
def test_such_urls_cannot_even_be_saved(tenant, admin_user, host):
    with pytest.raises(WebhookError) as err:
        endpoint_create(actor=admin_user, url=f"http://{host}/hook")
    assert err.value.field == "url" and err.value.code == "url_refused"


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address):
    assert ssrf.address_refusal(ipaddress.ip_address(address)) is None


def test_a_name_that_resolves_to_a_private_address_is_refused(monkeypatch):
    """DNS is the attacker's: a public-looking name whose answer is private is refused after resolution."""

    def resolve(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)  # no DNS server we control here
    with pytest.raises(ssrf.AddressRefused) as err:
        ssrf.target_resolve("https://partner.example.com/hook")
    assert "10.1.2.3" in err.value.reason


def test_one_private_answer_among_public_ones_refuses_the_name(monkeypatch):
    def resolve(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(ssrf.AddressRefused):
        ssrf.target_resolve("https://partner.example.com/hook")


def test_dns_rebinding_cannot_swap_the_address_after_the_check(monkeypatch, receiver, settings):
    """The first answer is public, any later one would be loopback: the connection goes to the vetted
    address (never resolved again), and the connected peer is checked once more."""
    answers = iter(["93.184.216.34", "127.0.0.1", "127.0.0.1"])

    def resolve(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    target = ssrf.target_resolve(f"http://rebind.example.com:{receiver.server.server_address[1]}/hook")
    assert target.addresses == ("93.184.216.34",)

    # Pin to the receiver's loopback address as if the vetted answer had been it: the peer check refuses.
    forged = ssrf.Target(target.scheme, target.host, target.port, target.path, ("93.184.216.34",))
    conn = ssrf._PinnedHTTPConnection(forged, "127.0.0.1", timeout=2)
    with pytest.raises(ssrf.AddressRefused) as err:
        conn.connect()
    assert "not the vetted address" in err.value.reason
    assert receiver.received == []


def test_a_kept_alive_connection_is_reused_only_for_a_still_vetted_address(monkeypatch, receiver, settings):
    """Keep-alive does not bypass the guard: when the host's vetted addresses no longer include the one a
    kept connection is pinned to, the next request opens a new connection to a vetted address."""
    from webhooks.delivery import http_post

    settings.TESSERA_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1/32"]
    port = receiver.server.server_address[1]
    url = f"http://hooks.example.com:{port}/hook"
    answers = {"now": "127.0.0.1"}

    def resolve(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers["now"], port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    for _ in range(2):
        assert http_post(url, headers={}, body="{}", timeout=2).status == 200
    assert len(receiver.received) == 2 and len({r.peer for r in receiver.received}) == 1  # kept alive

    answers["now"] = "10.0.0.1"  # the name now points into a private network: refused, nothing sent
    response = http_post(url, headers={}, body="{}", timeout=2)
    assert response.status is None and "private" in response.error
    assert len(receiver.received) == 2


def test_a_delivery_to_a_refused_address_fails_without_a_request(tenant, admin_user, receiver, settings):
    settings.TESSERA_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    endpoint, _ = endpoint_create(actor=admin_user, url=receiver.url())  # allowed when saved…
    settings.TESSERA_OUTBOUND_ALLOWED_HOSTS = []  # …but not any more when delivered

    delivery = test_event_send(actor=admin_user, endpoint=endpoint)
    outcome = delivery_attempt(delivery.pk)

    assert outcome.result == "retrying"
    assert receiver.received == []
    attempt = Attempt.objects.get(delivery=delivery)
    assert "loopback" in attempt.error and attempt.response_status is None
    assert Delivery.objects.get(pk=delivery.pk).last_error.startswith("Refused")


def test_the_allow_list_admits_listed_networks_only(settings):
    settings.TESSERA_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1", "10.20.0.0/16"]
    assert ssrf.target_resolve("http://127.0.0.1:9/x").addresses == ("127.0.0.1",)
    assert ssrf.target_resolve("http://10.20.3.4/x").addresses == ("10.20.3.4",)
    for host in ("10.21.0.1", "169.254.169.254", "127.0.0.2"):
        with pytest.raises(ssrf.AddressRefused):
            ssrf.target_resolve(f"http://{host}/x")


def test_https_is_required_where_the_setting_says_so(settings, tenant, admin_user):
    settings.TESSERA_WEBHOOK_HTTPS_REQUIRED = True
    with pytest.raises(WebhookError) as err:
        endpoint_create(actor=admin_user, url="http://hooks.example.com/in")
    assert "https" in err.value.message
    endpoint_create(actor=admin_user, url="https://hooks.example.com/in")


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://example.com", "https://user:pw@example.com/"]
)
def test_other_schemes_and_credentials_in_urls_are_refused(url):
    with pytest.raises(ssrf.AddressRefused):
        ssrf.url_check_static(url)
