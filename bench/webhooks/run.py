#!/usr/bin/env python
"""Outbound webhooks under load: deliveries per second with N worker processes, and the latency from a
write's commit to the webhook's arrival at a local receiver. Prints figures; never asserts.

    TESSERA_MODE=saas .venv/bin/python bench/webhooks/run.py [--workers 1,2,4] [--rate 200] [--seconds 10]
        [--writers 4] [--burst 2000] [--via outbox,spine,bulk]

1. A database of its own (bench/_pg.py: a private PostgreSQL unless TESSERA_BENCH_DATABASE_URL names a
   server) and a private redis-server on a free port as the Celery broker.
2. A workspace `bench` (enterprise plan), a collection, one endpoint pointing at the receiver
   (bench/webhooks/receiver.py, its own process on 127.0.0.1; put on TESSERA_OUTBOUND_ALLOWED_HOSTS).
3. --writers processes share --rate writes a second for --seconds, one transaction each, via
   - `outbox`: `webhooks.services.event_emit` alone (what the spine's steps 6–7 do), or
   - `spine`: `records.services.record_create` (the whole write spine: lock, validate, save, audit,
     outbox); the spine serialises a workspace's writes on its change counter, so this one shows
     what the spine itself can feed (on 2 cores about 70–80 single-record writes/s, short of 200);
   - `bulk`: `records.services.record_bulk_upsert` with TESSERA_BENCH_BULK (20) new records per call,
     what the bulk upsert endpoint does: each record is one `record.created` event through the whole
     spine, so this is how 200 record events/s reach the outbox on this machine. The target is
     events/s; the rate is events (records), not calls.
   Commit time comes from an on-commit callback registered before the webhooks' own.
4. For each N in --workers: a real `celery worker --pool=prefork --concurrency N` process (with
   TESSERA_DB_CONN_MAX_AGE=60, as workers should run). A task delivers its delivery and the other due
   ones of the endpoint in batches over a kept-alive connection, and a commit sends a task only when
   the endpoint's wake-up flag shows none on its way (webhooks/tasks.py); TESSERA_WEBHOOK_WAKE_FLAGS=0
   sends one per delivery, as the desktop does. Then
   - paced: p50 / p99 / max of commit → arrival, deliveries/s achieved (target: p99 < 1 s at 200/s),
     and the worker's CPU per delivery (wCPU: the worker and its pool processes, from /proc);
   - burst: --burst writes flat out, then the time until the last one arrives: the drain rate.
5. BASELINE, side by side: the same paced writes with the webhook POSTed inline by the writer right
   after commit (signed, keep-alive, no broker, no retries; the latency floor), and the ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIELDS = [{"key": "title", "type": "text"}, {"key": "n", "type": "integer"}]
commit_times: dict[str, float] = {}  # record id → commit time (time.time()), in a writer process
BULK = int(os.environ.get("TESSERA_BENCH_BULK", "20"))  # records per record_bulk_upsert call (--via bulk)


def say(text: str = "") -> None:
    print(text, flush=True)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)] if ordered else float("nan")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- processes ------------------------------------------------------------------------------------------


def redis_start(workdir: Path) -> tuple[subprocess.Popen, str]:
    import redis

    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except Exception:
            time.sleep(0.05)
    sys.exit("redis-server did not start")


def receiver_start(workdir: Path) -> tuple[subprocess.Popen, str, Path]:
    port_file, log = workdir / "receiver.port", workdir / "received.log"
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("receiver.py")), str(port_file), str(log)])
    for _ in range(100):
        if port_file.exists() and port_file.read_text():
            return proc, f"http://127.0.0.1:{port_file.read_text()}/hook", log
        time.sleep(0.05)
    sys.exit("the receiver did not start")


def worker_start(n: int, workdir: Path) -> subprocess.Popen:
    log = open(workdir / f"worker-{n}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config.celery_app", "worker", "--pool=prefork", f"--concurrency={n}",
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO", "-n", f"bench{n}@localhost"],
        cwd=ROOT, env={**os.environ, "TESSERA_DB_CONN_MAX_AGE": "60"}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if " ready." in (workdir / f"worker-{n}.log").read_text(errors="replace"):
            return proc
        if proc.poll() is not None:
            sys.exit((workdir / f"worker-{n}.log").read_text())
        time.sleep(0.1)
    sys.exit("the worker did not start")


def stop(proc: subprocess.Popen, *, group: bool = False) -> None:
    """SIGTERM to the process (a Celery worker then stops its pool warm); SIGKILL to its group if stuck."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL) if group else proc.kill()
            proc.wait(timeout=10)


