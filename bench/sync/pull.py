#!/usr/bin/env python
"""What an initial pull costs the server: CPU per record pulled (server processes and database apart)
and records/s with N phones pulling at once, side by side with RxDB's own reference server on the same
machine. Prints figures; never asserts.

    TESSERA_MODE=saas .venv/bin/python bench/sync/pull.py [--records 100000] [--concurrency 1,4,8]
        [--workers 2] [--batch 1000]
    TESSERA_MODE=desktop .venv/bin/python bench/sync/pull.py

The workspace and server are bench/sync/run.py's (uvicorn, production settings; SaaS: a private
PostgreSQL whose processes' CPU is counted as the database's). The clients speak the wire protocol
without RxDB storage (tests/sync/rxdb/driver.mjs `pullRaw`, spread over up to 4 Node processes), each
pulling the whole collection from scratch with the SDK's default batch (1,000 documents a request).
They do not offer permessage-deflate, since RxDB's reference server never compresses (one more line
shows the cost of compression, which browsers and npm ws ask for). One RxDB 17.6 client (memory
storage) through the SDK shows what a phone's own storage makes of it: on this machine the client,
not the server, is the limit of one phone's initial sync.

Baseline: tests/sync/rxdb/refserver.mjs (RxDB's startWebsocketServer, memory storage, no auth, merge,
persistence or fan-out across processes; one Node process) with the same records, the same clients;
its CPU is that Node process's. The machine is shared: the figures say the load average, and the
CPU-per-record columns are the ones to compare (wall-clock rates move with the load).
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
    Reference,
    cpu_seconds,
    free_port,
    say,
    server_pids,
    server_start,
    stop,
    workspace_seed,
)

DRIVERS = 4


def database_cpu(db) -> float:
    """CPU seconds of the private PostgreSQL's processes (exited backends included), 0 without one."""
    if db is None or db.server is None:
        return 0.0
    from bench._pg import child_pids, process_cpu_seconds

    postmaster = int(Path(db.server.dir, "pg", "postmaster.pid").read_text().split()[0])
    return process_cpu_seconds(postmaster, children=True) + sum(process_cpu_seconds(c) for c in child_pids(postmaster))


def pulls(drivers, urls: list[str], records: int, batch: int, deflate: bool) -> float:
    """len(urls) clients pull the whole collection at once; returns the wall time of them all."""
    started = time.monotonic()
    seqs = [
        (
            drivers[n % len(drivers)],
            drivers[n % len(drivers)].send(
                "pullRaw", url=url, collection="bulk", batchSize=batch, deflate=deflate, timeout=1_800_000
            ),
        )
        for n, url in enumerate(urls)
    ]
    for driver, seq in seqs:
        result = driver.result(seq, timeout=1800)
        assert result["count"] == records, result
    return time.monotonic() - started


def measure(label: str, drivers, urls, records: int, batch: int, deflate: bool, cpu, db_cpu) -> dict:
    cpu0, db0 = cpu(), db_cpu()
    wall = pulls(drivers, urls, records, batch, deflate)
    cpu1, db1 = cpu(), db_cpu()
    pulled = records * len(urls)
    row = {
        "rate": pulled / wall,
        "server_us": (cpu1 - cpu0) / pulled * 1e6,
        "db_us": (db1 - db0) / pulled * 1e6,
    }
    database = f", database {row['db_us']:.1f}" if db1 > 0 else ""
    say(
        f"  {label:<44} {row['rate']:9,.0f} records/s   CPU per record: server {row['server_us']:.1f} us{database}"
        f"   (load {os.getloadavg()[0]:.1f})"
    )
    return row


