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
3. A CSV export of every record through analytics.exports.records_export: rows/s, the growth of the
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


def measure_queries(saas: bool, collection, runs: int, python_runs: int) -> None:
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
    say(f"\n== Queries ({runs} runs each after a warm-up; ms)")
    say(f"{'query':<62} {'path':<10} {'p50':>9} {'p99':>9}   ratio p50 (Tessera ÷ plain SQL)")
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
            measure_queries(saas, collection, args.runs, args.python_runs)
            if not args.skip_export:
                measure_export(collection, admin, args.records)
        connection.close()


if __name__ == "__main__":
    main()
