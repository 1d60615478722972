#!/usr/bin/env python
"""Webhook fairness: one backlogged endpoint must not delay the others (issue 14, finding 11). Prints
figures; never asserts.

    TESSERA_MODE=saas .venv/bin/python bench/webhooks/fairness.py [--endpoints 1000] [--backlog 10000]
        [--rate 100] [--slow-rate 0] [--procs 2] [--concurrency 2] [--warmup 3]

Reuses bench/webhooks/run.py's processes: a private PostgreSQL (bench/_pg.py), a private redis-server as
the broker, the receiver (bench/webhooks/receiver.py, own process; a path with `/slow` answers after
0.2 s) and real `celery worker --pool=prefork` processes.

1. One workspace (enterprise plan) and --endpoints endpoints on the receiver: --endpoints - 1 "others"
   (each its own path `/ep<i>`) and one backlogged endpoint at `/slow`.
2. BASELINE: --procs workers (prefork, --concurrency each) start; one `test.ping` to each other
   endpoint (`webhooks.maintenance.test_event_send`, one transaction each) at --rate a second;
   commit → arrival latency p50 / p99 / max.
3. BACKLOG: fresh workers of the same shape; --backlog pending deliveries to the slow endpoint written in
   one transaction (events and deliveries bulk-inserted, the endpoint woken on commit as the outbox
   does); after --warmup seconds of draining, the same pings to the others (and --slow-rate new events a
   second to the slow endpoint: a backlogged endpoint still gets events, and each may wake one more task
   for it), the same figures, and the backlog's drain rate while they ran. Then the ratio of the p99s.
The model leaves out: the beat's sweeper (not started: nothing is lost here), TLS, other workspaces.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.webhooks.run import (  # noqa: E402
    percentile,
    received,
    receiver_start,
    redis_start,
    say,
    stop,
    workspace_seed,
)


def workers_start(procs: int, concurrency: int, workdir: Path, tag: str) -> list[subprocess.Popen]:
    """`procs` real `celery worker --pool=prefork --concurrency` processes (as run.py's worker_start)."""
    started = []
    for i in range(procs):
        name = f"{tag}-{i}"
        log_path = workdir / f"worker-{name}.log"
        command = [sys.executable, "-m", "celery", "-A", "config.celery_app", "worker", "--pool=prefork",
                   f"--concurrency={concurrency}", "--without-heartbeat", "--without-gossip", "--without-mingle",
                   "-l", "INFO", "-n", f"fair{name}@localhost"]  # fmt: skip
        env = {**os.environ, "TESSERA_DB_CONN_MAX_AGE": "60"}
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        started.append((proc, log_path))
    deadline = time.monotonic() + 90
    for proc, log_path in started:
        while " ready." not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(log_path.read_text())
            time.sleep(0.1)
    return [p for p, _ in started]


def endpoints_make(admin, base: str, count: int):
    """The slow endpoint (`/slow`) through the service, and `count - 1` others (`/ep<i>`) as the service
    writes them (an endpoint and its encrypted secret) but bulk-inserted: through endpoint_create (URL
    vetting, audit) each took about 0.2 s on the loaded bench machine, 200 s for a thousand."""
    from core.secrets_at_rest import secret_encrypt
    from webhooks.models import Endpoint, EndpointSecret
    from webhooks.services import endpoint_create
    from webhooks.signing import secret_new

    slow, _ = endpoint_create(actor=admin, url=f"{base}/slow", event_types=["record.*"])
    others = Endpoint.objects.bulk_create(
        [Endpoint(url=f"{base}/ep{i}", event_types=["record.*"], created_by=admin) for i in range(count - 1)]
    )
    EndpointSecret.objects.bulk_create(
        [EndpointSecret(endpoint=e, secret_encrypted=secret_encrypt(secret_new())) for e in others]
    )
    return others, slow


def backlog_write(admin, endpoint, count: int) -> set[str]:
    """`count` pending deliveries to `endpoint` in one transaction: the outbox's rows, bulk-inserted (a
    `test.ping` event each, its one body), and the endpoint woken on commit as outbox_event_write does."""
    from django.db import transaction
    from django.utils import timezone

    from core.events import DomainEvent
    from webhooks.models import Delivery, Event
    from webhooks.outbox import endpoints_wake_on_commit

    actor = admin.as_actor()
    now = timezone.now()
    with transaction.atomic():
        events = []
        for i in range(count):
            e = DomainEvent(type="test.ping", actor=actor, data={"object": {"object": "test", "n": i}})
            events.append(Event(id=e.id, type=e.type, livemode=True, created_at=e.occurred_at, payload=e.body()))
        Event.objects.bulk_create(events, batch_size=2000)
        deliveries = Delivery.objects.bulk_create(
            [Delivery(event=e, endpoint=endpoint, livemode=True, next_attempt_at=now, created_at=now) for e in events],
            batch_size=2000,
        )
        endpoints_wake_on_commit({endpoint.pk: deliveries[0].pk})
    return {e.id for e in events}


def pings_send(admin, endpoints, rate: float, slow=None, slow_rate: float = 0) -> tuple[dict[str, float], float]:
    """One test ping per endpoint at `rate` a second, and `slow_rate` a second to `slow` meanwhile (new
    events for the backlogged endpoint: each may wake another task for it); returns ({event id: commit
    time} of the pings to `endpoints`, achieved rate)."""
    from django.db import transaction

    from webhooks.maintenance import test_event_send

    commits: dict[str, float] = {}
    start = time.perf_counter()
    for i, endpoint in enumerate(endpoints):
        due = start + i / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        stamp: dict[str, float] = {}
        with transaction.atomic():
            transaction.on_commit(lambda stamp=stamp: stamp.__setitem__("at", time.time()))  # before the wake-up
            delivery = test_event_send(actor=admin, endpoint=endpoint)
        commits[delivery.event_id] = stamp["at"]
        if slow is not None and slow_rate and int((i + 1) * slow_rate / rate) > int(i * slow_rate / rate):
            test_event_send(actor=admin, endpoint=slow)
    return commits, len(endpoints) / (time.perf_counter() - start)


def arrivals_wait(log: Path, ids: set[str], timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        got = received(log)
        if ids <= got.keys() or time.monotonic() > deadline:
            return {i: got[i] for i in ids if i in got}
        time.sleep(0.2)


def phase(label, admin, others, rate, log, timeout, backlog_ids=frozenset(), slow=None, slow_rate=0.0) -> dict:
    commits, achieved = pings_send(admin, others, rate, slow, slow_rate)
    arrivals = arrivals_wait(log, set(commits), timeout)
    lat = [arrivals[k] - commits[k] for k in commits if k in arrivals]
    out = {
        "pings": len(commits),
        "delivered": len(lat),
        "sent_per_s": achieved,
        "p50": percentile(lat, 50),
        "p99": percentile(lat, 99),
        "max": max(lat) if lat else float("nan"),
    }
    if backlog_ids:  # the backlog's arrivals from the first ping's commit to the last ping's arrival
        t0, t1 = min(commits.values()), max(arrivals.values(), default=time.time())
        got = received(log)
        drained = sum(1 for k in backlog_ids if k in got and t0 <= got[k] <= t1)
        out |= {"backlog_drained": drained, "backlog_per_s": drained / (t1 - t0), "backlog_left": len(backlog_ids)
                - sum(1 for k in backlog_ids if k in got)}  # fmt: skip
    say(f"{label}: " + json.dumps({k: round(v, 4) for k, v in out.items()}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", type=int, default=1000, help="endpoints in all, the backlogged one included")
    parser.add_argument("--backlog", type=int, default=10_000, help="pending deliveries to the slow endpoint")
    parser.add_argument("--rate", type=float, default=100, help="test pings to the other endpoints per second")
    parser.add_argument("--procs", type=int, default=2, help="celery worker processes")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork pool size of each")
    parser.add_argument("--warmup", type=float, default=3, help="seconds the backlog drains before the pings")
    parser.add_argument(
        "--slow-rate", type=float, default=0, help="new events a second to the backlogged endpoint during the pings"
    )
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for the pings' arrivals")
    args = parser.parse_args()

    os.environ.setdefault("TESSERA_SECRETS_KEY", "bench-secrets-key")
    if os.environ.setdefault("TESSERA_MODE", "saas") != "saas":
        sys.exit("This benchmark needs TESSERA_MODE=saas (PostgreSQL, Redis, Celery workers).")
    os.chdir(ROOT)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("TESSERA_LOG_LEVEL", "WARNING")
    os.environ["TESSERA_OUTBOUND_ALLOWED_HOSTS"] = "127.0.0.1"
    os.environ["TESSERA_WEBHOOK_HTTPS_REQUIRED"] = "0"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from bench._pg import bench_database

    workdir = Path(tempfile.mkdtemp(prefix="tessera-bench-fairness."))
    redis_proc, redis_url = redis_start(workdir)
    os.environ["TESSERA_REDIS_URL"] = redis_url
    os.environ["TESSERA_CELERY_BROKER_URL"] = redis_url
    receiver, url, log = receiver_start(workdir)
    base = url.rsplit("/", 1)[0]
    workers: list[subprocess.Popen] = []
    try:
        with bench_database() as db:
            os.environ["TESSERA_DATABASE_URL"] = db.url
            import django

            django.setup()
            from django.db import connections

            from tenants.runtime import public_context, workspace_context

            say("== Machine")
            cpus, load = len(os.sched_getaffinity(0)), os.getloadavg()
            say(f"nproc {cpus}; load average {load}; Python {platform.python_version()}")
            say(db.note)
            say(f"broker {redis_url}; receiver {base} (own process); logs in {workdir}")
            t = time.perf_counter()
            tenant, admin, _collection, _first, _secret = workspace_seed(f"{base}/ep-seed")
            with public_context():
                tenant.refresh_from_db()  # the seed set its plan (enterprise: endpoints unlimited) in an update
            with workspace_context(tenant):
                others, slow = endpoints_make(admin, base, args.endpoints)
            say(f"{len(others)} other endpoints + 1 slow one made in {time.perf_counter() - t:.1f} s")
            connections.close_all()  # the worker processes are not forked from here, but keep it tidy
            shape = f"{args.procs} worker proc. × concurrency {args.concurrency}"

            say(f"\n== BASELINE: no backlog; one ping to each of {len(others)} endpoints at {args.rate:g}/s; {shape}")
            workers = workers_start(args.procs, args.concurrency, workdir, "base")
            time.sleep(1)
            with workspace_context(tenant):
                base_fig = phase("baseline", admin, others, args.rate, log, args.timeout)
            for w in workers:
                stop(w, group=True)

            say(f"\n== BACKLOG: {args.backlog} pending deliveries to /slow (0.2 s an answer), then the same pings")
            workers = workers_start(args.procs, args.concurrency, workdir, "backlog")
            t = time.perf_counter()
            with workspace_context(tenant):
                backlog_ids = backlog_write(admin, slow, args.backlog)
            say(f"{args.slow_rate:g} new events a second to /slow while the pings run")
            say(f"backlog written in one transaction in {time.perf_counter() - t:.1f} s; draining {args.warmup:g} s")
            time.sleep(args.warmup)
            with workspace_context(tenant):
                fig = phase(
                    "with backlog", admin, others, args.rate, log, args.timeout, backlog_ids, slow, args.slow_rate
                )

            say("\n== Summary (latency = commit → arrival at the receiver, of the other endpoints' pings)")
            say(f"{'run':<16}{'pings':>7}{'sent/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'backlog/s':>10}")
            for label, f in (("baseline", base_fig), ("with backlog", fig)):
                say(
                    f"{label:<16}{f['delivered']:>7}{f['sent_per_s']:>8.0f}{f['p50'] * 1000:>9.1f}"
                    f"{f['p99'] * 1000:>9.1f}{f['max'] * 1000:>9.1f}{f.get('backlog_per_s', float('nan')):>10.1f}"
                )
            say(
                f"p99 with backlog / baseline: {fig['p99'] / base_fig['p99']:.2f}x; others' p99 < 1 s with a "
                f"{args.backlog}-delivery backlog on one of {args.endpoints} endpoints: "
                + ("met" if fig["p99"] < 1 and fig["delivered"] == fig["pings"] else "NOT met")
            )
    finally:
        for w in workers:
            stop(w, group=True)
        stop(receiver)
        redis_proc.terminate()
        redis_proc.wait(timeout=10)


if __name__ == "__main__":
    main()
