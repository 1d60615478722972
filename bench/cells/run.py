#!/usr/bin/env python
"""Cells benchmark (SaaS runtime). Prints figures; never asserts.

    TESSERA_MODE=saas .venv/bin/python bench/cells/run.py [--records 10000 100000] [--lookups 2000]

Starts a private PostgreSQL (own data folder under /tmp, free port, fsync off) unless
TESSERA_BENCH_DATABASE_URL names a server, and works in databases of its own there: cell `a`, cell `b`
and the directory (dropped afterwards). Each cell is migrated by its own `manage.py` process. Then:

1. Moves: for each size, a workspace with that many records (one collection of five text fields;
   the first 1,000 through the write spine, the rest copies of them made by SQL with their change
   rows, to keep set-up short: the copy's cost is what is measured) is created in cell a and moved to
   cell b by `manage.py workspace_move` as an operator runs it. Figures: the whole command, the
   online copy, and the write freeze (from `moving` until the directory flips and the source lets
   go). Side by side, the baseline: a stop-the-world move, whose freeze would last the online copy
   plus the catch-up.
2. Routing: the directory lookup of a workspace this cell does not hold, uncached (one query to the
   directory database) and cached (in memory, 5 s); a whole misdirected console request (redirect)
   next to a request for an unknown host (the page a cell without a directory would answer); and
   the directory queries a request for a workspace of this cell makes (none).

The model leaves out: cells on separate servers and networks (one PostgreSQL server here; a real
directory is a round trip across regions for an uncached lookup), writers during the move.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench._pg import PrivatePostgres, database_create, database_drop  # noqa: E402

POPULATE = """
import sys
from django.db import connection
from accounts.onboarding import workspace_signup
from records.services import collection_create, record_bulk_upsert
from tenants.runtime import workspace_context
slug, count = sys.argv[1], int(sys.argv[2])
signed = workspace_signup(name=slug, slug=slug, admin_email=f"admin@{slug}.test", admin_password="bench-Horse-9417",
                          plan="enterprise")