# --- the workspace ----------------------------------------------------------------------------------------


def workspace_seed(url: str):

    from accounts.models import User
    from accounts.onboarding import workspace_signup
    from bench._pg import shared_migrate
    from billing.plans import Plan
    from records.services import collection_create
    from tenants.models import Tenant
    from tenants.runtime import public_context, workspace_context
    from webhooks.services import endpoint_create

    shared_migrate()
    tenant = workspace_signup(name="Bench", slug="bench", admin_email="admin@bench.test", admin_password=None).tenant
    with public_context():
        Tenant.objects.filter(pk=tenant.pk).update(plan=Plan.ENTERPRISE)
    with workspace_context(tenant):
        admin = User.objects.get(email="admin@bench.test")
        collection = collection_create(actor=admin, name="Jobs", slug="jobs", fields=FIELDS)
        endpoint, secret = endpoint_create(actor=admin, url=url, event_types=["record.*"])
    return tenant, admin, collection, endpoint, secret


def commit_clock_install() -> None:
    """A domain-event subscriber put before the webhook outbox's own (core.events): its on-commit callback
    runs first, and stamps every record of the transaction (a bulk write commits them all at once)."""
    from django.db import transaction

    from core import events

    pending: list[str] = []

    def flush() -> None:
        at = time.time()
        for record_id in pending:
            commit_times[record_id] = at
        pending.clear()

    def stamp(event) -> None:
        record_id = getattr(event, "record_id", None)
        if record_id is None:
            return
        if not pending:
            transaction.on_commit(flush)
        pending.append(record_id)

    events._subscribers("in_transaction").insert(0, stamp)  # before the outbox's own subscriber


