"""bench/api --vs-kinto: Tessera's records API and Kinto side by side on one PostgreSQL. Prints figures; never asserts.

    TESSERA_MODE=saas .venv/bin/python bench/api/run.py --vs-kinto [--records 100000] [--workers 2]
        [--concurrency 16] [--seconds 5] [--rounds 3] [--ops read,list,deep,...] [--paced-rate 40]

Kinto (Mozilla's JSON-record store: buckets, collections, records, permissions, sync by `_since`) is
installed into a virtual environment of its own (bench/api/kinto-requirements.txt, pinned; by default
under the temporary folder, TESSERA_BENCH_KINTO_VENV names another) and never into Tessera's.

1. One PostgreSQL server (a private one with fsync on, as production runs; or TESSERA_BENCH_DATABASE_URL),
   a database each: Tessera's (a workspace on the enterprise plan, collection `people` with typed fields)
   and Kinto's (PostgreSQL storage and permissions, bucket `bench`, collection `people` with a JSON
   schema and Kinto's schema validation on, Basic auth: its cheapest policy, no password hashing).
2. The same --records records in both (Tessera through its write spine, Kinto through its batch
   endpoint): name, e-mail, tier (free/team/pro in turn), a score 0–999, a note.
3. Two servers with --workers processes each: uvicorn (Tessera's ASGI app) and gunicorn (Kinto's WSGI app).
4. Per operation, rounds alternating which server goes first: get by id, list a first page of 100, a deep
   page (100 after a record half-way), filters (score > 500; tier = pro), create, patch, changes since a
   cursor half-way (Tessera: /api/v1/events?starting_after=…; Kinto: records?_since=…). Closed loop at
   --concurrency clients for throughput, then a paced run at --paced-rate req/s in all (the same for both)
   for p50/p99 below saturation.
5. Per operation: req/s, p50/p99, errors, CPU per request (server processes + PostgreSQL, from /proc; with
   a given server, PostgreSQL's CPU cannot be read and only the servers' is shown), and Tessera / Kinto.

What it leaves out: Kinto's answers are not checked beyond their status; Kinto's permissions are the
bucket owner's (one principal), Tessera's an API key's scopes; Kinto keeps no audit chain, webhook outbox,
rate limits or usage counters, Tessera does all of them on every request measured here.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "bench/api/kinto-requirements.txt"
OPS = ["read", "list", "deep", "filter_number", "filter_text", "create", "patch", "changes"]
KINTO_USER = "bench:bench-password"
KINTO_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 10000},
        "email": {"type": "string", "format": "email"},
        "tier": {"type": "string", "enum": ["free", "team", "pro"], "default": "free"},
        "score": {"type": "integer"},
        "notes": {"type": "string"},
    },
    "required": ["name"],
}


def durability_on(url: str) -> None:
    """fsync and synchronous commits on, as production runs (the private server seeds without them: the
    loading is not what is measured, and with fsync on a shared machine's disk makes it crawl)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for name in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(f"ALTER SYSTEM SET {name} = on")
        conn.execute("SELECT pg_reload_conf()")


def say(text: str = "") -> None:
    print(text, flush=True)


def record_data(i: int) -> dict:
    rng = random.Random(i)
    return {
        "name": f"Person {i}",
        "email": f"person{i}@example.test",
        "tier": ("free", "team", "pro")[i % 3],
        "score": rng.randrange(1000),
        "notes": "x" * 40,
    }


# --- Kinto ----------------------------------------------------------------------------------------


def kinto_venv() -> Path:
    """Kinto's own virtual environment, (re)installed when bench/api/kinto-requirements.txt changes."""
    venv = Path(os.environ.get("TESSERA_BENCH_KINTO_VENV") or Path(tempfile.gettempdir()) / "tessera-bench-kinto")
    want = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = venv / ".requirements.sha"
    if not (venv / "bin/gunicorn").exists() or not stamp.exists() or stamp.read_text() != want:
        say(f"installing Kinto into {venv} (bench/api/kinto-requirements.txt) ...")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin/pip"), "install", "-q", "-r", str(REQUIREMENTS)], check=True)
        stamp.write_text(want)
    return venv


KINTO_INI = """\
[app:main]
use = egg:kinto
kinto.storage_backend = kinto.core.storage.postgresql
kinto.storage_url = {url}
kinto.storage_pool_size = 10
kinto.permission_backend = kinto.core.permission.postgresql
kinto.permission_url = {url}
kinto.permission_pool_size = 10
kinto.cache_backend = kinto.core.cache.memory
kinto.userid_hmac_secret = bench-kinto-secret
kinto.bucket_create_principals = system.Authenticated
kinto.experimental_collection_schema_validation = true
kinto.batch_max_requests = 1000
multiauth.policies = basicauth
multiauth.policy.basicauth.use = kinto.core.authentication.BasicAuthAuthenticationPolicy

[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = WARNING
formatter = generic

[formatter_generic]
format = %(asctime)s %(levelname)s %(name)s %(message)s
"""


def kinto_prepare(venv: Path, db_url: str, workdir: Path) -> Path:
    ini = workdir / "kinto.ini"
    ini.write_text(KINTO_INI.format(url=db_url.replace("postgres://", "postgresql://", 1)))
    subprocess.run(
        [str(venv / "bin/kinto"), "migrate", "--ini", str(ini)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return ini


def kinto_start(venv: Path, ini: Path, port: int, workers: int, log: Path) -> subprocess.Popen:
    cmd = [str(venv / "bin/gunicorn"), "--paste", str(ini), "--bind", f"127.0.0.1:{port}"]
    cmd += ["--workers", str(workers), "--log-level", "warning"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=ini.parent, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"Kinto exited; see {log}:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
    sys.exit(f"Kinto did not answer within 60 s:\n{log.read_text()[-3000:]}")


def _kinto(port: int, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(KINTO_USER.encode()).decode(),
        },
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read() or b"{}")


def kinto_seed(port: int, records: int) -> tuple[list[str], str, str]:
    """Bucket, collection with its schema, the records; returns (ids in id order, the id half-way,
    the `_since` timestamp half-way)."""
    _kinto(port, "PUT", "/buckets/bench", {"data": {}})
    _kinto(port, "PUT", "/buckets/bench/collections/people", {"data": {"schema": KINTO_SCHEMA}})
    stamps: list[int] = []
    for start in range(0, records, 500):
        batch = {
            "defaults": {"method": "POST", "path": "/buckets/bench/collections/people/records"},
            "requests": [{"body": {"data": record_data(i)}} for i in range(start, min(start + 500, records))],
        }
        for answer in _kinto(port, "POST", "/batch", batch)["responses"]:
            if answer["status"] != 201:
                sys.exit(f"Kinto refused a record while seeding: {answer}")
            stamps.append(answer["body"]["data"]["last_modified"])
    ids = kinto_ids(port)
    return ids, ids[len(ids) // 2], str(sorted(stamps)[len(stamps) // 2])


def kinto_ids(port: int) -> list[str]:
    ids: list[str] = []
    path = "/buckets/bench/collections/people/records?_fields=id&_sort=id&_limit=10000"
    while True:
        body = _kinto(port, "GET", path)
        ids += [r["id"] for r in body["data"]]
        if len(body["data"]) < 10000:
            return ids
        path = f"/buckets/bench/collections/people/records?_fields=id&_sort=id&_limit=10000&gt_id={ids[-1]}"


# --- Tessera ----------------------------------------------------------------------------------------


def tessera_seed(records: int, fields: list[dict], password: str) -> tuple[str, str, list[str], str, str]:
    """(host, live key, ids in id order, the id half-way, the event id half-way)."""
    from django.db import connection, connections

    from accounts.models import User
    from accounts.onboarding import workspace_signup
    from bench._pg import shared_migrate
    from billing.plans import Plan
    from partners.services import api_key_create
    from records.events import record_event_id
    from records.models import Change, ChangeCounter
    from records.services import collection_create, record_bulk_upsert
    from tenants.models import Tenant
    from tenants.runtime import public_context, workspace_context

    shared_migrate()
    tenant = workspace_signup(
        name="Bench", slug="bench", admin_email="admin@bench.test", admin_password=password
    ).tenant
    with public_context():
        Tenant.objects.filter(pk=tenant.pk).update(plan=Plan.ENTERPRISE)
    with workspace_context(tenant):
        admin = User.objects.get(email="admin@bench.test")
        people = collection_create(actor=admin, name="People", slug="people", fields=fields)
        ids: list[str] = []
        for start in range(0, records, 500):
            items = [{"data": record_data(i)} for i in range(start, min(start + 500, records))]
            ids += [r.record.id for r in record_bulk_upsert(actor=admin, collection=people, items=items)]
        _key, raw = api_key_create(
            actor=admin,
            name="bench",
            mode="live",
            scopes=["records:read", "records:write", "collections:read", "events:read"],
        )
        seqs = sorted(Change.objects.values_list("seq", flat=True))
        since = record_event_id(ChangeCounter.objects.get(pk=1).stream, seqs[len(seqs) // 2])
        with connection.cursor() as cursor:  # what autovacuum would do later: the planner's statistics
            cursor.execute("ANALYZE")
    connections.close_all()
    ids.sort()
    return tenant.host(), raw, ids, ids[len(ids) // 2], since


# --- the runs ---------------------------------------------------------------------------------------


def argparse_copy(args, **changes):
    import argparse

    return argparse.Namespace(**{**vars(args), **changes})


def main(args) -> None:
    from bench._pg import bench_database, database_create, database_drop, free_port
    from bench.api import run as bench

    ops = [op.strip() for op in args.ops.split(",") if op.strip()] if args.ops != "read,list,create" else OPS
    unknown = set(ops) - set(OPS)
    if unknown:
        sys.exit(f"unknown --ops {sorted(unknown)}; choose from {','.join(OPS)}")
    paced_rates = [float(rate) for rate in args.paced_rate.split(",") if float(rate) > 0][:1]
    workdir = Path(tempfile.mkdtemp(prefix="tessera-bench-kinto."))
    venv = kinto_venv()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        db = cleanup.enter_context(bench_database())
        os.environ["TESSERA_DATABASE_URL"] = db.url
        server_url = db.url.rsplit("/", 1)[0] + "/postgres"
        kinto_db = f"kinto_bench_{os.getpid()}"
        kinto_url = database_create(server_url, kinto_db)
        cleanup.callback(database_drop, server_url, kinto_db)
        import django

        django.setup()
        bench.machine(db.note + ("; durability turned on after seeding" if db.server else ""))
        kinto_version = subprocess.run(
            [str(venv / "bin/python"), "-c", "import kinto; print(kinto.__version__)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        say(f"Kinto {kinto_version} (gunicorn, its own venv {venv}); Redis: {os.environ['TESSERA_REDIS_URL']}")

        started = time.perf_counter()
        host, key, ids, deep_after, tessera_since = tessera_seed(args.records, bench.FIELDS, bench.PASSWORD)
        say(f"Tessera: workspace {host}, {len(ids):,} records seeded in {time.perf_counter() - started:.1f} s")
        ini = kinto_prepare(venv, kinto_url, workdir)
        kinto_port = free_port()
        kinto = kinto_start(venv, ini, kinto_port, args.workers, workdir / "kinto.log")
        cleanup.callback(bench.server_stop, kinto)
        started = time.perf_counter()
        kinto_ids_, kinto_deep_after, kinto_since = kinto_seed(kinto_port, args.records)
        with contextlib.closing(__import__("psycopg").connect(kinto_url, autocommit=True)) as conn:
            conn.execute("ANALYZE")
        say(f"Kinto: bucket bench, {len(kinto_ids_):,} records seeded in {time.perf_counter() - started:.1f} s")

        if db.server is not None:
            durability_on(server_url)
        files = {}
        for target, target_ids, context in (
            ("tessera", ids, {"deep_after": deep_after, "tessera_since": tessera_since}),
            ("kinto", kinto_ids_, {"deep_after": kinto_deep_after, "kinto_since": kinto_since}),
        ):
            (workdir / f"{target}.ids").write_text("\n".join(target_ids))
            (workdir / f"{target}.json").write_text(json.dumps(context))
            files[target] = (str(workdir / f"{target}.ids"), str(workdir / f"{target}.json"))

        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.api.settings", "PYTHONPATH": str(ROOT)}
        port = free_port()
        tessera = bench.server_start(port, args.workers, env, workdir / "server.log")
        cleanup.callback(bench.server_stop, tessera)
        servers = {"tessera": (tessera, port, host, key), "kinto": (kinto, kinto_port, "127.0.0.1", KINTO_USER)}

        def measured(op: str, target: str, rate: float = 0, settings=args) -> dict:
            server, target_port, target_host, target_key = servers[target]
            ids_file, context_file = files[target]
            before = bench.server_cpu_seconds(server), db.server.cpu_seconds() if db.server else 0.0
            cmd = [sys.executable, str(ROOT / "bench/api/load.py"), "--base", f"http://127.0.0.1:{target_port}"]
            cmd += ["--host", target_host, "--op", op, "--target", target, "--key", target_key]
            cmd += ["--ids", ids_file, "--context", context_file]
            cmd += ["--concurrency", str(settings.concurrency), "--seconds", str(settings.seconds)]
            if rate:
                cmd += ["--rate", str(rate / args.concurrency)]
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"load generator failed:\n{done.stderr[-3000:]}")
            run = json.loads(done.stdout.strip().splitlines()[-1])
            run["app_cpu"] = bench.server_cpu_seconds(server) - before[0]
            run["db_cpu"] = (db.server.cpu_seconds() if db.server else 0.0) - before[1]
            return run

        # Every worker process imports and warms up lazily on its first requests: not what is measured.
        warm = argparse_copy(args, seconds=1.0)
        for op in ops:
            for target in ("kinto", "tessera"):
                measured(op, target, settings=warm)
        results: dict[tuple[str, str], list[dict]] = {}
        say(
            f"\n== Load: {args.concurrency} clients, {args.rounds} rounds x {args.seconds:.0f} s per op and target, "
            f"{args.workers} server processes each"
        )
        for r in range(args.rounds):
            order = ["kinto", "tessera"] if r % 2 == 0 else ["tessera", "kinto"]
            for op in ops:
                for target in order:
                    results.setdefault((op, target), []).append(measured(op, target))
                for rate in paced_rates if r == 0 else []:
                    for target in order:
                        results.setdefault((f"{op} paced", target), []).append(measured(op, target, rate))
            say(f"  round {r + 1} done; load average {os.getloadavg()[0]:.2f}")

        say(f"\n== Results ({args.records:,} records each; closed loop at {args.concurrency} clients)")
        with_db = db.server is not None
        lines = []
        for op in ops:
            say(f"{op}:")
            theirs = bench.row("kinto", results[(op, "kinto")])
            ours = bench.row("tessera", results[(op, "tessera")])
            cpu_ratio = bench.cpu(ours) / bench.cpu(theirs) if bench.cpu(theirs) else float("nan")
            line = (
                f"  Tessera/Kinto: throughput {ours[0] / theirs[0]:.2f}x, CPU per request "
                f"{bench.cpu(ours):.2f} / {bench.cpu(theirs):.2f} ms = {cpu_ratio:.2f}x"
                + (f" (server {ours[3] / theirs[3]:.2f}x, PostgreSQL {ours[4] / theirs[4]:.2f}x)" if with_db else "")
            )
            say(line)
            paced = ""
            if (f"{op} paced", "tessera") in results:
                say(f"  paced at {paced_rates[0]:g} req/s in all:")
                paced_theirs = bench.row("kinto", results[(f"{op} paced", "kinto")])
                paced_ours = bench.row("tessera", results[(f"{op} paced", "tessera")])
                paced = (
                    f"p50 {paced_ours[1]:.1f}/{paced_theirs[1]:.1f} ms, "
                    f"p99 {paced_ours[2]:.1f}/{paced_theirs[2]:.1f} ms"
                )
            lines.append(
                f"| {op} | {ours[0] / theirs[0]:.2f}x | {bench.cpu(ours):.2f} / {bench.cpu(theirs):.2f} "
                f"({cpu_ratio:.2f}x) | {paced} |"
            )
        say(
            "\n| op | Tessera / Kinto throughput | CPU per request, Tessera / Kinto (ms) "
            "| paced p50, p99 Tessera/Kinto |"
        )
        say("|---|---|---|---|")
        for line in lines:
            say(line)
        say(f"\nload average at the end: {os.getloadavg()}")
