#!/usr/bin/env python
"""Compressed frames (permessage-deflate) on the phone sync socket: bytes on the wire, CPU on both
ends and the time of an initial pull, with and without compression, on a fast and on a slow link.
Prints figures; never asserts.

    TESSERA_MODE=saas .venv/bin/python bench/sync/deflate.py [--records 100000] [--slow-records 10000]
        [--kbit 1600] [--rtt-ms 150]
    TESSERA_MODE=desktop .venv/bin/python bench/sync/deflate.py

The server is uvicorn with the production settings (bench/sync/run.py's workspace and server, one
process), whose websocket implementation accepts permessage-deflate whenever a client offers it; the
client is one RxDB 17.6 client through the SDK (clients/js) with its defaults, using npm `ws`, which
offers it unless told not to. "Off" is the same client not offering it. Between them sits the
driver's TCP proxy (tests/sync/rxdb/driver.mjs), which counts the bytes each way after the upgrade
and, for the slow link, delivers the server's bytes at --kbit with --rtt-ms added (a 3G-like
1.6 Mbit/s and 150 ms by default; the client's requests are small and go at once).

Baseline: the same pull without compression, side by side (ratio on/off), each --rounds times
alternating, the faster run of each counted. The seeded records are short and alike ("Job n",
a number), so they compress better than most real data: the byte ratio is a lower bound.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.sync.run import (  # noqa: E402
    FIELDS,
    SAAS,
    cpu_seconds,
    free_port,
    say,
    server_pids,
    server_start,
    stop,
    workspace_seed,
)

MODE = os.environ.get("TESSERA_MODE", "desktop")


def pull(rx, url: str, collection: str, records: int, *, deflate: bool, kbit=0, rtt_ms=0, pids=()) -> dict:
    """One initial pull of `collection` through the SDK: its time, bytes each way and CPU seconds."""
    server_cpu = cpu_seconds(list(pids))
    client_cpu = rx.call("cpu")["ms"]
    result = rx.call(
        "open",
        reply_timeout=1200,
        name="pull",
        url=url,
        collection=collection,
        fields=FIELDS,
        sdk=True,
        deflate=deflate,
        linkKbit=kbit,
        linkLatencyMs=rtt_ms,
        timeout=1_200_000,
        track=False,
    )
    assert result["count"] == records, result
    stats = rx.call("stats", name="pull")["proxy"]
    rx.call("close", name="pull")
    return {
        "seconds": result["ms"] / 1000,
        "down": stats["serverBytes"],
        "up": stats["clientBytes"],
        "extensions": stats["extensions"],
        "server_cpu": cpu_seconds(list(pids)) - server_cpu,
        "client_cpu": (rx.call("cpu")["ms"] - client_cpu) / 1000,
    }


def slow_collection_seed(records: int) -> None:
    """A second collection, `slow`, of `records` records (a 100k pull at 1.6 Mbit/s takes minutes)."""
    from django.db import connections

    from accounts.models import User
    from records.services import collection_create
    from tenants.models import Tenant
    from tenants.runtime import workspace_context
    from tests.sync.rxdb_harness import rows_as_the_spine_writes

    tenant = Tenant.objects.get(slug="syncbench") if SAAS else Tenant.objects.get()
    with workspace_context(tenant):
        admin = User.objects.get(email="admin@bench.test")
        slow = collection_create(actor=admin, name="Slow", slug="slow", fields=FIELDS)
        rows_as_the_spine_writes(admin, slow, range(records))
        with connections["default"].cursor() as cursor:
            cursor.execute("ANALYZE")
    connections.close_all()


def best_of(rounds: int, one) -> dict:
    """Each of on/off `rounds` times, alternating (on, off, on, off…): the faster run of each."""
    runs: dict[bool, list] = {True: [], False: []}
    for _ in range(rounds):
        for deflate in (True, False):
            runs[deflate].append(one(deflate))
    return {deflate: min(results, key=lambda r: r["seconds"]) for deflate, results in runs.items()}


def report(label: str, records: int, on: dict, off: dict) -> None:
    say(f"  {label}, {records:,} records:")
    for name, r in (("deflate on ", on), ("deflate off", off)):
        say(
            f"    {name}: {r['seconds']:7.2f} s ({records / r['seconds']:,.0f} records/s), "
            f"down {r['down'] / 1e6:7.2f} MB ({r['down'] / records:5.1f} B/record), up {r['up'] / 1e3:6.1f} KB, "
            f"server CPU {r['server_cpu']:.2f} s, client CPU {r['client_cpu']:.2f} s; "
            f"negotiated: {r['extensions'][0] if r['extensions'] and r['extensions'][0] else 'none'}"
        )
    say(
        f"    on/off: bytes down {on['down'] / off['down']:.2f}x, time {on['seconds'] / off['seconds']:.2f}x, "
        f"server CPU {on['server_cpu'] / max(off['server_cpu'], 1e-9):.2f}x, "
        f"client CPU {on['client_cpu'] / max(off['client_cpu'], 1e-9):.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000, help="records of the fast-link pull")
    parser.add_argument("--slow-records", type=int, default=10_000, help="records of the slow-link pull")
    parser.add_argument("--kbit", type=int, default=1600, help="the slow link's rate (server to phone)")
    parser.add_argument("--rtt-ms", type=int, default=150, help="the slow link's added delay")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each, alternating; the faster counts")
    args = parser.parse_args()

    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("TESSERA_SECRETS_KEY", "bench-secrets-key")
    os.environ.setdefault("TESSERA_SECRET_KEY", secrets.token_urlsafe(40))
    os.environ["TESSERA_LOG_FORMAT"] = "text"
    os.environ["TESSERA_RATE_LIMIT_SCALE"] = "1000"
    workdir = Path(tempfile.mkdtemp(prefix="tessera-bench-deflate."))
    try:
        if SAAS:
            from bench._pg import bench_database

            os.environ.setdefault("TESSERA_REDIS_URL", "redis://127.0.0.1:6379/14")
            with bench_database() as db:
                os.environ["TESSERA_DATABASE_URL"] = db.url
                run(args, workdir, db.note)
        else:
            os.environ["TESSERA_DATA_DIR"] = str(workdir / "data")
            run(args, workdir, f"database: SQLite in {workdir / 'data'}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(args, workdir: Path, note: str) -> None:
    import django

    django.setup()
    from tests.sync.rxdb_harness import RxDriver

    say(f"== Sync socket compression (permessage-deflate), {MODE} runtime")
    say(f"nproc {len(os.sched_getaffinity(0))}, load average now {os.getloadavg()}; {note}")
    started = time.monotonic()
    ws = workspace_seed(args.records, 1)
    slow_collection_seed(args.slow_records)
    say(f"seeded {args.records:,} + {args.slow_records:,} records in {time.monotonic() - started:.1f} s")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    server = server_start(port, 1, env, workdir / "server.log")
    try:
        url = f"ws://{ws['host']}:{port}/sync/v1/?token={ws['tokens'][0]}"
        pids = server_pids(server)
        rx = RxDriver()
        try:
            pull(rx, url, "slow", args.slow_records, deflate=False, pids=pids)  # warm-up (caches, JIT)
            fast = best_of(args.rounds, lambda d: pull(rx, url, "bulk", args.records, deflate=d, pids=pids))
            report("fast link (loopback)", args.records, fast[True], fast[False])
            link = {"kbit": args.kbit, "rtt_ms": args.rtt_ms, "pids": pids}
            slow = best_of(args.rounds, lambda d: pull(rx, url, "slow", args.slow_records, deflate=d, **link))
            report(f"slow link ({args.kbit} kbit/s, +{args.rtt_ms} ms)", args.slow_records, slow[True], slow[False])
        finally:
            rx.close()
    except BaseException:
        log = workdir / "server.log"
        say(f"--- server log (tail) ---\n{log.read_text(errors='replace')[-4000:] if log.exists() else ''}")
        raise
    finally:
        stop(server)


if __name__ == "__main__":
    main()
