#!/usr/bin/env python
"""Find and erase one data subject in a big workspace, while the API keeps serving reads. Prints figures.

    TESSERA_MODE=saas    .venv/bin/python bench/compliance/run.py [--records 1000000] [--deliveries 100000]
    TESSERA_MODE=desktop .venv/bin/python bench/compliance/run.py [--records 1000000] [--deliveries 100000]

1. A database of its own (bench/_pg.py: a private PostgreSQL, or a SQLite file in a temporary folder).
2. Seeds a customers collection (e-mail marked as identifying the subject) with --records records and
   their change feed through a bench-only fast path (validated rows of the spine's shape, bulk inserted:
   the spine writes one record at a time, which would take hours at this size), then --deliveries webhook
   events with one delivery and one logged attempt each, about those records. The subject's own records
   (--subject-records, in two collections) are written through the spine, so they have audit events,
   webhook events and deliveries like any record.
3. Baseline: --readers threads read the API (a page of records, one record by id) for --seconds;
   p50/p99 of those reads.
4. The subject's access package (privacy.package.package_chunks: the ZIP an access request's link
   streams), timed and sized, with the process's peak resident memory above where the step started.
5. The same readers run while the subject is found (privacy.selectors.subject_records_find, timed alone
   first) and erased (privacy.services.subject_request_erase, the whole transaction); p50/p99 of the reads
   meanwhile, as a ratio of the baseline's. Target: find and erase < 10 s.

Each step prints the load average (the machine is shared: read figures with it).
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
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "bench-Correct-horse-9417"
SUBJECT = "ada.subject@example.org"


def say(text: str = "") -> None:
    print(text, flush=True)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)] if ordered else float("nan")


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} on {len(os.sched_getaffinity(0))} CPUs"


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class PeakMemory:
    """The process's peak resident memory during a block, above what it was when the block began (MB),
    sampled every 20 ms (the readers' threads share the process: their share is in the baseline)."""

    def __enter__(self):
        self.start = self.peak = rss_mb()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop.wait(0.02):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, rss_mb())

    @property
    def grew(self) -> float:
        return self.peak - self.start


def workspace_make(saas: bool):
    from django.core.management import call_command

    from accounts.models import User
    from tenants.runtime import workspace_context

    if saas:
        from accounts.onboarding import workspace_signup
        from bench._pg import shared_migrate

        shared_migrate()
        tenant = workspace_signup(
            name="Bench", slug="bench", admin_email="admin@bench.test", admin_password=PASSWORD
        ).tenant
    else:
        from accounts.services import user_create
        from rbac.roles import Role
        from tenants.services import tenant_single_ensure

        call_command("migrate", interactive=False, verbosity=0)
        tenant = tenant_single_ensure(name="Bench")
        with workspace_context(tenant):
            user_create(email="admin@bench.test", password=PASSWORD, role=Role.ADMIN)
    with workspace_context(tenant):
        admin = User.objects.get(email="admin@bench.test")
    return tenant, admin


FIELDS = [
    {"key": "name", "type": "text", "required": True},
    {"key": "email", "type": "email"},
    {"key": "phone", "type": "text"},
    {"key": "tier", "type": "choice", "choices": ["free", "pro"]},
]