def received(log: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in log.read_text().splitlines():
        msg, _, at = line.partition(" ")
        out.setdefault(msg, float(at))
    return out


def event_of_record(record_ids: list[str]) -> dict[str, str]:
    from webhooks.models import Event

    out = {}
    for event_id, payload in Event.objects.filter(type="record.created").values_list("pk", "payload"):
        record_id = (payload.get("data") or {}).get("id")
        if record_id:  # events written --via outbox carry no record
            out[record_id] = event_id
    return {rid: out[rid] for rid in record_ids if rid in out}


def writer_child(slug: str, rate: float, seconds: float, out: str, inline_url: str, secret: str) -> None:
    """One writer process: `rate` writes a second for `seconds`, one transaction each; appends
    `<key> <commit time>` per write to `out`. TESSERA_BENCH_VIA=spine: record_create (the whole write
    spine; key = record id); =outbox: event_emit alone in a transaction (the spine's steps 6–7; key =
    the event id). With `inline_url` (the BASELINE) it also POSTs a signed webhook itself right after
    each commit, with webhook-id `base_<key>`."""
    import django

    django.setup()
    commit_clock_install()
    from django.db import transaction

    from accounts.models import User
    from core.events import DomainEvent
    from records.models import Collection
    from records.services import record_create
    from tenants.models import Tenant
    from tenants.runtime import workspace_context
    from webhooks.outbox import outbox_event_write

    via = os.environ.get("TESSERA_BENCH_VIA", "spine")
    post = inline_poster(inline_url, secret) if inline_url else None
    tenant = Tenant.objects.get(slug=slug)
    total = int(rate * seconds)
    with workspace_context(tenant), open(out, "w") as f:
        admin = User.objects.get(email="admin@bench.test")
        collection = Collection.objects.get(slug="jobs")
        start = time.perf_counter()
        if via == "bulk":  # BULK records per record_bulk_upsert call (one transaction), paced per call
            from records.services import record_bulk_upsert

            for first in range(0, total, BULK):
                due = start + first / rate
                now = time.perf_counter()
                if due > now:
                    time.sleep(due - now)
                items = [{"data": {"title": f"job {i}", "n": i}} for i in range(first, min(first + BULK, total))]
                for item, result in zip(
                    items, record_bulk_upsert(actor=admin, collection=collection, items=items), strict=True
                ):
                    if post is not None:
                        post(result.record.id, item["data"])
                    f.write(f"{result.record.id} {commit_times[result.record.id]:.6f}\n")
            f.write(f"# wrote {total} in {time.perf_counter() - start:.3f} s\n")
            return
        for i in range(total):
            due = start + i / rate
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            data = {"title": f"job {i}", "n": i}
            if via == "outbox":
                stamp: dict[str, float] = {}
                with transaction.atomic():
                    transaction.on_commit(lambda stamp=stamp: stamp.__setitem__("at", time.time()))
                    event = DomainEvent(
                        type="record.created", actor=admin.as_actor(), data={"object": {"object": "record", **data}}
                    )
                    outbox_event_write(event)  # the outbox alone (what the spine's event hands it)
                key, committed = event.id, stamp["at"]
            else:
                record = record_create(actor=admin, collection=collection, data=data)
                key, committed = record.id, commit_times[record.id]
            if post is not None:
                post(key, data)
            f.write(f"{key} {committed:.6f}\n")
        f.write(f"# wrote {total} in {time.perf_counter() - start:.3f} s\n")


def writers_run(
    slug: str,
    rate: int,
    seconds: float,
    writers: int,
    workdir: Path,
    *,
    via: str = "spine",
    inline_url: str = "",
    secret: str = "",
):
    """Run `writers` writer processes sharing `rate`; returns ({record id: commit time}, achieved rate)."""
    procs, outs = [], []
    for w in range(writers):
        out = workdir / f"writer-{time.time_ns()}-{w}.txt"
        outs.append(out)
        args = [
            sys.executable,
            __file__,
            "--writer-child",
            slug,
            str(rate / writers),
            str(seconds),
            str(out),
            inline_url,
            secret,
        ]
        procs.append(subprocess.Popen(args, cwd=ROOT, env={**os.environ, "TESSERA_BENCH_VIA": via}))
    for p in procs:
        p.wait()
    commits: dict[str, float] = {}
    longest = 0.0
    for out in outs:
        for line in out.read_text().splitlines():
            if line.startswith("# wrote"):
                longest = max(longest, float(line.split()[-2]))
            elif line:
                rid, at = line.split()
                commits[rid] = float(at)
    return commits, (len(commits) / longest if longest else float("nan"))


def arrivals_wait(log: Path, ids: dict[str, str], timeout: float = 180) -> dict[str, float]:
    """{record id: arrival time}, once every record's webhook (ids: record id → webhook-id) arrived."""
    deadline = time.monotonic() + timeout
    while True:
        got = received(log)
        if all(w in got for w in ids.values()) or time.monotonic() > deadline:
            return {r: got[w] for r, w in ids.items() if w in got}
        time.sleep(0.2)


def figures(commits: dict[str, float], arrivals: dict[str, float], write_rate: float) -> dict:
    lat = [arrivals[r] - commits[r] for r in commits if r in arrivals]
    span = max(arrivals.values()) - min(commits.values()) if arrivals else float("nan")
    return {
        "events": len(commits),
        "delivered": len(lat),
        "write_rate": write_rate,
        "delivered_per_s": len(lat) / span if span else float("nan"),
        "p50": percentile(lat, 50),
        "p99": percentile(lat, 99),
        "max": max(lat) if lat else float("nan"),
    }


def _webhook_ids(tenant, keys: list[str], *, via: str, inline: bool) -> dict[str, str]:
    from tenants.runtime import workspace_context

    if inline:
        return {k: f"base_{k}" for k in keys}
    if via == "outbox":
        return {k: k for k in keys}
    with workspace_context(tenant):
        return event_of_record(keys)


def delivery_tasks(worker_log: str) -> tuple[int, int]:
    """(delivery tasks run, deliveries they attempted), from the worker's INFO log of task results."""
    import re

    tasks = attempts = 0
    for result in re.findall(r"webhooks\.delivery_attempt\[[^]]*\] succeeded in [0-9.e-]+s: '([^']*)'", worker_log):
        tasks += 1
        attempts += int(result.split()[0]) if result.endswith("deliveries") else int(result != "skipped")
    return tasks, attempts


def group_cpu_seconds(pgid: int) -> float:
    """user + system CPU of the live processes of a process group (a Celery worker and its pool)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after "(comm)": state ppid pgrp … utime(11) stime(12)
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def paced(
    tenant,
    rate: int,
    seconds: float,
    writers: int,
    log: Path,
    workdir: Path,
    *,
    via: str,
    inline_url="",
    secret="",
    worker: subprocess.Popen | None = None,
):
    cpu_before = group_cpu_seconds(worker.pid) if worker else 0.0
    commits, write_rate = writers_run(
        tenant.slug, rate, seconds, writers, workdir, via=via, inline_url=inline_url, secret=secret
    )
    ids = _webhook_ids(tenant, list(commits), via=via, inline=bool(inline_url))
    out = figures(commits, arrivals_wait(log, ids), write_rate)
    if worker:  # the worker processes' CPU per delivery (its pool processes live as long as the worker)
        time.sleep(0.5)  # the last batch's log and state writes
        out["worker_cpu_ms"] = (group_cpu_seconds(worker.pid) - cpu_before) * 1000 / max(out["delivered"], 1)
    return out


def burst(tenant, count: int, writers: int, log: Path, workdir: Path, *, via: str) -> dict:
    start = time.time()
    commits, write_rate = writers_run(tenant.slug, 10_000, count / 10_000, writers, workdir, via=via)  # flat out
    ids = _webhook_ids(tenant, list(commits), via=via, inline=False)
    arrivals = arrivals_wait(log, ids, timeout=300)
    drained = max(arrivals.values()) - start
    return {"events": len(commits), "delivered": len(arrivals), "write_rate": write_rate, "drain_s": drained,
            "per_s": len(arrivals) / drained}  # fmt: skip


def inline_poster(url: str, secret: str):
    """BASELINE: the writer POSTs the webhook itself right after commit (no outbox, no broker, no retry)."""
    import http.client
    import json as _json
    from urllib.parse import urlsplit

    from django.utils import timezone

    from webhooks.signing import headers_signed

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)

    def post(key: str, data: dict) -> None:
        body = _json.dumps({"type": "record.created", "timestamp": timezone.now().isoformat(), "data": data})
        msg_id = f"base_{key}"
        headers = {
            "Content-Type": "application/json",
            **headers_signed(secrets_valid=[secret], msg_id=msg_id, timestamp=timezone.now(), body=body),
        }
        conn.request("POST", parts.path, body=body.encode(), headers=headers)
        conn.getresponse().read()

    return post


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--writer-child":
        sys.path.insert(0, str(ROOT))
        slug, rate, seconds, out, inline_url, secret = sys.argv[2:8]
        writer_child(slug, float(rate), float(seconds), out, inline_url, secret)
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2,4", help="worker process counts to measure (comma-separated)")
    parser.add_argument("--rate", type=int, default=200, help="paced record writes per second (all writers)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--writers", type=int, default=4, help="writer processes sharing --rate")
    parser.add_argument("--burst", type=int, default=2000, help="events written flat out to measure the drain rate")
    parser.add_argument(
        "--via", default="outbox,spine,bulk", help="outbox: event_emit; spine: record_create; bulk: record_bulk_upsert"
    )
    args = parser.parse_args()

    os.environ.setdefault("TESSERA_SECRETS_KEY", "bench-secrets-key")  # production settings need one
    if os.environ.setdefault("TESSERA_MODE", "saas") != "saas":
        sys.exit("This benchmark needs TESSERA_MODE=saas (PostgreSQL, Redis, Celery workers).")
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("TESSERA_LOG_LEVEL", "WARNING")
    os.environ["TESSERA_OUTBOUND_ALLOWED_HOSTS"] = "127.0.0.1"
    os.environ["TESSERA_WEBHOOK_HTTPS_REQUIRED"] = "0"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from bench._pg import bench_database

    workdir = Path(tempfile.mkdtemp(prefix="tessera-bench-webhooks."))
    redis_proc, redis_url = redis_start(workdir)
    os.environ["TESSERA_REDIS_URL"] = redis_url
    os.environ["TESSERA_CELERY_BROKER_URL"] = redis_url
    receiver, url, log = receiver_start(workdir)
    try:
        with bench_database() as db:
            os.environ["TESSERA_DATABASE_URL"] = db.url
            import django

            django.setup()
            say("== Machine")
            say(
                f"nproc {len(os.sched_getaffinity(0))}; load average now: {os.getloadavg()}; "
                f"Python {platform.python_version()}"
            )
            say(db.note)
            say(f"broker: private redis-server {redis_url}; receiver {url} (own process); logs in {workdir}")
            tenant, _admin, _collection, _endpoint, secret = workspace_seed(url)
            from django.db import connections

            connections.close_all()
            w = args.writers
            from tenants.runtime import workspace_context
            from webhooks.models import Delivery

            rows = []  # (label, paced figures, burst figures or None)
            for via in args.via.split(","):
                say(f"\n== BASELINE via {via}: the writer POSTs inline after commit; {args.rate}/s, {w} writers")
                # The outbox still writes the events and queues their tasks, but no worker runs: the
                # queue is emptied and those deliveries set aside before a worker starts.
                base = paced(tenant, args.rate, args.seconds, w, log, workdir, via=via, inline_url=url, secret=secret)
                say(json.dumps({k: round(v, 4) for k, v in base.items()}))
                redis_flush(redis_url)
                with workspace_context(tenant):
                    Delivery.objects.filter(status="pending").update(status="succeeded")
                rows.append((f"baseline inline, {via}", base, None, base))
                for n in [int(x) for x in args.workers.split(",") if x.strip()]:
                    say(f"\n== Tessera via {via}: outbox → Celery (prefork, --concurrency {n}) → receiver")
                    worker = worker_start(n, workdir)
                    try:
                        time.sleep(1)
                        p = paced(tenant, args.rate, args.seconds, w, log, workdir, via=via, worker=worker)
                        say(f"paced {args.rate}/s: " + json.dumps({k: round(v, 4) for k, v in p.items()}))
                        b = burst(tenant, args.burst, w, log, workdir, via=via) if args.burst else None
                        if b:
                            say(f"burst {args.burst}: " + json.dumps({k: round(v, 3) for k, v in b.items()}))
                        tasks, sent = delivery_tasks((workdir / f"worker-{n}.log").read_text(errors="replace"))
                        say(f"delivery tasks run: {tasks}, attempts made: {sent} ({sent / max(tasks, 1):.1f} a task)")
                        rows.append((f"{n} worker proc., {via}", p, b, base))
                    finally:
                        stop(worker, group=True)

            say(
                f"\n== Summary (latency = commit → arrival at the receiver; {w} writer processes, target {args.rate}/s)"
            )
            say(
                f"{'run':<28}{'writes/s':>9}{'deliv/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'burst/s':>9}"
                f"{'wCPU ms':>9}"
            )
            for label, p, b, base in rows:
                line = (
                    f"{label:<28}{p['write_rate']:>9.0f}{p['delivered_per_s']:>9.0f}{p['p50'] * 1000:>9.1f}"
                    f"{p['p99'] * 1000:>9.1f}{p['max'] * 1000:>9.1f}{(b['per_s'] if b else float('nan')):>9.0f}"
                    f"{p.get('worker_cpu_ms', float('nan')):>9.2f}"
                )
                if p is not base:
                    met = p["p99"] < 1 and p["write_rate"] >= args.rate * 0.95
                    line += f"   p99 {p['p99'] / base['p99']:.1f}x baseline; p99 < 1 s at {args.rate}/s: "
                    line += "met" if met else f"NOT met (writers reached {p['write_rate']:.0f}/s)"
                say(line)
    finally:
        stop(receiver)
        redis_proc.terminate()
        redis_proc.wait(timeout=10)


def redis_flush(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


if __name__ == "__main__":
    main()
