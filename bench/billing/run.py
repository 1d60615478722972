#!/usr/bin/env python
"""What billing's limit checks cost on the write path: records created per second through the REST API
with billing on vs off, side by side. Prints figures; never asserts.

    TESSERA_MODE=saas .venv/bin/python bench/billing/run.py [--creates 300] [--rounds 6] [--records 5000]

1. A database of its own (bench/_pg.py), the shared schema migrated, a workspace `bench` on the Pro
   plan with an active subscription (so the checks do their whole work: the standing read and the live
   records counted against the plan's limit), --records records already there, a live API key.
2. POST /api/v1/collections/people/records through the whole stack in this process (Django's test
   client: middleware, DRF, the write spine, audit, outbox), --creates per round, rounds alternating
   ON (billing as deployed: the billing account joined to the host lookup, the checks against the
   live-record count the change counter keeps) and OFF (TESSERA_BILLING_ENABLED = False and no join:
   every check returns at once),
   the order flipping each round because the machine is shared and noisy. Rate limits and usage
   counters use the in-process backends in both (no Redis needed; equal in both).
3. Per variant: creates/s (median of rounds), this process's CPU ms per create, p50/p99 latency, SQL
   statements per create, and the ON/OFF ratio. Target: overhead < 5 %.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "bench-Correct-horse-9417"


def say(text: str) -> None:
    print(text, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--creates", type=int, default=300, help="creates per round (default 300)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds, alternating on/off (default 6)")
    parser.add_argument("--records", type=int, default=5000, help="records present before (default 5000)")
    args = parser.parse_args()
    if os.environ.setdefault("TESSERA_MODE", "saas") != "saas":
        sys.exit("This benchmark needs TESSERA_MODE=saas (billing is the SaaS's).")
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("TESSERA_LOG_LEVEL", "WARNING")
    os.environ["TESSERA_RATE_LIMIT_SCALE"] = "1000000"  # measure the work, never a refusal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from bench._pg import bench_database

    with bench_database() as db:
        os.environ["TESSERA_DATABASE_URL"] = db.url
        import django

        django.setup()
        from django.conf import settings

        settings.TESSERA_RATE_LIMIT_BACKEND = "core.token_buckets.LocalTokenBuckets"
        settings.TESSERA_USAGE_BACKEND = "partners.usage.LocalUsageCounters"
        settings.TESSERA_USAGE_FLUSH_SECONDS = 10**9
        settings.ALLOWED_HOSTS = ["*"]
        # No Redis here: the cache and the webhook wake-up flags in this process's memory (equal in both).
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
        settings.TESSERA_WEBHOOK_WAKE_FLAGS = False
        say(db.note)
        say(f"load average (1/5/15 min): {os.getloadavg()}")
        from bench._pg import shared_migrate

        shared_migrate()
        client, tenant = setup(args.records)
        results: dict[str, list] = {"on": [], "off": []}
        for round_no in range(args.rounds):
            order = ["on", "off"] if round_no % 2 == 0 else ["off", "on"]
            for variant in order:
                settings.TESSERA_BILLING_ENABLED = variant == "on"
                settings.TESSERA_WORKSPACE_LOADED_WITH = ["billing_account"] if variant == "on" else []
                results[variant].append(run(client, tenant, args.creates))
        settings.TESSERA_BILLING_ENABLED = True
        settings.TESSERA_WORKSPACE_LOADED_WITH = ["billing_account"]
        report(results, args)
        from django.db import connections

        connections.close_all()


def setup(records: int):
    from django.test import Client

    from accounts.models import User
    from accounts.onboarding import workspace_signup
    from billing.models import BillingAccount
    from partners.services import api_key_create
    from records.models import Collection
    from records.services import collection_create, record_bulk_upsert
    from tenants.runtime import workspace_context

    tenant = workspace_signup(
        name="Bench", slug="bench", admin_email="admin@bench.test", admin_password=PASSWORD, plan="pro"
    ).tenant
    BillingAccount.objects.create(workspace=tenant, plan="pro", status="active", stripe_customer_id="cus_bench")
    with workspace_context(tenant):
        admin = User.objects.get(email="admin@bench.test")
        people = collection_create(
            actor=admin, name="People", slug="people", fields=[{"key": "name", "type": "text", "required": True}]
        )
        for start in range(0, records, 1000):
            items = [{"data": {"name": f"p{i}"}} for i in range(start, min(records, start + 1000))]
            record_bulk_upsert(actor=admin, collection=people, items=items)
        _, raw = api_key_create(actor=admin, name="bench", mode="live", scopes=["records:write", "records:read"])
        assert Collection.objects.filter(slug="people").exists()
    client = Client(HTTP_HOST=tenant.host(), HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client, tenant


def run(client, tenant, creates: int) -> dict:
    from django.db import connection

    latencies = []
    statements = [0]

    def count(execute, sql, params, many, context):
        statements[0] += 1
        return execute(sql, params, many, context)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    with connection.execute_wrapper(count):
        for i in range(creates):
            started = time.perf_counter()
            response = client.post(
                "/api/v1/collections/people/records", {"data": {"name": f"n{i}"}}, content_type="application/json"
            )
            latencies.append(time.perf_counter() - started)
            if response.status_code != 201:
                raise SystemExit(f"create answered {response.status_code}: {response.content[:300]!r}")
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    latencies.sort()
    return {
        "rate": creates / wall,
        "cpu_ms": 1000 * cpu / creates,
        "p50": 1000 * latencies[len(latencies) // 2],
        "p99": 1000 * latencies[int(len(latencies) * 0.99) - 1],
        "queries": statements[0] / creates,
    }


def report(results: dict, args) -> None:
    say(f"\n{args.rounds} rounds x {args.creates} creates per variant, {args.records}+ records present")
    say(f"{'variant':8} {'creates/s':>10} {'CPU ms/create':>14} {'p50 ms':>8} {'p99 ms':>8} {'SQL/create':>11}")
    med = {}
    for variant in ("off", "on"):
        rows = results[variant]
        med[variant] = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        m = med[variant]
        say(f"{variant:8} {m['rate']:10.1f} {m['cpu_ms']:14.2f} {m['p50']:8.2f} {m['p99']:8.2f} {m['queries']:11.2f}")
    rate = med["off"]["rate"] / med["on"]["rate"] - 1
    cpu = med["on"]["cpu_ms"] / med["off"]["cpu_ms"] - 1
    say(f"billing on vs off: throughput cost {100 * rate:+.1f} %, CPU per create {100 * cpu:+.1f} % (target < 5 %)")
    say(f"per-round creates/s on: {[round(r['rate']) for r in results['on']]}")
    say(f"per-round creates/s off: {[round(r['rate']) for r in results['off']]}")


if __name__ == "__main__":
    main()
