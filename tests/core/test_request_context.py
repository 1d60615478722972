"""Which address a request is from, with and without trusted proxies in front."""

import pytest

from core.request_context import client_address

CASES = [
    # (trusted proxies, connection's peer, X-Forwarded-For, client)
    (0, "203.0.113.9", "", "203.0.113.9"),
    (0, "203.0.113.9", "198.51.100.7", "203.0.113.9"),  # no proxy: the header is the client's own words
    (1, "10.0.0.2", "203.0.113.9", "203.0.113.9"),
    (1, "10.0.0.2", "198.51.100.7, 203.0.113.9", "203.0.113.9"),  # a forged first hop changes nothing
    (2, "10.0.0.3", "198.51.100.7, 203.0.113.9, 10.0.0.2", "203.0.113.9"),
    (2, "10.0.0.3", "203.0.113.9", "203.0.113.9"),  # past fewer proxies than configured: the leftmost
    (1, "10.0.0.2", "", "10.0.0.2"),  # no header at all: the peer
    (1, "10.0.0.2", " , ", "10.0.0.2"),
    (0, None, "", None),
]


@pytest.mark.parametrize(("trusted", "peer", "forwarded", "client"), CASES)
def test_the_client_is_the_address_the_outermost_trusted_proxy_saw(settings, trusted, peer, forwarded, client):
    settings.TESSERA_TRUSTED_PROXIES = trusted
    assert client_address(peer, forwarded) == client