def seed(customers, total: int, deliveries: int, admin) -> list[str]:
    """Bench only: records and webhook traffic of the spine's shape, bulk inserted (no audit events)."""
    from django.db import transaction
    from django.utils import timezone

    from core.actors import Actor
    from privacy.models import SubjectKey
    from privacy.subject_index import identifier_hash
    from records.events import record_event_body
    from records.fields import data_errors
    from records.models import Change, ChangeCounter, Record, record_id_new
    from records.services import _seq_lock, _seq_next
    from webhooks.models import Attempt, Delivery, Endpoint, Event

    rng = random.Random(7)
    stamp = Actor.of(admin).stamp()
    ids: list[str] = []
    started = time.perf_counter()
    for start in range(0, total, 10_000):
        batch = [
            {"name": f"Person {i}", "email": f"person{i}@example.test", "phone": f"555-{i:07d}", "tier": "free"}
            for i in range(start, min(start + 10_000, total))
        ]
        assert not data_errors(customers.fields, batch[0], cache_key=customers.cache_key)
        with transaction.atomic():
            _seq_lock()
            first = _seq_next(len(batch))
            now = timezone.now()
            records = [
                Record(
                    id=record_id_new(),
                    livemode=True,
                    collection=customers,
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
            Record.objects.bulk_create(records, batch_size=2000)
            Change.objects.bulk_create(
                [
                    Change(
                        seq=r.seq,
                        collection=customers,
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
                batch_size=2000,
            )
            SubjectKey.objects.bulk_create(  # as the spine's subscriber indexes each record's e-mail
                [
                    SubjectKey(collection=customers, record_key=r.id, value_hash=identifier_hash(r.data["email"]))
                    for r in records
                ],
                batch_size=2000,
            )
        ids.extend(r.id for r in records)
    say(f"seeded {total:,} records and their change feed: {time.perf_counter() - started:.0f} s ({load()})")
    stream = ChangeCounter.objects.get(pk=1).stream
    endpoint = Endpoint.objects.create(url="https://partner.example.com/hook", event_types=["record.*"])
    started = time.perf_counter()
    now = timezone.now()
    for start in range(0, deliveries, 10_000):
        events = []
        for n in range(start, min(start + 10_000, deliveries)):
            rid = ids[rng.randrange(len(ids))]
            body = record_event_body(
                stream=stream,
                seq=10**12 + n,
                op="updated",
                livemode=True,
                collection_slug="customers",
                record_id=rid,
                version=2,
                data={"name": f"Person {n}", "email": f"p{n}@example.test"},
                changed_fields=["name"],
                occurred_at=now,
                created_at=now,
            )
            events.append(Event(id=body["id"], type="record.updated", payload=body, created_at=now))
        with transaction.atomic():
            Event.objects.bulk_create(events, batch_size=2000)
            made = Delivery.objects.bulk_create(
                [
                    Delivery(event=e, endpoint=endpoint, status="succeeded", attempts=1, completed_at=now)
                    for e in events
                ],
                batch_size=2000,
            )
            if any(d.pk is None for d in made):
                made = list(Delivery.objects.filter(event__in=events))
            Attempt.objects.bulk_create(
                [
                    Attempt(delivery=d, number=1, request_url=endpoint.url, request_body="{}", response_status=200)
                    for d in made
                ],
                batch_size=2000,
            )
    say(f"seeded {deliveries:,} webhook events, deliveries and attempts: {time.perf_counter() - started:.0f} s")
    return ids


class Readers:
    """Threads reading the API as a partner would, each with its own connection; latencies in ms."""

    def __init__(self, tenant, host: str, raw_key: str, ids: list[str], count: int):
        self.tenant, self.host, self.raw_key, self.ids, self.count = tenant, host, raw_key, ids, count
        self.stop = threading.Event()
        self.samples: list[float] = []
        self.errors = 0
        self.threads: list[threading.Thread] = []
        self.warm = threading.Semaphore(0)

    def _run(self, seed: int) -> None:
        from django.db import connection
        from django.test import Client

        rng = random.Random(seed)
        client = Client(HTTP_HOST=self.host, HTTP_AUTHORIZATION=f"Bearer {self.raw_key}")
        for _ in range(3):  # warm-up, not measured: the first requests load the URLconf and the API's modules
            client.get("/api/v1/collections/customers/records?limit=20")
        self.warm.release()
        while not self.stop.is_set():
            url = (
                "/api/v1/collections/customers/records?limit=20"
                if rng.random() < 0.5
                else f"/api/v1/collections/customers/records/{self.ids[rng.randrange(len(self.ids))]}"
            )
            started = time.perf_counter()
            response = client.get(url)
            self.samples.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                self.errors += 1
        connection.close()

    def __enter__(self):
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(self.count)]
        for t in self.threads:
            t.start()
        for _ in self.threads:  # measure from when every reader is warm (minutes on a loaded machine)
            self.warm.acquire()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()

    def line(self, label: str, baseline: list[float] | None = None) -> None:
        if not self.samples:
            say(f"{label:34} no read finished meanwhile (errors {self.errors})")
            return
        p50, p99 = statistics.median(self.samples), percentile(self.samples, 99)
        ratio = ""
        if baseline and self.samples:
            base50, base99 = statistics.median(baseline), percentile(baseline, 99)
            ratio = f"   ×{p50 / base50:.2f} p50, ×{p99 / base99:.2f} p99 vs baseline"
        say(
            f"{label:34} {len(self.samples):6d} reads  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  "
            f"errors {self.errors}{ratio}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the baseline read phase")
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
            data_dir = tempfile.mkdtemp(prefix="tessera-bench-compliance.")
            stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
            os.environ["TESSERA_DATA_DIR"] = data_dir
            note = f"database: SQLite (WAL) in {data_dir}"

        import django

        django.setup()
        from django.conf import settings
        from django.db import connection

        from partners.services import api_key_create
        from privacy.package import package_chunks
        from privacy.selectors import subject_records_find
        from privacy.services import personal_data_map_set, subject_request_erase, subject_request_open
        from records.services import collection_create, record_create, record_update
        from tenants.runtime import workspace_context

        settings.TESSERA_RATE_LIMIT_SCALE = 10_000  # the readers measure latency, not the plan's rate limit
        say(f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, {mode}; {note}")
        tenant, admin = workspace_make(saas)
        host = tenant.host() if saas else "127.0.0.1"
        with workspace_context(tenant):
            customers = collection_create(actor=admin, name="Customers", slug="customers", fields=FIELDS)
            orders = collection_create(
                actor=admin, name="Orders", slug="orders", fields=[{"key": "email", "type": "email"}]
            )
            personal_data_map_set(actor=admin, collection=customers, personal=["name", "phone"], identifying=["email"])
            personal_data_map_set(actor=admin, collection=orders, personal=[], identifying=["email"])
            say(f"\n== Seeding ({mode})")
            ids = seed(customers, args.records, args.deliveries, admin)
            ada = record_create(
                actor=admin, collection=customers, data={"name": "Ada", "email": SUBJECT, "tier": "pro"}
            )
            record_update(actor=admin, record=ada, data={"phone": "555-ADA"})
            record_create(actor=admin, collection=orders, data={"email": SUBJECT})
            _, raw_key = api_key_create(actor=admin, name="bench", mode="live", scopes=["records:read"])
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE" if saas else "ANALYZE")
            connection.close()

        say(f"\n== API reads, {args.readers} readers ({load()})")
        with Readers(tenant, host, raw_key, ids, args.readers) as baseline:
            time.sleep(args.seconds)
        baseline.line("baseline (no erasure)")

        with workspace_context(tenant):
            say(f"({load()})")
            with PeakMemory() as find_mem:
                started = time.perf_counter()
                found = subject_records_find(SUBJECT.upper())
                find_s = time.perf_counter() - started
            access = subject_request_open(
                actor=admin, kind="access", subject_identifier=SUBJECT, requested_by="bench", verification="bench"
            )
            with PeakMemory() as package_mem:
                started = time.perf_counter()
                package_bytes = sum(len(chunk) for chunk in package_chunks(access))
                package_s = time.perf_counter() - started
            say(f"({load()})")
            request = subject_request_open(
                actor=admin, kind="erasure", subject_identifier=SUBJECT, requested_by="bench", verification="bench"
            )
            with Readers(tenant, host, raw_key, ids, args.readers) as during:
                time.sleep(0.5)
                with PeakMemory() as erase_mem:
                    started = time.perf_counter()
                    request = subject_request_erase(actor=admin, request=request)
                    erase_s = time.perf_counter() - started
                time.sleep(0.5)
            connection.close()
        during.line("during the erasure", baseline.samples)
        say(f"\nfind the subject: {len(found)} records in {find_s:.2f} s (peak memory +{find_mem.grew:.0f} MB)")
        say(
            f"access package (ZIP, {package_bytes:,} bytes): {package_s:.2f} s (peak memory +{package_mem.grew:.0f} MB)"
        )
        say(
            f"find + erase (one transaction, {request.certificate['records_erased']} records): {erase_s:.2f} s "
            f"(target < 10 s; peak memory +{erase_mem.grew:.0f} MB) in a workspace of {args.records:,} records "
            f"and {args.deliveries:,} deliveries"
        )
        say(f"process resident memory at the end: {rss_mb():.0f} MB; {load()}")


if __name__ == "__main__":
    main()
