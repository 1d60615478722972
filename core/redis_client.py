"""The Redis connection of this process (SaaS only): token buckets, usage counters, key generations."""

from __future__ import annotations

import threading

from django.conf import settings

_clients: dict[str, object] = {}
_lock = threading.Lock()

# A slow or absent Redis must not stall the API: rate limiting and metering give up quickly.
SOCKET_TIMEOUT = 0.5


def redis_client():
    """One redis-py client (and connection pool) per URL, shared by the threads of this process."""
    url = settings.REDIS_URL
    client = _clients.get(url)
    if client is None:
        import redis  # installed in SaaS only

        with _lock:
            client = _clients.get(url)
            if client is None:
                client = redis.Redis.from_url(
                    url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT, health_check_interval=30
                )
                _clients[url] = client
    return client
