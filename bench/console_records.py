#!/usr/bin/env python
"""Records console at 100,000 records: page render times of the records table. Prints figures; never asserts.

    TESSERA_MODE=saas    .venv/bin/python bench/console_records.py [--records 100000] [--runs 40]
    TESSERA_MODE=desktop .venv/bin/python bench/console_records.py [--records 100000] [--runs 40]

1. A database of its own: SaaS starts a private PostgreSQL (own folder under /tmp, free port, fsync off)
   unless TESSERA_BENCH_DATABASE_URL names a server (it then creates and drops a database of its own);
   desktop uses a SQLite file in a temporary data folder. Nothing else is touched.
2. Seeds one collection (8 fields of 7 types, one unique) with --records records:
   - the first --spine-records (default 2,000) through the write spine (records.services.record_bulk_upsert,
     batches of 500), timed, so the spine's own seeding rate is part of the output;
   - the rest through a bench-only fast path: every row validated with the collection's JSON Schema
     (records.fields.data_errors), sequence numbers reserved under the spine's own counter lock
     (records.services._seq_lock/_seq_next), then bulk inserts of Record, Change and RecordUniqueValue rows.
     Why: the spine writes one record at a time (about 19 queries each, audit hash chain included), which
     would make seeding 100,000 rows take tens of minutes; the benchmark measures reads, and the fast
     path leaves rows of exactly the shape the spine writes (data, version, seq, change feed, unique
     values). It skips audit events and webhook/sync hooks, so it exists here only. --seed-via-spine
     seeds everything through the spine instead.
3. Renders the table page through the full Django stack (middleware, session, view, template) with the
   test client, logged in as the Admin: first page, a deep page (keyset cursor at the middle and the last
   page), sorted pages (first and deep), filtered pages, searches, and the collections list with counts.
   Each is rendered --runs times after 3 warm-ups; p50/p99/max in milliseconds.
4. A streamed CSV export of every record (rows per second) and the EXPLAIN of the main queries (SaaS).
5. Editing in the table (records.views.grid): the inline cell edit round trip (an htmx POST of one cell
   through the spine, answered with the row) p50/p99, against the full record form's save as the
   baseline side by side; and a bulk delete of 1,000 selected records (one request), against deleting
   the same number one by one through records.services.record_delete (what the console offered before);
   then a bulk delete of 5,000 (a background job): the request's time to accept it, and the worker's run.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench-Correct-horse-9417"
TIERS = ["free", "team", "pro", "enterprise"]
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
]


def say(text: str = "") -> None:
    print(text, flush=True)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


# --- the workspace and its records ------------------------------------------------------------------


def workspace_make(saas: bool):
    from django.core.management import call_command

    from accounts.models import User
    from accounts.services import user_create
    from rbac.roles import Role
    from tenants.runtime import workspace_context

    if saas:
        from accounts.onboarding import workspace_signup
        from bench._pg import shared_migrate

        shared_migrate()
        tenant = workspace_signup(
            name="Bench", slug="bench", admin_email="admin@bench.test", admin_password=PASSWORD
        ).tenant
    else:
        from tenants.services import tenant_single_ensure

        call_command("migrate", interactive=False, verbosity=0)
        tenant = tenant_single_ensure(name="Bench")
    with workspace_context(tenant):
        admin = User.objects.filter(email="admin@bench.test").first() or user_create(
            email="admin@bench.test", password=PASSWORD, role=Role.ADMIN
        )
    return tenant, admin


FIELDS = [
    {"key": "name", "label": "Name", "type": "text", "required": True},
    {"key": "email", "label": "E-mail", "type": "email", "unique": True},
    {"key": "tier", "label": "Tier", "type": "choice", "choices": TIERS},
    {"key": "score", "label": "Score", "type": "integer"},
    {"key": "amount", "label": "Amount", "type": "number"},
    {"key": "joined", "label": "Joined", "type": "date"},
    {"key": "active", "label": "Active", "type": "boolean"},
    {"key": "notes", "label": "Notes", "type": "long_text"},
]


def row(i: int, rng: random.Random) -> dict:
    data = {
        "name": f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()} {i}",
        "email": f"person{i}@example.test",
        "tier": rng.choice(TIERS),
        "amount": round(rng.uniform(0, 10_000), 2),
        "joined": f"20{rng.randint(10, 25)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "active": rng.random() < 0.7,
        "notes": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))),
    }
    if rng.random() < 0.95:  # some records without a score: missing values sort last
        data["score"] = rng.randint(0, 1000)
    if i % 5000 == 17:
        data["notes"] += " zanzibar"  # a rare word for the search
    return data


def seed(collection, admin, total: int, spine_rows: int) -> None:
    from records.services import record_bulk_upsert

    rng = random.Random(7)
    spine_rows = min(spine_rows, total)
    started = time.perf_counter()
    for start in range(0, spine_rows, 500):
        items = [{"data": row(i, rng)} for i in range(start, min(start + 500, spine_rows))]
        results = record_bulk_upsert(actor=admin, collection=collection, items=items)
        assert all(r.status == "created" for r in results), [r.error for r in results if r.error][:3]
    seconds = time.perf_counter() - started
    if spine_rows:
        per = seconds / spine_rows
        say(
            f"seeded {spine_rows:,} records through the spine (record_bulk_upsert, batches of 500): "
            f"{seconds:.1f} s = {per * 1000:.2f} ms/record → 100,000 would take ≈ {per * 100_000 / 60:.0f} min"
        )
    rest = total - spine_rows
    if rest:
        started = time.perf_counter()
        _seed_fast(collection, admin, range(spine_rows, total), rng)
        seconds = time.perf_counter() - started
        say(f"seeded {rest:,} more through the bench-only fast path: {seconds:.1f} s")


def _seed_fast(collection, admin, indexes: range, rng: random.Random) -> None:
    """Bench only: rows of the spine's shape, validated, bulk-inserted (no audit events or hooks)."""
    from django.db import transaction
    from django.utils import timezone

    from core.actors import Actor
    from records.fields import data_errors
    from records.models import Change, Record, RecordUniqueValue, record_id_new
    from records.services import _seq_lock, _seq_next, _value_hash

    stamp = Actor.of(admin).stamp()
    unique = [f for f in collection.fields if f["unique"]]
    for start in range(indexes.start, indexes.stop, 5000):
        batch = [row(i, rng) for i in range(start, min(start + 5000, indexes.stop))]
        for data in batch:
            errors = data_errors(collection.fields, data, cache_key=collection.cache_key)
            assert not errors, errors
        with transaction.atomic():
            _seq_lock()
            first = _seq_next(len(batch))
            now = timezone.now()
            records = [
                Record(
                    id=record_id_new(),
                    livemode=True,
                    collection=collection,
                    data=data,
                    version=1,
                    seq=first + n,
                    created_at=now,
                    updated_at=now,
                    created_by=stamp,
                    updated_by=stamp,
                )
                for n, data in enumerate(batch)
            ]
            Record.objects.bulk_create(records, batch_size=1000)
            Change.objects.bulk_create(
                [
                    Change(
                        seq=r.seq,
                        livemode=True,
                        collection=collection,
                        record_id=r.id,
                        op="created",
                        version=1,
                        data=r.data,
                        changed_fields=sorted(r.data),
                        actor=stamp,
                        occurred_at=now,
                    )
                    for r in records
                ],
                batch_size=1000,
            )
            RecordUniqueValue.objects.bulk_create(
                [
                    RecordUniqueValue(
                        collection=collection, field_id=f["id"], value_hash=_value_hash(r.data[f["key"]]), record=r
                    )
                    for r in records
                    for f in unique
                    if r.data.get(f["key"]) is not None
                ],
                batch_size=1000,
            )


