#!/usr/bin/env python
"""What rate limiting and usage metering add to one API request (partners.ratelimit, partners.usage).
Prints figures; never asserts.

    TESSERA_MODE=saas TESSERA_REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/api_limits/run.py
    TESSERA_MODE=desktop .venv/bin/python bench/api_limits/run.py [--requests 20000]

Times, per request, what the middleware does around an API-key request: the token-bucket take
(key + workspace buckets) and the usage count, with the runtime's own backends (Redis in SaaS: one
Lua script round trip + one HINCRBY round trip; process memory on the desktop). No database is
touched: the counters are never flushed here. Keys it writes live under a namespace of their own.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings

    from partners import ratelimit, usage

    settings.TESSERA_COUNTERS_NAMESPACE = f"bench-{uuid.uuid4().hex}"
    settings.TESSERA_RATE_LIMIT_SCALE = 1_000_000  # measure the work, never a refusal
    settings.TESSERA_USAGE_FLUSH_SECONDS = 10**9
    tenant = SimpleNamespace(pk=1, plan="enterprise")
    key = SimpleNamespace(pk=1)

    def timed(label: str, step) -> None:
        for _ in range(500):  # warm up: connections, script cache
            step()
        samples = []
        for _ in range(args.requests):
            started = time.perf_counter()
            step()
            samples.append(time.perf_counter() - started)
        samples.sort()
        p50, p99, mean = statistics.median(samples), samples[int(len(samples) * 0.99) - 1], statistics.fmean(samples)
        print(f"  {label:<30} p50 {p50 * 1e6:7.1f} µs   p99 {p99 * 1e6:7.1f} µs   mean {mean * 1e6:7.1f} µs")

    print(
        f"runtime {os.environ.get('TESSERA_MODE', 'desktop')}: {settings.TESSERA_RATE_LIMIT_BACKEND}, "
        f"{settings.TESSERA_USAGE_BACKEND}; {args.requests} requests each"
    )
    timed("rate limit (key + workspace)", lambda: ratelimit.ratelimit_take(tenant=tenant, key=key))
    timed("usage count (success)", lambda: usage.usage_record(tenant=tenant, key=key, error=False))
    timed("usage count (error)", lambda: usage.usage_record(tenant=tenant, key=key, error=True))
    decision = ratelimit.ratelimit_take(tenant=tenant, key=key)
    timed("headers", decision.headers)


if __name__ == "__main__":
    main()
