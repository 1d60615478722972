#!/usr/bin/env python
"""Analytics at 1,000,000 records: query times of Tessera's query path side by side with the same
aggregation written as one plain SQL query over the JSON `data` column, and the memory of a full CSV
export. Prints figures; never asserts.

    TESSERA_MODE=saas    .venv/bin/python bench/analytics/run.py [--records 1000000] [--runs 5]
    TESSERA_MODE=desktop .venv/bin/python bench/analytics/run.py [--records 1000000] [--runs 5]

1. A database of its own (bench/_pg.py: a private PostgreSQL, or a SQLite file in a temporary data folder),
   one collection seeded as bench/console_records.py seeds it (2,000 records through the write spine, the
   rest through its bench-only fast path: validated rows, the spine's own sequence numbers).
2. Two queries, each --runs times after one warm-up, p50/p99 in ms:
   - group by month of `joined` with count and sum of `amount`, over the records with tier = pro;
   - group by `tier` (a text choice) with count and sum of `amount`.
   The baseline is the same aggregation as ONE plain SQL statement over the JSON column on the same
   database (the ratio printed is Tessera ÷ plain SQL: above 1 means Tessera is slower). With
   --python-runs N (default 3), the former aggregation in Python (analytics.queries._aggregate_python,
   still the reference for awkward values) is timed too.
   Each query is timed twice: first through the records engine alone (one GROUP BY over the JSON column:
   what main did before rollups), then through Tessera's query path once the collection's rollup
   (analytics.rollups) has been built — the build is timed too, as the backfill command runs it.
3. The cost the rollup adds to writes: --write-runs record updates through the spine (record_update,
   one record a time, amount and tier changed) before and after the rollup exists, p50/p99 in ms.
4. A dashboard of 8 tiles (saved queries over the collection) rendered through the full Django stack
   (test client, logged in as the Admin), without and with the dashboard's date-range bar, --runs times:
   before the rollup (the records engine) and after.
5. A CSV export of every record through analytics.exports.records_export: rows/s, the growth of the
   process's resident memory while it streams (sampled every 10,000 rows), every row present, and the
   file read back with the csv module and compared, row by row, with the records in id order.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def say(text: str = "") -> None:
    print(text, flush=True)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def timed(fn, runs: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def plain_sql(saas: bool, collection_id: int, which: str) -> tuple[str, list]:
    if saas:
        where = "collection_id = %s AND livemode AND deleted_at IS NULL"
        if which == "month":
            return (
                "SELECT date_trunc('month', (data->>'joined')::date) AS m, count(*), sum((data->>'amount')::numeric) "
                f"FROM records_record WHERE {where} AND data->>'tier' = 'pro' GROUP BY 1 ORDER BY 1",
                [collection_id],
            )
        return (
            "SELECT data->>'tier', count(*), sum((data->>'amount')::numeric) "
            f"FROM records_record WHERE {where} GROUP BY 1 ORDER BY 1",
            [collection_id],
        )
    where = "collection_id = %s AND livemode = 1 AND deleted_at IS NULL"
    if which == "month":
        return (
            "SELECT substr(json_extract(data, '$.joined'), 1, 7) AS m, count(*), sum(json_extract(data, '$.amount')) "
            f"FROM records_record WHERE {where} AND json_extract(data, '$.tier') = 'pro' GROUP BY 1 ORDER BY 1",
            [collection_id],
        )
    return (
        "SELECT json_extract(data, '$.tier'), count(*), sum(json_extract(data, '$.amount')) "
        f"FROM records_record WHERE {where} GROUP BY 1 ORDER BY 1",
        [collection_id],
    )


def measure_queries(saas: bool, collection, runs: int, python_runs: int, path: str) -> dict:
    from django.db import connection

    from analytics.queries import _aggregate_python, _zone, query_for, query_run

    specs = {
        "month": {
            "collection": collection.slug,
            "filters": {"tier": "pro"},
            "group_by": [{"field": "joined", "bucket": "month"}],
            "aggregates": [{"fn": "count"}, {"fn": "sum", "field": "amount"}],
        },
        "tier": {
            "collection": collection.slug,
            "group_by": [{"field": "tier"}],
            "aggregates": [{"fn": "count"}, {"fn": "sum", "field": "amount"}],
        },
    }
    labels = {
        "month": "group by month of `joined`, count + sum(amount), tier = pro",
        "tier": "group by `tier` (text), count + sum(amount)",
    }
    say(f"\n== Queries through {path} ({runs} runs each after a warm-up; ms)")
    say(f"{'query':<62} {'path':<10} {'p50':>9} {'p99':>9}   ratio p50 (Tessera ÷ plain SQL)")
    figures = {}
    for which, raw in specs.items():
        _c, spec = query_for(raw=raw, livemode=True)
        rows_seen = {}

        def tessera(spec=spec, rows_seen=rows_seen):
            rows_seen["tessera"] = len(query_run(spec=spec, livemode=True, time_zone="UTC").rows)

        sql, params = plain_sql(saas, collection.pk, which)

        def plain(sql=sql, params=params, rows_seen=rows_seen):
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                rows_seen["plain"] = len(cursor.fetchall())

        def python_pass(spec=spec):
            _aggregate_python(collection, spec, None, None, _zone("UTC"))

        t, p = timed(tessera, runs), timed(plain, runs)
        figures[which] = (pct(t, 50), pct(p, 50))
        say(
            f"{labels[which]:<62} {'Tessera':<10} {pct(t, 50):>9.0f} {pct(t, 99):>9.0f}   "
            f"{pct(t, 50) / pct(p, 50):.2f}×"
        )
        say(f"{'':<62} {'plain SQL':<10} {pct(p, 50):>9.0f} {pct(p, 99):>9.0f}   (groups: {rows_seen})")
        if python_runs:
            r = timed(python_pass, python_runs)
            say(
                f"{'':<62} {'Python':<10} {pct(r, 50):>9.0f} {pct(r, 99):>9.0f}   {pct(r, 50) / pct(p, 50):.2f}×  "
                "(the pass over the records that SQL replaced, kept as the reference)"
            )
    return figures


def rollup_build_timed(collection) -> None:
    from analytics.rollups import rollup_build

    say("\n== Rollup build (the backfill: manage.py analytics_rollups_build)")
    started = time.perf_counter()
    rollup = rollup_build(collection=collection, time_zone="UTC")
    seconds = time.perf_counter() - started
    say(f"{rollup.records:,} records → {rollup.cells.count():,} cell rows in {seconds:.1f} s ({rollup.status})")


def measure_writes(collection, admin, runs: int, label: str) -> float:
    from records.models import Record
    from records.services import record_update

    records = list(Record.objects.filter(collection=collection, deleted_at=None).order_by("-id")[: runs + 1])
    tiers = ["free", "team", "pro", "enterprise"]

    def one(i=[0]):  # noqa: B006 - a counter across calls
        record = records[i[0] % len(records)]
        i[0] += 1
        record.refresh_from_db()
        data = {**record.data, "amount": round(record.data.get("amount", 0) + 1.5, 2), "tier": tiers[i[0] % 4]}
        record_update(actor=admin, record=record, data=data)

    t = timed(one, runs)
    say(f"record_update through the spine, {label:<40} p50 {pct(t, 50):7.1f} ms   p99 {pct(t, 99):7.1f} ms")
    return pct(t, 50)


DASHBOARD_TILES = [
    (
        "Customers by month (pro)",
        {
            "filters": {"tier": "pro"},
            "group_by": [{"field": "joined", "bucket": "month"}],
            "aggregates": [{"fn": "count"}, {"fn": "sum", "field": "amount"}],
        },
        "line",
    ),
    ("By tier", {"group_by": ["tier"], "aggregates": [{"fn": "count"}, {"fn": "sum", "field": "amount"}]}, "bar"),
    ("Active", {"group_by": ["active"], "aggregates": [{"fn": "count"}]}, "pie"),
    ("Per year", {"group_by": [{"field": "joined", "bucket": "year"}], "aggregates": [{"fn": "count"}]}, "bar"),
    (
        "Revenue per quarter and tier",
        {
            "group_by": [{"field": "joined", "bucket": "quarter"}, {"field": "tier"}],
            "aggregates": [{"fn": "sum", "field": "amount"}],
        },
        "table",
    ),
    ("Average score by tier", {"group_by": ["tier"], "aggregates": [{"fn": "avg", "field": "score"}]}, "bar"),
    ("Total revenue", {"date_field": "joined", "aggregates": [{"fn": "sum", "field": "amount"}]}, "number"),
    (
        "Enterprise per week",
        {
            "filters": {"tier": "enterprise"},
            "group_by": [{"field": "joined", "bucket": "week"}],
            "aggregates": [{"fn": "count"}],
            "limit": 10000,
        },
        "line",
    ),
]


def dashboard_make(collection, admin):
    from analytics.services import dashboard_create, saved_query_create, tile_add

    dashboard = dashboard_create(actor=admin, name="Business", shared=True)
    for name, spec, chart in DASHBOARD_TILES:
        query = saved_query_create(actor=admin, name=name, spec={"collection": collection.slug, **spec}, chart=chart)
        tile_add(actor=admin, dashboard=dashboard, query=query)
    return dashboard


def measure_dashboard(saas: bool, tenant, admin, dashboard, runs: int, label: str) -> None:
    from django.test import Client

    client = Client(HTTP_HOST=tenant.host() if saas else "127.0.0.1")
    client.force_login(admin, backend="accounts.backends.EmailPasswordBackend")
    for suffix, what in (("", "no bar"), ("?date_from=2015-01-01&date_to=2022-12-31", "date range 2015–2022")):
        url = f"/analytics/dashboards/{dashboard.pk}/{suffix}"

        def render(url=url):
            response = client.get(url)
            assert response.status_code == 200, response.status_code

        t = timed(render, runs)
        say(f"dashboard of 8 tiles, {what:<22} {label:<28} p50 {pct(t, 50):7.0f} ms   p99 {pct(t, 99):7.0f} ms")


def measure_export(collection, admin, total: int) -> None:
    from analytics.exports import records_export
    from records.models import Record

    say("\n== CSV export of every record (analytics.exports.records_export)")
    folder = tempfile.mkdtemp(prefix="tessera-bench-export.")
    path = Path(folder, "export.csv")
    try:
        start_rss = rss_mb()
        peak = start_rss
        started = time.perf_counter()
        size = 0
        with open(path, "wb") as f:
            for n, chunk in enumerate(records_export(actor=admin, collection=collection, filters={}, fmt="csv")):
                f.write(chunk)
                size += len(chunk)
                if n % 10 == 0:
                    peak = max(peak, rss_mb())
        seconds = time.perf_counter() - started
        peak = max(peak, rss_mb())
        say(f"{total:,} records → {size / 2**20:.0f} MB in {seconds:.1f} s = {total / seconds:,.0f} rows/s")
        say(f"resident memory: {start_rss:.0f} MB at the start, peak {peak:.0f} MB: growth {peak - start_rss:.1f} MB")

        keys = [f["key"] for f in collection.fields]
        checked = mismatched = 0
        db_rows = Record.objects.filter(collection=collection, deleted_at=None).order_by("id").values_list("id", "data")
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            assert header[0] == "id" and header[1 : 1 + len(keys)] == keys, header
            for (record_id, data), row in zip(db_rows.iterator(chunk_size=5000), reader, strict=True):
                checked += 1
                want = [record_id, *(_cell(data.get(k)) for k in keys)]
                if row[: 1 + len(keys)] != want:
                    mismatched += 1
        say(
            f"read back: {checked:,} rows, {mismatched} differing from the database "
            f"(every row present: {checked == total})"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _cell(value) -> str:
    from analytics.exports import csv_cell

    return csv_cell(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--spine-records", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-export", action="store_true")
    parser.add_argument("--write-runs", type=int, default=50, help="record updates timed before/after the rollup")
    parser.add_argument(
        "--python-runs", type=int, default=3, help="runs of the former Python aggregation, side by side (0: none)"
    )
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    mode = os.environ.setdefault("TESSERA_MODE", "desktop")
    saas = mode == "saas"
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("TESSERA_LOG_LEVEL", "WARNING")
    os.environ["TESSERA_ANALYTICS_ROLLUP_MIN_RECORDS"] = "0"  # the bench builds the rollup itself, when it says
    from bench._pg import bench_database

    with contextlib.ExitStack() as stack:
        if saas:
            db = stack.enter_context(bench_database(server_settings="-c shared_buffers=512MB"))
            os.environ["TESSERA_DATABASE_URL"], note = db.url, db.note
        else:
            data_dir = tempfile.mkdtemp(prefix="tessera-bench-analytics.")
            stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
            os.environ["TESSERA_DATA_DIR"] = data_dir
            note = f"database: SQLite (WAL) in {data_dir}"

        import django

        django.setup()
        from django.db import connection

        from bench.console_records import FIELDS, machine, seed, workspace_make
        from records.services import collection_create
        from tenants.runtime import workspace_context

        machine(note)
        tenant, admin = workspace_make(saas)
        with workspace_context(tenant):
            collection = collection_create(actor=admin, name="People", slug="people", fields=FIELDS)
            say(f"\n== Seeding {args.records:,} records ({mode})")
            seed(collection, admin, args.records, args.spine_records)
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE" if saas else "ANALYZE")
            dashboard = dashboard_make(collection, admin)
            before = measure_queries(saas, collection, args.runs, args.python_runs, "the records engine alone")
            say("\n== Writes and the dashboard, before the rollup")
            w0 = measure_writes(collection, admin, args.write_runs, "no rollup")
            measure_dashboard(saas, tenant, admin, dashboard, args.runs, "(records engine)")
            rollup_build_timed(collection)
            after = measure_queries(saas, collection, args.runs, 0, "Tessera's query path (rollup)")
            say("\n== Writes and the dashboard, with the rollup")
            w1 = measure_writes(collection, admin, args.write_runs, "rollup kept current")
            say(f"write cost of the rollup: {w1 / w0:.2f}× the update without it")
            measure_dashboard(saas, tenant, admin, dashboard, args.runs, "(rollup)")
            say("\n== Summary (p50, ms; ratio = plain SQL ÷ Tessera: above 1 means Tessera is faster)")
            for which in after:
                (e, p0), (r, p1) = before[which], after[which]
                say(
                    f"{which:<6} records engine {e:8.0f} (plain {p0:8.0f}: {p0 / e:5.2f}×)   "
                    f"rollup {r:8.1f} (plain {p1:8.0f}: {p1 / r:6.1f}×)"
                )
            say(f"load average now: {os.getloadavg()} (shared machine: 2 cores, other sessions running)")
            if not args.skip_export:
                measure_export(collection, admin, args.records)
        connection.close()


if __name__ == "__main__":
    main()