# --- measuring ---------------------------------------------------------------------------------------


def timed(client, url: str, runs: int, expect: int = 200) -> tuple[list[float], list[float]]:
    """Wall-clock and this process's CPU milliseconds per render (CPU time leaves out waiting for a
    busy machine's scheduler, and the database server's own work)."""
    for _ in range(3):
        response = client.get(url)
        assert response.status_code == expect, (url, response.status_code, response.content[:500])
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        response = client.get(url)
        content = response.content
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
        assert response.status_code == expect and content
    return wall, cpu


def line(label: str, values: tuple[list[float], list[float]], note: str = "") -> None:
    wall, cpu = values
    say(
        f"{label:40} p50 {statistics.median(wall):6.1f} ms  p99 {percentile(wall, 99):6.1f} ms  "
        f"max {max(wall):6.1f} ms | cpu p50 {statistics.median(cpu):5.1f} ms{('   ' + note) if note else ''}"
    )


def explain(sql_label: str, sql: str) -> None:
    """The plan of a query a page ran (PostgreSQL: EXPLAIN ANALYZE; SQLite: EXPLAIN QUERY PLAN)."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS OFF, TIMING OFF, SUMMARY ON) " + sql)
            plan = [row[0] for row in cursor.fetchall()]
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql)
            plan = [row[-1] for row in cursor.fetchall()]
    say(f"  EXPLAIN {sql_label}:")
    for line_ in plan[:8]:
        say(f"    {line_}")


def measure(tenant, admin, collection, runs: int, saas: bool) -> None:
    from django.test import Client
    from django.utils.http import urlencode

    from records.models import Record
    from records.query import cursor_encode, table_query_parse
    from records.selectors import record_list
    from tenants.runtime import workspace_context

    host = tenant.host() if saas else "127.0.0.1"
    client = Client(HTTP_HOST=host)
    with workspace_context(tenant):
        client.force_login(admin, backend="accounts.backends.EmailPasswordBackend")
        live = record_list(collection=collection)
        total = live.count()
        mid = live.order_by("-id").values_list("id", flat=True)[total // 2]
        by_score = live.filter(data__score__isnull=False).order_by("data__score", "id")
        mid_score = by_score.values_list("data__score", "id")[total // 2]
        rare = Record.objects.filter(collection=collection, data__notes__icontains="zanzibar").count()
    base = f"/records/{collection.slug}/"
    cases = [
        ("first page (newest first)", base, ""),
        ("deep page (cursor at record 50,000)", base + "?" + urlencode({"after": cursor_encode(mid, mid)}), ""),
        ("last page", base + "?before=end", ""),
        ("sorted by score, first page", base + "?sort=score", ""),
        (
            "sorted by score, deep page",
            base + "?" + urlencode({"sort": "score", "after": cursor_encode(mid_score[0], mid_score[1])}),
            "",
        ),
        ("sorted by name descending", base + "?sort=-name", ""),
        ("sorted by updated", base + "?sort=updated_at", ""),
        ("filtered tier=pro", base + "?tier=pro", ""),
        ("filtered tier=pro & score ≥ 900", base + "?tier=pro&score__gte=900", ""),
        ("filtered score ≥ 990, sorted by amount", base + "?score__gte=990&sort=-amount", ""),
        ("filtered name contains 'kilo 4'", base + "?" + urlencode({"name__contains": "kilo 4"}), ""),
        ("search 'zanzibar' (rare)", base + "?q=zanzibar", f"{rare} matches"),
        ("search 'person4242@' (one)", base + "?" + urlencode({"q": "person4242@"}), ""),
        ("search 'kilo' (common)", base + "?q=kilo", ""),
        ("100 rows per page", base + "?per_page=100", ""),
        ("collections list (with counts)", "/records/", ""),
        ("record form (edit one record)", f"{base}r/{mid}/", ""),
    ]
    if saas:
        say("\n== The first sort by a field builds that field's sort index (records.sort_indexes, once per field)")
    else:
        say("\n== First sorted pages (SQLite has no sort indexes: every sorted page sorts the collection)")
    for key in ("score", "amount"):
        started = time.perf_counter()
        assert client.get(f"{base}?sort={key}").status_code == 200
        built = ", index build included" if saas else ""
        say(f"first page sorted by {key}{built}: {(time.perf_counter() - started) * 1000:,.0f} ms")

    say(f"\n== Page render times over {total:,} live records ({runs} runs each, after 3 warm-ups)")
    say(f"(load average now: {os.getloadavg()[0]:.1f} on {len(os.sched_getaffinity(0))} CPUs)")
    for label, url, note in cases:
        line(label, timed(client, url, runs), note)

    say("\n== Export")
    for fmt in ("csv", "json"):
        started = time.perf_counter()
        response = client.get(f"/records/{collection.slug}/export.{fmt}")
        size = sum(len(chunk) for chunk in response.streaming_content)
        seconds = time.perf_counter() - started
        say(
            f"{fmt.upper()} export of all {total:,} records (streamed): {seconds:.2f} s, "
            f"{total / seconds:,.0f} rows/s, {size / 1e6:.1f} MB"
        )
    with workspace_context(tenant):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from records.query import record_table_page

        say("")
        for label, params in [("first page", {}), ("sorted by score", {"sort": "score"}), ("search", {"q": "kilo"})]:
            with CaptureQueriesContext(connection) as captured:
                record_table_page(collection, table_query_parse(collection, params))
            page_queries = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("SELECT")]
            explain(label, page_queries[0])


def measure_editing(tenant, admin, collection, runs: int, saas: bool) -> None:
    from django.test import Client

    from records.models import Record
    from records.services import record_delete
    from tenants.runtime import workspace_context

    host = tenant.host() if saas else "127.0.0.1"
    client = Client(HTTP_HOST=host)
    hx = {"HTTP_HX_REQUEST": "true"}
    with workspace_context(tenant):
        client.force_login(admin, backend="accounts.backends.EmailPasswordBackend")
        target = Record.objects.filter(collection=collection, deleted_at=None).order_by("id").first()

    def version() -> int:
        with workspace_context(tenant):
            return Record.objects.get(pk=target.pk).version

    say(f"\n== Editing in the table ({runs} saves each, after 3 warm-ups)")
    cell_url = f"/records/{collection.slug}/r/{target.id}/cell/score/"
    form_url = f"/records/{collection.slug}/r/{target.id}/"
    inline, full = ([], []), ([], [])
    for i in range(runs + 3):
        v = version()
        started, started_cpu = time.perf_counter(), time.process_time()
        response = client.post(cell_url, {"f-score": str(i), "base_version": str(v)}, **hx)
        wall, cpu = (time.perf_counter() - started) * 1000, (time.process_time() - started_cpu) * 1000
        assert response.status_code == 200, response.content[:300]
        if i >= 3:
            inline[0].append(wall)
            inline[1].append(cpu)
        with workspace_context(tenant):
            data = Record.objects.get(pk=target.pk).data
        v = version()
        fields = {f"f-{k}": v_ for k, v_ in data.items() if not isinstance(v_, (dict, list, bool))}
        fields.update({"f-score": str(i + 10_000), "base_version": str(v)})
        started, started_cpu = time.perf_counter(), time.process_time()
        response = client.post(form_url, fields)
        wall, cpu = (time.perf_counter() - started) * 1000, (time.process_time() - started_cpu) * 1000
        assert response.status_code == 302, response.content[:300]
        if i >= 3:
            full[0].append(wall)
            full[1].append(cpu)
    line("inline cell edit (htmx, answers the row)", inline)
    line("baseline: full record form save (+redirect)", full)
    say(f"ratio inline/full p50: {statistics.median(inline[0]) / statistics.median(full[0]):.2f}")

    # Two collections of 1,000 records each (the same rows, the bench's fast path): one deleted in bulk
    # ("select all matching" + Delete, one request), the other one by one through the spine.
    from records.services import collection_create

    rng = random.Random(11)
    with workspace_context(tenant):
        bulk_c = collection_create(actor=admin, name="Bulk", slug="bulk", fields=FIELDS)
        single_c = collection_create(actor=admin, name="Single", slug="single", fields=FIELDS)
        _seed_fast(bulk_c, admin, range(1000), rng)
        _seed_fast(single_c, admin, range(1000), rng)
    started, started_cpu = time.perf_counter(), time.process_time()
    response = client.post("/records/bulk/bulk/", {"action": "delete", "scope": "matching", "query": ""})
    bulk_s, bulk_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    assert response.status_code == 302
    with workspace_context(tenant):
        left = Record.objects.filter(collection=bulk_c, deleted_at=None).count()
        assert left == 0, left
        started, started_cpu = time.perf_counter(), time.process_time()
        for record in Record.objects.filter(collection=single_c):
            record_delete(actor=admin, record=record)
        single_s, single_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    say(
        f"bulk delete of 1,000 records (select all matching, one request): {bulk_s:.2f} s "
        f"({1000 / bulk_s:,.0f}/s) | cpu {bulk_cpu:.2f} s"
    )
    say(f"baseline: 1,000 deletes one by one (record_delete): {single_s:.2f} s | cpu {single_cpu:.2f} s")
    say(f"ratio bulk/one-by-one: {bulk_s / single_s:.2f}")

    # A selection too big for one request (more than records.services.BULK_INLINE): the request only
    # accepts the job; the worker's task (run here, in this process) deletes it 500 per transaction.
    from records.models import BulkJob
    from records.services import records_bulk_job_run

    with workspace_context(tenant):
        job_c = collection_create(actor=admin, name="Job", slug="job", fields=FIELDS)
        _seed_fast(job_c, admin, range(5000), rng)
    started = time.perf_counter()
    response = client.post("/records/job/bulk/", {"action": "delete", "scope": "matching", "query": ""})
    accept_s = time.perf_counter() - started
    assert response.status_code == 302
    with workspace_context(tenant):
        job = BulkJob.objects.get(collection=job_c)
        started, started_cpu = time.perf_counter(), time.process_time()
        assert records_bulk_job_run(job_id=job.pk) is True
        job_s, job_cpu = time.perf_counter() - started, time.process_time() - started_cpu
        assert not Record.objects.filter(collection=job_c, deleted_at=None).exists()
    say(f"background bulk delete of 5,000: request accepts it in {accept_s * 1000:.0f} ms")
    say(f"  the worker's run: {job_s:.2f} s ({5000 / job_s:,.0f}/s) | cpu {job_cpu:.2f} s")
    say(f"ratio per record, worker/inline request: {(job_s / 5000) / (bulk_s / 1000):.2f}")


def machine(note: str) -> None:
    from django.db import connection

    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model)
    except OSError:
        pass
    version = connection.vendor
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            version = "PostgreSQL " + cursor.fetchone()[0]
        else:
            cursor.execute("select sqlite_version()")
            version = "SQLite " + cursor.fetchone()[0]
    import django

    say("== Machine")
    say(f"nproc {len(os.sched_getaffinity(0))}, CPU: {model}; load average now: {os.getloadavg()}")
    say(f"Python {platform.python_version()}, Django {django.get_version()}, {version}")
    say(note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--spine-records", type=int, default=2000, help="seeded through the spine (timed)")
    parser.add_argument("--seed-via-spine", action="store_true", help="seed every record through the spine")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--editing-only", action="store_true", help="only the editing figures (section 5)")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the private server is still stopped
    mode = os.environ.setdefault("TESSERA_MODE", "desktop")
    saas = mode == "saas"
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("TESSERA_LOG_LEVEL", "WARNING")
    from bench._pg import bench_database

    with contextlib.ExitStack() as stack:
        if saas:
            # shared_buffers: the 100,000 records stay in memory, as on a production server.
            db = stack.enter_context(bench_database(server_settings="-c shared_buffers=256MB"))
            os.environ["TESSERA_DATABASE_URL"], note = db.url, db.note
        else:
            data_dir = tempfile.mkdtemp(prefix="tessera-bench-desktop.")
            stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
            os.environ["TESSERA_DATA_DIR"] = data_dir
            note = f"database: SQLite (WAL) in {data_dir}"

        import django

        django.setup()
        from django.db import connection

        from records.services import collection_create
        from tenants.runtime import workspace_context

        machine(note)
        tenant, admin = workspace_make(saas)
        with workspace_context(tenant):
            collection = collection_create(actor=admin, name="People", slug="people", fields=FIELDS)
            say(f"\n== Seeding {args.records:,} records ({mode})")
            seed(collection, admin, args.records, args.records if args.seed_via_spine else args.spine_records)
            with connection.cursor() as cursor:  # as autovacuum would have by now
                cursor.execute("VACUUM ANALYZE" if saas else "ANALYZE")
        if not args.editing_only:
            measure(tenant, admin, collection, args.runs, saas)
        measure_editing(tenant, admin, collection, args.runs, saas)
        connection.close()


if __name__ == "__main__":
    main()