def sdk_pull(url: str, records: int, stock: bool) -> float:
    from tests.sync.rxdb_harness import RxDriver

    rx = RxDriver()
    try:
        options = {"stock": True, "batchSize": 1000} if stock else {"sdk": True}
        result = rx.call(
            "open",
            reply_timeout=900,
            name="pull",
            url=url,
            collection="bulk",
            fields=FIELDS,
            proxy=False,
            timeout=900_000,
            track=False,
            **options,
        )
        assert result["count"] == records, result
        return records / result["ms"] * 1000
    finally:
        rx.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--concurrency", default="1,4,8", help="phones pulling at once, comma-separated")
    parser.add_argument("--batch", type=int, default=1000, help="documents a request (the SDK's default)")
    parser.add_argument("--workers", type=int, default=2 if SAAS else 1)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    args.levels = [int(c) for c in args.concurrency.split(",")]

    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("TESSERA_SECRETS_KEY", "bench-secrets-key")
    os.environ.setdefault("TESSERA_SECRET_KEY", secrets.token_urlsafe(40))
    os.environ["TESSERA_LOG_FORMAT"] = "text"
    os.environ["TESSERA_RATE_LIMIT_SCALE"] = "1000"
    workdir = Path(tempfile.mkdtemp(prefix="tessera-bench-pull."))
    try:
        if SAAS:
            from bench._pg import bench_database

            os.environ.setdefault("TESSERA_REDIS_URL", "redis://127.0.0.1:6379/14")
            with bench_database() as db:
                os.environ["TESSERA_DATABASE_URL"] = db.url
                run(args, workdir, db)
        else:
            os.environ["TESSERA_DATA_DIR"] = str(workdir / "data")
            run(args, workdir, None)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(args, workdir: Path, db) -> None:
    import django

    django.setup()
    from tests.sync.rxdb_harness import RxDriver

    mode = "saas" if SAAS else "desktop"
    say(
        f"== Initial pull, {mode} runtime: {args.records:,} records a phone, batch {args.batch}, "
        f"{args.workers} server process(es)"
    )
    say(f"nproc {len(os.sched_getaffinity(0))}, load average now {os.getloadavg()}; {db.note if db else 'SQLite'}")
    ws = workspace_seed(args.records, max(args.levels))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    server = server_start(port, args.workers, env, workdir / "server.log")
    base = f"ws://{ws['host']}:{port}/sync/v1/?token="
    ours: dict = {}
    drivers = [RxDriver() for _ in range(DRIVERS)]
    try:
        pids = server_pids(server)
        cpu = lambda: cpu_seconds(pids)  # noqa: E731
        db_cpu = lambda: database_cpu(db)  # noqa: E731
        pulls(drivers[:1], [base + ws["tokens"][0]], args.records, args.batch, False)  # warm: plans, caches
        for level in args.levels:
            urls = [base + token for token in ws["tokens"][:level]]
            ours[level] = measure(
                f"{level} phone(s) at once", drivers, urls, args.records, args.batch, False, cpu, db_cpu
            )
        measure(
            "1 phone, permessage-deflate on",
            drivers,
            [base + ws["tokens"][0]],
            args.records,
            args.batch,
            True,
            cpu,
            db_cpu,
        )
        rate = sdk_pull(base + ws["tokens"][0], args.records, stock=False)
        say(f"  one RxDB client through the SDK (its defaults): {rate:,.0f} records/s into its memory storage")
        ours["sdk"] = rate
    finally:
        for driver in drivers:
            driver.close()
        stop(server)
    if args.no_baseline:
        return

    say("\n== Baseline: RxDB's reference server (one Node process, memory storage; no auth, merge or persistence)")
    theirs: dict = {}
    ref = Reference("bulk", args.records)
    drivers = [RxDriver() for _ in range(DRIVERS)]
    try:
        cpu = lambda: cpu_seconds([ref.process.pid])  # noqa: E731
        url = f"ws://127.0.0.1:{ref.port}/"
        pulls(drivers[:1], [url], args.records, args.batch, False)
        for level in args.levels:
            theirs[level] = measure(
                f"{level} phone(s) at once", drivers, [url] * level, args.records, args.batch, False, cpu, lambda: 0.0
            )
        theirs["sdk"] = sdk_pull(url, args.records, stock=True)
        say(f"  one stock RxDB client, batch {args.batch}: {theirs['sdk']:,.0f} records/s into its memory storage")
    finally:
        for driver in drivers:
            driver.close()
        ref.close()

    say(f"\n== Tessera / reference (load average now {os.getloadavg()})")
    for level in args.levels:
        a, b = ours[level], theirs[level]
        total = (a["server_us"] + a["db_us"]) / b["server_us"]
        say(
            f"  {level} phone(s): records/s {a['rate'] / b['rate']:.2f}x; CPU per record, server + database "
            f"{total:.2f}x (server alone {a['server_us'] / b['server_us']:.2f}x)"
        )
    say(f"  one RxDB client's initial sync (SDK vs stock client on the reference): {ours['sdk'] / theirs['sdk']:.2f}x")


if __name__ == "__main__":
    main()