with workspace_context(signed.tenant):
    fields = [{"key": k, "type": "text"} for k in ("name", "email", "city", "notes", "code")]
    c = collection_create(actor=signed.admin, name="Customers", slug="customers", fields=fields)
    items = [{"data": {"name": f"customer {n}", "email": f"c{n}@example.com", "city": "Lyon",
                       "notes": "x" * 40, "code": f"C{n:08d}"}} for n in range(1000)]
    record_bulk_upsert(actor=signed.admin, collection=c, items=items)
    with connection.cursor() as cur:
        cur.execute("SELECT max(seq) FROM records_change")
        top = cur.fetchone()[0]
        for k in range(1, count // 1000):
            cur.execute(
                "INSERT INTO records_record (key, id, livemode, collection_id, data, version, seq, created_at, "
                "updated_at, created_by, updated_by, deleted_at) SELECT key || %(s)s, id || %(s)s, livemode, "
                "collection_id, data, version, seq + %(o)s, created_at, updated_at, created_by, updated_by, deleted_at "
                "FROM records_record WHERE seq <= %(top)s",
                {"s": f"-{k}", "o": k * top, "top": top},
            )
            cur.execute(
                "INSERT INTO records_change (seq, livemode, collection_id, record_id, op, version, data, "
                "changed_fields, actor, occurred_at) SELECT seq + %(o)s, livemode, collection_id, record_id || %(s)s, "
                "op, version, data, changed_fields, actor, occurred_at FROM records_change WHERE seq <= %(top)s",
                {"s": f"-{k}", "o": k * top, "top": top},
            )
        cur.execute("UPDATE records_changecounter SET value = (SELECT max(seq) FROM records_change)")
"""


def say(text: str = "") -> None:
    print(text, flush=True)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(pct / 100 * len(ordered) + 0.5) - 1)]


def manage(env: dict, *args: str, script: str | None = None, timeout: float = 1800) -> str:
    cmd = [sys.executable, "manage.py", *args]
    if script is not None:
        cmd = [sys.executable, "-c", "import django, sys; django.setup(); exec(sys.argv.pop(1))", script, *args]
    done = subprocess.run(
        cmd, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--lookups", type=int, default=2000)
    args = parser.parse_args()

    given = os.environ.get("TESSERA_BENCH_DATABASE_URL")
    server = None if given else PrivatePostgres()
    server_url = given or server.start()
    tag = f"tessera_bench_cells_{os.getpid()}_{uuid.uuid4().hex[:4]}"
    names = {"a": f"{tag}_a", "b": f"{tag}_b", "directory": f"{tag}_dir"}
    try:
        urls = {key: database_create(server_url, name) for key, name in names.items()}
        cells = {
            "a": {"region": "eu", "public_url": "http://a.tessera.localhost"},
            "b": {"region": "us", "public_url": "http://b.tessera.localhost"},
        }
        base = {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "TESSERA_MODE": "saas",
            "TESSERA_DIRECTORY_DATABASE_URL": urls["directory"],
            "TESSERA_CELLS": json.dumps(cells),
            "TESSERA_SECRETS_KEY": "bench-cells-secrets-key",
            "TESSERA_LOG_LEVEL": "WARNING",
            "TESSERA_DB_POOL_MAX_SIZE": "0",
        }
        env = {
            cell: {
                **base,
                "TESSERA_DATABASE_URL": urls[cell],
                "TESSERA_CELL": cell,
                "TESSERA_REGION": cells[cell]["region"],
                "TESSERA_BASE_DOMAIN": f"{cell}.tessera.localhost",
                "TESSERA_PUBLIC_URL": cells[cell]["public_url"],
            }
            for cell in ("a", "b")
        }
        say("Cells benchmark")
        say(f"database: {'given server' if given else f'private PostgreSQL on 127.0.0.1:{server.port}, fsync off'}")
        for cell in ("a", "b"):
            manage(env[cell], "migrate_schemas", "--shared", "--noinput", "-v0")
        manage(env["a"], "migrate", "--database=directory", "--noinput", "-v0")

        say("\n1. Moving a workspace from cell a to cell b (manage.py workspace_move)")
        say(
            f"{'records':>9} {'command':>9} {'online copy':>12} {'freeze':>9} {'baseline freeze':>16} {'ratio':>7} rows"
        )
        moved = ""
        for count in args.records:
            slug = f"w{count}"
            manage(env["a"], slug, str(count), script=POPULATE)
            started = time.perf_counter()
            out = manage(env["b"], "workspace_move", slug, "--from", urls["a"])
            command = time.perf_counter() - started
            m = re.search(r"(\d+) rows.*writes frozen ([\d.]+) s \(copy ([\d.]+) s\)", out)
            rows, freeze, copy = int(m[1]), float(m[2]), float(m[3])
            baseline = copy + freeze  # stop-the-world: everything copied inside the freeze
            say(
                f"{count:>9,} {command:>8.2f}s {copy:>11.2f}s {freeze:>8.2f}s {baseline:>15.2f}s "
                f"{baseline / freeze:>6.1f}x {rows:,}"
            )
            per = 10_000 / count
            say(f"{'':>9} per 10k records: online copy {copy * per:.2f} s, freeze {freeze * per:.2f} s")
            moved = slug

        say("\n2. Routing by the directory (in cell a, which no longer holds the moved workspaces)")
        os.environ.update(env["a"])
        import django

        django.setup()
        import logging

        logging.getLogger("django.request").setLevel(logging.ERROR)  # not a line per 404
        from django.db import connections
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        from directory import selectors

        def timed(fn, n: int) -> list[float]:
            out = []
            for _ in range(n):
                t = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t)
            return out

        def line(label: str, values: list[float]) -> None:
            say(
                f"  {label:<48} p50 {statistics.median(values) * 1e3:7.3f} ms   "
                f"p99 {percentile(values, 99) * 1e3:7.3f} ms   (n={len(values)})"
            )

        def uncached():
            selectors._cache.clear()
            selectors.workspace_location_of(moved)

        line("lookup, uncached (one directory query)", timed(uncached, args.lookups))
        line("lookup, cached", timed(lambda: selectors.workspace_location_of(moved), args.lookups))
        client = Client(HTTP_HOST=f"{moved}.a.tessera.localhost")
        unknown = Client(HTTP_HOST="nobody.a.tessera.localhost")
        assert client.get("/").status_code == 302
        redirect, missing = [], []
        for _ in range(max(200, args.lookups // 4)):  # interleaved: both see the same machine load
            redirect += timed(lambda: client.get("/records/"), 1)
            missing += timed(lambda: unknown.get("/records/"), 1)
        line("misdirected request -> redirect (cached lookup)", redirect)
        line("unknown host -> 404 page (baseline)", missing)
        say(
            f"  added by the directory per misdirected request: p50 "
            f"{(statistics.median(redirect) - statistics.median(missing)) * 1e3:+.3f} ms, "
            f"p99 {(percentile(redirect, 99) - percentile(missing, 99)) * 1e3:+.3f} ms"
        )
        with CaptureQueriesContext(connections["directory"]) as queries:
            Client(HTTP_HOST="nobody-else.a.tessera.localhost").get("/")
        say(f"  directory queries of a request for an unknown host: {len(queries)} (then cached 5 s)")
        say("  directory queries of a request for a workspace of this cell: 0 (asked only for hosts it lacks)")
        for alias in connections:
            connections[alias].close()
    finally:
        for name in names.values():
            try:
                database_drop(server_url, name)
            except Exception as exc:
                say(f"(could not drop {name}: {exc})")
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
