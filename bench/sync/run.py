#!/usr/bin/env python
"""Phone sync with real RxDB clients: initial-pull throughput and fan-out latency, against RxDB's own
reference server as the baseline. Prints figures; never asserts.

    TESSERA_MODE=saas .venv/bin/python bench/sync/run.py [--devices 200] [--records 100000] [--writes 40]
        [--batch 2000,10000]
    TESSERA_MODE=desktop .venv/bin/python bench/sync/run.py [--devices 200]

1. A database of its own (SaaS: bench/_pg.py, Redis db TESSERA_REDIS_URL — default db 14 — for the
   channel layer; desktop: a temporary data folder, in-memory channel layer), a workspace with two
   collections: `bulk` (--records records, bulk-inserted as the write spine's rows) and `live` (20);
   then ANALYZE, as autovacuum would have by the time a phone pulls a collection filled earlier.
2. The server: uvicorn with the production settings, --workers processes (SaaS default 2, so fan-out
   crosses processes through Redis; the desktop has one).
3. The clients: npm `rxdb` 17.6 (memory storage, the stock replicateWithWebsocketServer; 12 per Node
   process, RxDB's limit) and protocol-level websocket clients (spread over --raw-processes more Node
   processes: one Node thread reading a thousand sockets' frames in turn would time itself), driven by
   tests/sync/rxdb/driver.mjs, each its own paired device.
   - initial pull: for each --batch size (documents a request: the client's own option), one
     protocol-level client (no storage: the server's side) and then one stock RxDB client (which notes
     no per-document arrival times, as an app would not) pull `bulk` from scratch: records/s;
   - fan-out: --devices clients replicate `live`; --writes REST PATCHes (sent from the Node process, so
     the send time and every receipt share one clock), one every --interval s; latency to the document
     being in each client's collection, p50/p99/max over (write, device), measured from the commit
     (SaaS: `published_at`, stamped on the change's channel message by the on-commit publisher and
     read here from Redis; desktop: the change's `updated_at`, stamped just before the commit), from
     the PATCH's answer and from sending it; from the commit also per kind of client.
   - memory: server RSS (all uvicorn processes) before and after the devices connect, per connection;
   - idle: the devices connected, doing nothing, for --idle-seconds: server CPU and (SaaS) database
     transactions a second, what their heartbeats cost (TESSERA_SYNC_HEARTBEAT_SECONDS, 25 s).
   - fan-out for 1,000 devices across two server processes: `--devices 1000` (SaaS: --workers 2).
     What the light (protocol-level) clients leave out: they keep no RxDB storage (a received document is
     noted, not written into a collection), never push, reconnect or resolve a conflict; they offer
     permessage-deflate as npm ws and browsers do (--no-deflate: not); all clients run on the same
     machine as the server, over loopback (no network latency or loss; their CPU competes with the
     server's, so on a small machine the figures are an upper bound of the server's own latency).
4. Baseline: RxDB's reference server (startWebsocketServer, Node, memory storage, no auth, no merge, no
   persistence) with the same collections, the same clients, writes made on its database directly.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
MODE = os.environ.get("TESSERA_MODE", "desktop")
SAAS = MODE == "saas"
PASSWORD = "bench-Correct-horse-9417"
FIELDS = [{"key": "title", "type": "text"}, {"key": "qty", "type": "integer"}]
LIVE_RECORDS = 20


def say(text: str = "") -> None:
    print(text, flush=True)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_seconds(pids: list[int]) -> float:
    from bench._pg import process_cpu_seconds

    return sum(process_cpu_seconds(pid) for pid in pids)


def db_transactions() -> int | None:
    """Transactions committed in the bench database so far (SaaS), or None (SQLite keeps no count)."""
    if not SAAS:
        return None
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def connected_idle(server, seconds: float, devices: int) -> None:
    """The devices connected and doing nothing: what their heartbeats cost the server and the database,
    in two halves (the first still holds the checkpoints saved after the devices' first pulls)."""
    pids = server_pids(server)
    marks = [(cpu_seconds(pids), db_transactions(), time.monotonic())]
    for _half in range(2):
        time.sleep(seconds / 2)
        marks.append((cpu_seconds(pids), db_transactions(), time.monotonic()))
    halves = []
    for (cpu0, tx0, t0), (cpu1, tx1, t1) in itertools.pairwise(marks):
        database = "" if tx0 is None else f", database {(tx1 - tx0 - 1) / (t1 - t0):.1f} transactions/s"
        halves.append(f"server CPU {100 * (cpu1 - cpu0) / (t1 - t0):.1f} % of one core{database}")
    say(f"  {devices} devices connected, idle {seconds:.0f} s: first half {halves[0]}; second half {halves[1]}")


# --- the workspace ------------------------------------------------------------------------------------


def workspace_seed(records: int, devices: int) -> dict:
    from django.core.management import call_command
    from django.db import connections

    from accounts.models import User
    from partners.services import api_key_create
    from records.services import collection_create, record_bulk_upsert
    from sync.services import pairing_exchange, pairing_start
    from tenants.runtime import workspace_context
    from tests.sync.rxdb_harness import rows_as_the_spine_writes

    if SAAS:
        from accounts.onboarding import workspace_signup
        from bench._pg import shared_migrate
        from billing.plans import Plan
        from tenants.models import Tenant
        from tenants.runtime import public_context

        shared_migrate()
        tenant = workspace_signup(
            name="Sync bench", slug="syncbench", admin_email="admin@bench.test", admin_password=PASSWORD
        ).tenant
        with public_context():
            Tenant.objects.filter(pk=tenant.pk).update(plan=Plan.ENTERPRISE)
        tenant.refresh_from_db()  # the plan just set (Enterprise: devices unlimited), not sign-up's Free
    else:
        from accounts.services import user_create
        from rbac.roles import Role
        from tenants.services import tenant_single_ensure

        call_command("migrate", interactive=False, verbosity=0)
        tenant = tenant_single_ensure(name="Sync bench")
        with workspace_context(tenant):
            user_create(email="admin@bench.test", password=PASSWORD, full_name="Bench Admin", role=Role.ADMIN)
    with workspace_context(tenant):
        admin = User.objects.get(email="admin@bench.test")
        bulk = collection_create(actor=admin, name="Bulk", slug="bulk", fields=FIELDS)
        for start in range(0, records, 20_000):
            rows_as_the_spine_writes(admin, bulk, range(start, min(start + 20_000, records)))
        live = collection_create(actor=admin, name="Live", slug="live", fields=FIELDS)
        items = [{"data": {"title": f"Live {n}", "qty": n}} for n in range(LIVE_RECORDS)]
        live_ids = [r.record.id for r in record_bulk_upsert(actor=admin, collection=live, items=items)]
        _key, api_key = api_key_create(actor=admin, name="bench", mode="live", scopes=["records:read", "records:write"])
        tokens = []
        for n in range(devices + 1):
            started = pairing_start(actor=admin, user=admin, role="manager")
            tokens.append(
                pairing_exchange(tenant=tenant, code=started.code, name=f"bench {n}", client_version="rxdb")[1]
            )
        # Planner statistics, as autovacuum keeps them for a table filled before today (without them
        # PostgreSQL sorts every remaining row of the bulk collection for each page it is asked).
        with connections["default"].cursor() as cursor:
            cursor.execute("ANALYZE")
    connections.close_all()
    return {
        "host": tenant.host(),
        "api_key": api_key,
        "tokens": tokens,
        "live_ids": live_ids,
        "schema": tenant.schema_name,
        "live_collection_id": live.pk,
    }


# --- servers --------------------------------------------------------------------------------------


def server_start(port: int, workers: int, env: dict, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--no-access-log", "--loop", "uvloop", "--http", "httptools", "--log-level", "warning", "--lifespan", "off"]
    if workers > 1:
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
    sys.exit(f"server did not answer /health within 60 s; see {log}")


def server_pids(proc: subprocess.Popen) -> list[int]:
    from bench._pg import child_pids

    return [proc.pid, *child_pids(proc.pid)]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Reference:
    """RxDB's reference server (tests/sync/rxdb/refserver.mjs) in a Node process of its own."""

    def __init__(self, collection: str, records: int):
        from tests.sync.rxdb_harness import HARNESS_DIR

        self.port = free_port()
        self.process = subprocess.Popen(
            ["node", "refserver.mjs", str(self.port), collection, str(records)],
            cwd=HARNESS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        self.seq = 0
        ready = json.loads(self.process.stdout.readline())
        assert ready.get("ready"), ready

    def patch(self, record_id: str, values: dict) -> dict:
        self.seq += 1
        self.process.stdin.write(json.dumps({"seq": self.seq, "id": record_id, "set": values}) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.terminate()
        self.process.wait(timeout=10)


# --- measurements -----------------------------------------------------------------------------------


def raw_pull(rx, url: str, records: int, batch: int) -> float:
    result = rx.call("pullRaw", reply_timeout=600, url=url, collection="bulk", batchSize=batch)
    assert result["count"] == records, result
    return records / result["ms"] * 1000


def initial_pull(rx, url: str, records: int, batch: int) -> float:
    result = rx.call(
        "open",
        reply_timeout=600,
        name="pull",
        url=url,
        collection="bulk",
        fields=FIELDS,
        batchSize=batch,
        stock=True,
        proxy=False,
        timeout=600_000,
        track=False,  # the bench notes no per-document arrival times here, as an app would not
    )
    assert result["count"] == records, result
    rx.call("close", name="pull")
    return records / result["ms"] * 1000


def sdk_pull(rx, url: str, records: int) -> float:
    """The initial pull of one RxDB client through the client SDK (clients/js) with its defaults."""
    result = rx.call(
        "open",
        reply_timeout=600,
        name="sdk-pull",
        url=url,
        collection="bulk",
        fields=FIELDS,
        sdk=True,
        proxy=False,
        timeout=600_000,
        track=False,
    )
    assert result["count"] == records, result
    rx.call("close", name="sdk-pull")
    return records / result["ms"] * 1000


RXDB_PER_PROCESS = 12  # RxDB's open core allows 13 open collections per JS process (error COL23)


def connect_all(urls: list[str], rxdb_devices: int, raw_processes: int = 1, deflate: bool = True) -> list[tuple]:
    """The first `rxdb_devices` devices are RxDB clients (12 per Node process), the rest protocol-level
    websocket clients spread over `raw_processes` more Node processes (one Node thread parsing a
    thousand sockets' frames one after another would time itself). Returns [(driver, [names])]."""
    from tests.sync.rxdb_harness import RxDriver

    groups: list[tuple] = []
    rxdb_urls, raw_urls = urls[:rxdb_devices], urls[rxdb_devices:]
    for start in range(0, len(rxdb_urls), RXDB_PER_PROCESS):
        groups.append((RxDriver(), "open", rxdb_urls[start : start + RXDB_PER_PROCESS], f"rx{start}-"))
    share = math.ceil(len(raw_urls) / max(1, raw_processes)) if raw_urls else 0
    for start in range(0, len(raw_urls), share or 1):
        groups.append((RxDriver(), "openRaw", raw_urls[start : start + share], f"raw{start}-"))
    out = []
    for driver, cmd, group_urls, prefix in groups:
        names = [f"{prefix}{n}" for n in range(len(group_urls))]
        for start in range(0, len(names), 50):  # 50 at a time: a crowd arriving, not one thundering herd
            seqs = [
                driver.send(
                    cmd,
                    name=names[n],
                    url=group_urls[n],
                    collection="live",
                    fields=FIELDS,
                    batchSize=100,
                    stock=True,
                    proxy=False,
                    timeout=180_000,
                    deflate=deflate,
                )
                for n in range(start, min(start + 50, len(names)))
            ]
            for seq in seqs:
                result = driver.result(seq, timeout=300)
                assert result["count"] == LIVE_RECORDS, result
        out.append((driver, names))
    return out


class CommitTimes:
    """When each change was committed, on the wall clock (epoch ms), by `id@version`.

    SaaS: the time the server's on-commit publisher stamped on the change's channel-layer message
    (`published_at`), read by a subscriber of the collection group's Redis channel in this process.
    Desktop (in-memory layer, nothing to listen to): the change's `updated_at` from the REST answer,
    stamped inside the transaction just before it commits — so those latencies are a little longer."""

    def __init__(self, ws: dict):
        self.times: dict[str, float] = {}
        self.pubsub = None
        if SAAS:
            import msgpack
            import redis

            prefix = os.environ.get("TESSERA_CHANNELS_PREFIX", "asgi")
            channel = f"{prefix}__group__sync.{ws['schema']}.{ws['live_collection_id']}"
            self.pubsub = redis.Redis.from_url(os.environ["TESSERA_REDIS_URL"]).pubsub(ignore_subscribe_messages=True)
            self.pubsub.subscribe(channel)

            def listen():
                try:
                    for item in self.pubsub.listen():
                        message = msgpack.unpackb(item["data"])
                        result = json.loads(message["result"]) if "result" in message else None
                        (doc,) = result["documents"] if result else [message["document"]]
                        self.times[f"{doc['id']}@{doc['version']}"] = message["published_at"] * 1000
                except Exception:  # closed at the end of the run
                    return

            threading.Thread(target=listen, name="commit-times", daemon=True).start()

    def noted(self, record_id: str, version: int, answer: dict) -> float:
        key = f"{record_id}@{version}"
        if self.pubsub is None:
            from datetime import datetime

            return datetime.fromisoformat(answer["updated_at"]).timestamp() * 1000
        deadline = time.monotonic() + 10
        while key not in self.times and time.monotonic() < deadline:
            time.sleep(0.001)
        return self.times[key]

    def close(self) -> None:
        if self.pubsub is not None:
            self.pubsub.close()


def fan_out(groups: list[tuple], ids: list[str], writes: int, interval: float, write) -> dict[str, list]:
    """`write(n, record_id)` -> (sent at, version, call ms, committed at on the wall clock or None);
    returns latencies (ms) from sending the write, from its answer, from its commit (each device's
    arrival time), and the write calls' own times."""
    out: dict[str, list] = {"sent": [], "answered": [], "committed": [], "calls": [], "rxdb": [], "raw": []}
    for n in range(writes):
        record_id = ids[n % len(ids)]
        sent, version, call_ms, committed = write(n, record_id)
        out["calls"].append(call_ms)
        seqs = [
            (driver, names[0], driver.send("arrival", names=names, id=record_id, version=version, timeout=60_000))
            for driver, names in groups
        ]
        for driver, first_name, seq in seqs:
            reply = driver.result(seq, timeout=120)
            arrived = reply["at"].values()
            out["sent"] += [at - sent for at in arrived]
            out["answered"] += [at - sent - call_ms for at in arrived]
            if committed is not None:  # the driver's clock is the wall clock + reply["clock"]
                latencies = [at - (committed + reply["clock"]) for at in arrived]
                out["committed"] += latencies
                out["rxdb" if first_name.startswith("rx") else "raw"] += latencies
        time.sleep(interval)
    return out


def frame_cost(cpu: float, wall: float, args) -> float:
    """Server CPU per live frame delivered (µs): all of the server's CPU over the fan-out (the writes
    themselves included: they are what a write to devices costs) over writes × devices."""
    frames = args.writes * args.devices
    say(
        f"  server CPU over the fan-out: {100 * cpu / wall:.0f} % of one core for {wall:.0f} s; "
        f"{cpu / frames * 1e6:.0f} us per frame delivered ({args.writes} writes x {args.devices} devices)"
    )
    return cpu / frames * 1e6


def close_all(groups: list[tuple]) -> None:
    for driver, _names in groups:
        driver.close()


def line(label: str, values: list[float]) -> str:
    return (
        f"  {label:<34} p50 {statistics.median(values):7.1f} ms   p99 {percentile(values, 99):7.1f} ms   "
        f"max {max(values):7.1f} ms   n={len(values)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--rxdb-devices", type=int, default=24, help="how many of the devices are RxDB clients")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", default="2000", help="pull batch sizes (the client's option), comma-separated")
    parser.add_argument("--writes", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--workers", type=int, default=2 if SAAS else 1)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--raw-processes", type=int, default=4, help="Node processes the protocol-level clients are spread over"
    )
    parser.add_argument(
        "--no-deflate", action="store_true", help="protocol-level clients do not offer permessage-deflate"
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=60.0, help="devices connected and idle: heartbeat cost (0: skip)"
    )
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batch.split(",")]

    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("TESSERA_SECRETS_KEY", "bench-secrets-key")  # production settings need one
    os.environ.setdefault("TESSERA_SECRET_KEY", secrets.token_urlsafe(40))
    os.environ["TESSERA_LOG_FORMAT"] = "text"
    os.environ["TESSERA_RATE_LIMIT_SCALE"] = "1000"
    workdir = Path(tempfile.mkdtemp(prefix="tessera-bench-sync."))
    try:
        if SAAS:
            from bench._pg import bench_database

            os.environ.setdefault("TESSERA_REDIS_URL", "redis://127.0.0.1:6379/14")
            with bench_database() as db:
                os.environ["TESSERA_DATABASE_URL"] = db.url
                run(args, workdir, db.note)
        else:
            os.environ["TESSERA_DATA_DIR"] = str(workdir / "data")
            run(args, workdir, f"database: SQLite in {workdir / 'data'}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(args, workdir: Path, note: str) -> None:
    import django

    django.setup()
    from tests.sync.rxdb_harness import RxDriver

    rxdb_devices = min(args.rxdb_devices, args.devices)
    say(
        f"== Phone sync, {MODE} runtime: {args.devices} devices ({rxdb_devices} RxDB 17.6 clients, "
        f"{RXDB_PER_PROCESS} per Node process; the rest protocol-level ws clients), {args.records} records to pull"
    )
    say(f"nproc {len(os.sched_getaffinity(0))}, load average now {os.getloadavg()}; {note}")
    started = time.monotonic()
    ws = workspace_seed(args.records, args.devices)
    say(f"seeded in {time.monotonic() - started:.1f} s")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    server = server_start(port, args.workers, env, workdir / "server.log")
    tessera: dict = {}
    groups: list[tuple] = []
    try:
        base = f"ws://{ws['host']}:{port}/sync/v1/?token="
        say(f"server: uvicorn, {args.workers} process(es), port {port}")
        rx = RxDriver()
        try:
            for batch in args.batches:
                raw = raw_pull(rx, base + ws["tokens"][-1], args.records, batch)
                say(f"  initial pull over the wire alone (no RxDB storage), batch {batch}: {raw:,.0f} records/s")
                pull = initial_pull(rx, base + ws["tokens"][-1], args.records, batch)
                say(
                    f"  initial pull of {args.records} records by one RxDB client, batch {batch}: {pull:,.0f} records/s"
                )
                tessera.setdefault("raw", raw)
                tessera.setdefault("pull", pull)
            sdk = sdk_pull(rx, base + ws["tokens"][-1], args.records)
            say(f"  initial pull of {args.records} records through the client SDK, its defaults: {sdk:,.0f} records/s")
        finally:
            rx.close()
        time.sleep(1)
        before = rss_mb(server_pids(server))
        started = time.monotonic()
        groups = connect_all(
            [base + token for token in ws["tokens"][: args.devices]],
            rxdb_devices,
            args.raw_processes,
            deflate=not args.no_deflate,
        )
        connect_s = time.monotonic() - started
        time.sleep(2)
        after = rss_mb(server_pids(server))
        say(f"  {args.devices} devices connected and pulled in {connect_s:.1f} s")
        say(
            f"  server RSS {before:.0f} MB -> {after:.0f} MB: "
            f"{(after - before) * 1024 / args.devices:.0f} KB per connection"
        )
        if args.idle_seconds:
            connected_idle(server, args.idle_seconds, args.devices)
        writer = groups[0][0]
        commits = CommitTimes(ws)

        def tessera_write(n: int, record_id: str):
            reply = writer.call(
                "rest",
                port=port,
                host=f"{ws['host']}:{port}",
                method="PATCH",
                path=f"/api/v1/collections/live/records/{record_id}",
                headers={"Authorization": f"Bearer {ws['api_key']}"},
                body={"data": {"title": f"write {n}"}},
            )
            assert reply["status"] == 200 and reply["body"]["version"] > 1, reply
            version = reply["body"]["version"]
            committed = commits.noted(record_id, version, reply["body"])
            return reply["started"], version, reply["finished"] - reply["started"], committed

        pids = server_pids(server)
        cpu0, wall0 = cpu_seconds(pids), time.monotonic()
        try:
            fan = fan_out(groups, ws["live_ids"], args.writes, args.interval, tessera_write)
        finally:
            commits.close()
        tessera["frame_us"] = frame_cost(cpu_seconds(pids) - cpu0, time.monotonic() - wall0, args)
        tessera["fan"] = fan["sent"]
        committed_label = "commit (published)" if SAAS else "change stamped (pre-commit)"
        say(line(f"fan-out, {committed_label} -> device", fan["committed"]))
        for kind, label in (("rxdb", "RxDB clients"), ("raw", "protocol-level clients")):
            if fan[kind]:
                say(line(f"  of which {label}", fan[kind]))
        say(line("fan-out, PATCH answered -> device", fan["answered"]))
        say(line("fan-out, REST PATCH sent -> device", fan["sent"]))
        say(line("the REST PATCH itself", fan["calls"]))
    except BaseException:
        log = workdir / "server.log"
        say(f"--- server log (tail) ---\n{log.read_text(errors='replace')[-4000:] if log.exists() else ''}")
        raise
    finally:
        close_all(groups)
        stop(server)

    if args.no_baseline:
        return
    say(
        "\n== Baseline: RxDB's reference server "
        "(Node, memory storage; no auth, merge, persistence or fan-out across processes)"
    )
    ref = Reference("bulk", args.records)
    rx = RxDriver()
    baseline: dict = {}
    try:
        for batch in args.batches:
            raw = raw_pull(rx, f"ws://127.0.0.1:{ref.port}/", args.records, batch)
            say(f"  initial pull over the wire alone, batch {batch}: {raw:,.0f} records/s")
            pull = initial_pull(rx, f"ws://127.0.0.1:{ref.port}/", args.records, batch)
            say(f"  initial pull of {args.records} records by one RxDB client, batch {batch}: {pull:,.0f} records/s")
            baseline.setdefault("raw", raw)
            baseline.setdefault("pull", pull)
    finally:
        rx.close()
        ref.close()
    ref = Reference("live", LIVE_RECORDS)
    groups = []
    try:
        groups = connect_all(
            [f"ws://127.0.0.1:{ref.port}/"] * args.devices,
            rxdb_devices,
            args.raw_processes,
            deflate=not args.no_deflate,
        )
        ids = [f"r{n:07d}" for n in range(LIVE_RECORDS)]

        def reference_write(n: int, record_id: str):
            reply = ref.patch(record_id, {"title": f"write {n}"})
            return reply["started"], reply["version"], reply["finished"] - reply["started"], None

        cpu0, wall0 = cpu_seconds([ref.process.pid]), time.monotonic()
        fan = fan_out(groups, ids, args.writes, args.interval, reference_write)
        baseline["frame_us"] = frame_cost(cpu_seconds([ref.process.pid]) - cpu0, time.monotonic() - wall0, args)
        baseline["fan"] = fan["sent"]
        say(line("fan-out, write done -> device", fan["answered"]))
        say(line("fan-out, write started -> device", fan["sent"]))
    finally:
        close_all(groups)
        ref.close()
    say(f"\n== Tessera / reference (load average now {os.getloadavg()})")
    say(f"  initial pull throughput, wire alone (batch {args.batches[0]}): {tessera['raw'] / baseline['raw']:.2f}x")
    say(f"  initial pull throughput, RxDB client: {tessera['pull'] / baseline['pull']:.2f}x")
    say(f"  server CPU per live frame delivered: {tessera['frame_us'] / baseline['frame_us']:.2f}x")
    for label, pct in (("p50", 50), ("p99", 99)):
        ratio = percentile(tessera["fan"], pct) / percentile(baseline["fan"], pct)
        say(f"  fan-out {label} (from the write's start): {ratio:.2f}x")


if __name__ == "__main__":
    main()
