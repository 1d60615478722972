#!/usr/bin/env python
"""The partner API under load vs a plain DRF ModelViewSet on the same table. Prints figures; never asserts.

    TESSERA_MODE=saas .venv/bin/python bench/api/run.py [--concurrency 50] [--seconds 5] [--rounds 3]
        [--workers 2] [--records 2000] [--ops read,list,create] [--paced-rate 20,50,100] [--profile read]
    TESSERA_MODE=saas .venv/bin/python bench/api/run.py --vs-kinto [--records 100000] ...

--vs-kinto: Kinto 26.5 instead of the DRF baseline, every operation of the REST performance issue
   (bench/api/vs_kinto.py says how; Kinto installs into a virtual environment of its own).

1. A database of its own (bench/_pg.py: a private PostgreSQL unless TESSERA_BENCH_DATABASE_URL names a
   server) and Redis db TESSERA_REDIS_URL (default db 15) for rate limits and usage counters.
2. A workspace `bench` on the enterprise plan (TESSERA_RATE_LIMIT_SCALE=1000 too: the bench measures the
   limiter's cost, it must not be throttled), collection `people`, --records records through the spine,
   a live API key with every records scope.
3. The server: uvicorn (uvloop, httptools) with --workers processes serving `bench.api.asgi` — Tessera's
   ASGI application with the production settings plus the baseline's URLs (bench/api/urls.py).
4. Load from a second process (bench/api/load.py: asyncio + httpx over loopback, keep-alive) at
   --concurrency clients for --seconds after a 1 s warm-up, per operation:
   read one record by id, list 100, create one — Tessera (/api/v1/…, Bearer key) and the BASELINE
   (/bench/baseline/records…, a plain ModelViewSet, no auth, limit/offset pagination) in interleaved
   rounds (the order flips each round), because the machine is shared and noisy.
   Then PACED read runs: the same clients, each sending at a fixed pace (--paced-rate: req/s in all,
   one run per rate), for latency below saturation.
5. Per operation and target: requests/s, p50/p99/max (ms), errors, and CPU per request of the server
   processes and of PostgreSQL (from /proc: the figure other load on a shared machine moves least);
   the ratios Tessera/baseline. Targets: read overhead ≤ 1.3× (CPU per request and throughput), read
   p99 < 50 ms at 50 clients.
--profile OP: one more Tessera run of OP with cProfile inside the server (one worker, every request
   profiled by bench/api/profiling.py), top functions.

Reading the figures: the server runs Tessera's production settings, so each uvicorn worker keeps a pool
of PostgreSQL connections (config/settings/saas.py; TESSERA_DB_POOL_MAX_SIZE=0 measures without it:
opening a connection per request then costs both targets alike, about half of a read's CPU), and a key
a process has seen costs no query (partners/keycache.py). Closed loop, latency is just clients divided
by throughput, so at 50 clients p99 < 50 ms would need > 1,000 reads/s from 2 shared cores; the paced
runs show the latency clients see below saturation, and the highest paced rate under 50 ms is the
capacity at that latency.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "bench-Correct-horse-9417"
FIELDS = [
    {"key": "name", "type": "text", "required": True},
    {"key": "email", "type": "email", "unique": True},
    {"key": "tier", "type": "choice", "choices": ["free", "team", "pro"], "default": "free"},
    {"key": "score", "type": "integer"},
    {"key": "notes", "type": "long_text"},
]


def say(text: str = "") -> None:
    print(text, flush=True)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


# --- the workspace ------------------------------------------------------------------------------------


def workspace_seed(records: int) -> tuple[str, str, list[str]]:
    """Returns (host, live key, record ids)."""

    from accounts.models import User
    from accounts.onboarding import workspace_signup
    from bench._pg import shared_migrate
    from billing.plans import Plan
    from partners.services import api_key_create
    from records.services import collection_create, record_bulk_upsert
    from tenants.models import Tenant
    from tenants.runtime import public_context, workspace_context

    shared_migrate()
    tenant = workspace_signup(
        name="Bench", slug="bench", admin_email="admin@bench.test", admin_password=PASSWORD
    ).tenant
    with public_context():
        Tenant.objects.filter(pk=tenant.pk).update(plan=Plan.ENTERPRISE)
    with workspace_context(tenant):
        admin = User.objects.get(email="admin@bench.test")
        people = collection_create(actor=admin, name="People", slug="people", fields=FIELDS)
        ids: list[str] = []
        for start in range(0, records, 500):
            items = [
                {"data": {"name": f"Person {i}", "email": f"person{i}@example.test", "score": i, "notes": "x" * 40}}
                for i in range(start, min(start + 500, records))
            ]
            ids += [r.record.id for r in record_bulk_upsert(actor=admin, collection=people, items=items)]
        _key, raw = api_key_create(
            actor=admin, name="bench", mode="live", scopes=["records:read", "records:write", "collections:read"]
        )
    from django.db import connections

    connections.close_all()
    return tenant.host(), raw, ids


# --- the server ---------------------------------------------------------------------------------------


def server_start(port: int, workers: int, env: dict, log: Path, *, profile: str | None = None) -> subprocess.Popen:
    cmd = [sys.executable]
    if profile:  # one worker, every request under cProfile (bench/api/profiling.py), written at exit
        env = {**env, "TESSERA_BENCH_PROFILE": profile}
    cmd += ["-m", "uvicorn", "bench.api.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--no-access-log", "--loop", "uvloop", "--http", "httptools", "--log-level", "warning"]
    if workers > 1 and not profile:
        cmd += ["--workers", str(workers)]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"server exited; see {log}:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
    sys.exit(f"server did not answer /health within 60 s:\n{log.read_text()[-3000:]}")


def server_stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)  # SIGINT: uvicorn shuts down cleanly (cProfile writes its file)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --- load ---------------------------------------------------------------------------------------------


def server_cpu_seconds(server: subprocess.Popen) -> float:
    """CPU used so far by the uvicorn process and its workers."""
    from bench._pg import child_pids, process_cpu_seconds

    return process_cpu_seconds(server.pid) + sum(process_cpu_seconds(pid) for pid in child_pids(server.pid))


def load(port: int, host: str, key: str, ids_file: str, op: str, target: str, args, rate: float = 0) -> dict:
    cmd = [sys.executable, str(ROOT / "bench/api/load.py"), "--base", f"http://127.0.0.1:{port}", "--host", host]
    cmd += ["--op", op, "--target", target, "--key", key, "--ids", ids_file]
    cmd += ["--concurrency", str(args.concurrency), "--seconds", str(args.seconds)]
    if rate:
        cmd += ["--rate", str(rate / args.concurrency)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"load generator failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def row(name: str, runs: list[dict]) -> tuple[float, float, float, float, float]:
    latencies = [ms for run in runs for ms in run["latencies"]] or [float("nan")]
    seconds = sum(run["seconds"] for run in runs)
    errors: dict[str, int] = {}
    for run in runs:
        for status, n in run["errors"].items():
            errors[status] = errors.get(status, 0) + n
    rps = sum(len(run["latencies"]) for run in runs) / seconds
    p50, p99 = statistics.median(latencies), percentile(latencies, 99)
    per_round = " ".join(f"{len(run['latencies']) / run['seconds']:.0f}" for run in runs)
    total = sum(run["total"] for run in runs)
    app_cpu = sum(run["app_cpu"] for run in runs) / total * 1000
    db_cpu = sum(run["db_cpu"] for run in runs) / total * 1000
    say(
        f"  {name:<9} {rps:6.0f} req/s  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  max {max(latencies):7.1f} ms  "
        f"CPU/request: server {app_cpu:5.2f} ms + PostgreSQL {db_cpu:5.2f} ms  n={round(rps * seconds):<6} "
        f"errors={errors or 0}  (req/s per round: {per_round})"
    )
    return rps, p50, p99, app_cpu, db_cpu


def ratio(ours: float, theirs: float) -> float:
    """ours / theirs; NaN when theirs is 0 (e.g. PostgreSQL's CPU on a given server, which cannot be read)."""
    return ours / theirs if theirs else float("nan")


def cpu(figures: tuple) -> float:
    """Server + PostgreSQL CPU milliseconds per request."""
    return figures[3] + figures[4]


def profile_report(path: str, limit: int = 40) -> None:
    import pstats

    say(f"\n== Profile of the server process ({path}), by cumulative time, Tessera code and the API path")
    stats = pstats.Stats(path)
    stats.sort_stats("cumulative")
    stats.print_stats(r"/work/main/(partners|records|tenants|config|rbac|audit|accounts)/", limit)
    stats.sort_stats("tottime")
    stats.print_stats(limit // 2)


def machine(note: str) -> None:
    import django

    model = "?"
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import uvicorn

    say("== Machine")
    say(f"nproc {len(os.sched_getaffinity(0))}, CPU: {model}; load average now: {os.getloadavg()}")
    say(f"Python {platform.python_version()}, Django {django.get_version()}, uvicorn {uvicorn.__version__}")
    say(note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run (after 1 s warm-up)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--ops", default="read,list,create")
    parser.add_argument(
        "--paced-rate",
        default="20,50,100",
        help="total req/s of the paced read runs, comma-separated (0: skip them): the highest rate whose p99 "
        "stays under 50 ms is the capacity at that latency",
    )
    parser.add_argument("--profile", choices=["read", "list", "create"], help="profile one Tessera op afterwards")
    parser.add_argument(
        "--vs-kinto",
        action="store_true",
        help="Tessera and Kinto side by side instead of the DRF baseline (bench/api/vs_kinto.py): every op of "
        "the REST performance issue unless --ops names some",
    )
    args = parser.parse_args()

    os.environ.setdefault("TESSERA_SECRETS_KEY", "bench-secrets-key")  # production settings need one
    if os.environ.setdefault("TESSERA_MODE", "saas") != "saas":
        sys.exit("This benchmark needs TESSERA_MODE=saas (PostgreSQL, Redis): the production runtime.")
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("TESSERA_LOG_LEVEL", "WARNING")
    os.environ.setdefault("TESSERA_REDIS_URL", "redis://127.0.0.1:6379/15")
    os.environ["TESSERA_RATE_LIMIT_SCALE"] = "1000"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the private server is still stopped
    if args.vs_kinto:
        from bench.api import vs_kinto

        vs_kinto.main(args)
        return
    from bench._pg import bench_database, free_port

    ops = [op.strip() for op in args.ops.split(",") if op.strip()]
    paced_rates = [float(rate) for rate in args.paced_rate.split(",") if float(rate) > 0]
    workdir = Path(tempfile.mkdtemp(prefix="tessera-bench-api."))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        db = cleanup.enter_context(bench_database())
        os.environ["TESSERA_DATABASE_URL"] = db.url
        import django

        django.setup()
        machine(db.note)
        say(f"Redis: {os.environ['TESSERA_REDIS_URL']}; server log and ids in {workdir} (removed at the end)")
        started = time.perf_counter()
        host, key, ids = workspace_seed(args.records)
        say(f"workspace {host} (enterprise plan), {len(ids):,} records seeded in {time.perf_counter() - started:.1f} s")
        ids_file = workdir / "ids.txt"
        ids_file.write_text("\n".join(ids))

        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.api.settings", "PYTHONPATH": str(ROOT)}
        port = free_port()
        server = server_start(port, args.workers, env, workdir / "server.log")
        results: dict[tuple[str, str], list[dict]] = {}
        try:
            say(
                f"\n== Load: {args.concurrency} clients, {args.rounds} rounds x {args.seconds:.0f} s per op and "
                f"target, uvicorn --workers {args.workers}"
            )
            for r in range(args.rounds):
                for op in ops:
                    order = ["baseline", "tessera"] if r % 2 == 0 else ["tessera", "baseline"]
                    for target in order:
                        before = server_cpu_seconds(server), db.server.cpu_seconds() if db.server else 0.0
                        run = load(port, host, key, str(ids_file), op, target, args)
                        run["app_cpu"] = server_cpu_seconds(server) - before[0]
                        run["db_cpu"] = (db.server.cpu_seconds() if db.server else 0.0) - before[1]
                        results.setdefault((op, target), []).append(run)
                for rate in paced_rates if "read" in ops else []:
                    for target in order:
                        before = server_cpu_seconds(server), db.server.cpu_seconds() if db.server else 0.0
                        run = load(port, host, key, str(ids_file), "read", target, args, rate=rate)
                        run["app_cpu"] = server_cpu_seconds(server) - before[0]
                        run["db_cpu"] = (db.server.cpu_seconds() if db.server else 0.0) - before[1]
                        results.setdefault((f"paced read {rate:g}/s", target), []).append(run)
                say(f"  round {r + 1} done; load average {os.getloadavg()[0]:.2f}")
        finally:
            server_stop(server)

        say(f"\n== Results ({args.concurrency} concurrent clients over loopback, {args.workers} uvicorn workers)")
        summary: dict[str, tuple] = {}
        paced = [f"paced read {rate:g}/s" for rate in paced_rates if "read" in ops]
        for op in ops + paced:
            say(f"{op}:" if op in ops else f"{op} ({args.concurrency} clients sending that many req/s in all):")
            base = row("baseline", results[(op, "baseline")])
            ours = row("tessera", results[(op, "tessera")])
            summary[op] = (base, ours)
            say(
                f"  ratio tessera/baseline: p50 {ours[1] / base[1]:.2f}x, p99 {ours[2] / base[2]:.2f}x, "
                f"throughput {base[0] / ours[0]:.2f}x fewer req/s, CPU per request {ratio(cpu(ours), cpu(base)):.2f}x "
                f"(server {ratio(ours[3], base[3]):.2f}x, PostgreSQL {ratio(ours[4], base[4]):.2f}x)"
                + ("" if db.server else "; PostgreSQL's CPU unread on a given server (TESSERA_BENCH_DATABASE_URL)")
            )
        if "read" in summary:
            base, ours = summary["read"]
            p50_ratio, rps_ratio, cpu_ratio = ours[1] / base[1], base[0] / ours[0], ratio(cpu(ours), cpu(base))
            ok = "meets" if max(cpu_ratio, rps_ratio) <= 1.3 else "MISSES"
            say(
                f"\ntarget read overhead <= 1.3x: {ok} (CPU per request {cpu_ratio:.2f}x, the figure least moved "
                f"by other load on the machine; throughput {rps_ratio:.2f}x; closed-loop p50 {p50_ratio:.2f}x, "
                f"which is queueing)"
            )
            say(
                f"read p99 at {args.concurrency} clients, closed loop (saturated: p99 is queueing, clients / "
                f"throughput): {ours[2]:.1f} ms (baseline {base[2]:.1f} ms)"
            )
            for rate, op in zip(paced_rates, paced, strict=True):
                base, ours = summary[op]
                ok = "meets" if ours[2] < 50 else "MISSES"
                say(
                    f"target read p99 < 50 ms at {args.concurrency} clients, paced at {rate:g} req/s: {ok} "
                    f"({ours[2]:.1f} ms; baseline {base[2]:.1f} ms)"
                )

        if args.profile:
            prof = str(workdir / "server.prof")
            server = server_start(port, 1, env, workdir / "server.log", profile=prof)
            try:
                run = load(port, host, key, str(ids_file), args.profile, "tessera", args)
                say(f"\nprofiled run: {len(run['latencies']) / run['seconds']:.0f} req/s (one worker, under cProfile)")
            finally:
                server_stop(server)
            profile_report(prof)
        say(f"\nload average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
