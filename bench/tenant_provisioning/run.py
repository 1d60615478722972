#!/usr/bin/env python
"""Tenant provisioning benchmark (SaaS runtime). Prints figures; never asserts.

    TESSERA_MODE=saas .venv/bin/python bench/tenant_provisioning/run.py [--clone-runs 20]
        [--migrate-runs 10] [--tenants 200] [--again-runs 10] [--repeat 3] [--no-stock]

Starts a private PostgreSQL (own data folder under /tmp, free port, fsync off) unless
TESSERA_BENCH_DATABASE_URL names a server; either way it works in a database of its own that it
creates (and, on a given server, drops afterwards). It never touches any other database. Then:
1. `migrate_schemas --shared`.
2. Provisioning, full set of tenant apps: CLONE (tenants.services.tenant_provision, the sign-up path:
   schema cloned from the migrated template) vs MIGRATE (the same steps, but the schema made the way
   django-tenants does without a template: CREATE SCHEMA + migrate_schemas for it).
3. `manage.py migrate_schemas --tenant` with nothing pending over --tenants schemas, as a subprocess,
   with Tessera's skipping executor and with django-tenants' stock one (TESSERA_STOCK_MIGRATE_EXECUTOR=1).
4. CLONE again with those tenants present (the clone reads catalogs that grow with every schema).
5. Peak RSS, load average and the machine.

See bench/tenant_provisioning/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "bench-Correct-horse-9417"


def say(text: str = "") -> None:
    print(text, flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p95 of 20 runs is the 19th fastest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def summary(values: list[float]) -> str:
    return (
        f"p50 {ms(statistics.median(values))}  p95 {ms(percentile(values, 95))}  "
        f"max {ms(max(values))}  mean {ms(statistics.fmean(values))}  (n={len(values)})"
    )


# --- the measurements -----------------------------------------------------------------------------


def provision_by_migrating(*, name: str, slug: str, admin_email: str, admin_password: str) -> tuple[float, float]:
    """tenant_provision's steps, with the schema created by migrations (django-tenants without a template).

    Not atomic as a whole: django-tenants' migrate closes the connection after each schema.
    Returns (total seconds, seconds spent creating the schema).
    """
    from django.conf import settings
    from django.db import transaction

    from accounts.services import user_create
    from audit.services import audit_event_record
    from rbac.roles import Role
    from tenants.backends import tenancy_backend
    from tenants.models import Domain, Tenant
    from tenants.runtime import public_context, workspace_context
    from tenants.services import tenant_slug_check

    started = time.perf_counter()
    backend = tenancy_backend()
    slug = tenant_slug_check(slug)
    with public_context():
        tenant = Tenant(schema_name=backend.schema_name_for(slug), name=name, slug=slug)
        tenant.save()  # auto_create_schema is off; create_schema below is what save() would do
        Domain.objects.create(domain=f"{slug}.{settings.TESSERA_BASE_DOMAIN}", tenant=tenant, is_primary=True)
        schema_started = time.perf_counter()
        tenant.create_schema(check_if_exists=False, sync_schema=True, verbosity=0)  # no TENANT_BASE_SCHEMA
        schema_seconds = time.perf_counter() - schema_started
    with workspace_context(tenant), transaction.atomic():
        admin = user_create(email=admin_email, password=admin_password, full_name="", role=Role.ADMIN)
        audit_event_record(
            action="workspace.created",
            actor=admin.as_actor(),
            target=tenant,
            changes={"after": {"name": tenant.name, "slug": slug, "plan": tenant.plan}},
        )
    return time.perf_counter() - started, schema_seconds


def clone_runs(runs: int, prefix: str) -> tuple[list[float], list[float]]:
    """`runs` timed tenant_provision calls, each on a fresh connection as a sign-up request would be.

    Run 0 warms up the process (imports, first queries) and is not counted.
    Returns (total seconds, seconds of the schema-clone step) per run.
    """
    from django.db import connection

    from tenants import services

    original = services._schema_clone
    clone_seconds: list[float] = []

    def timed_clone(source: str, target: str) -> None:
        started = time.perf_counter()
        original(source, target)
        clone_seconds.append(time.perf_counter() - started)

    services._schema_clone = timed_clone
    totals: list[float] = []
    try:
        for i in range(runs + 1):
            connection.close()
            result = services.tenant_provision(
                name=f"Clone bench {prefix} {i}", slug=f"{prefix}-{i:03d}", admin_email=f"admin@{prefix}{i}.test",
                admin_password=ADMIN_PASSWORD,
            )  # fmt: skip
            totals.append(result.seconds)
    finally:
        services._schema_clone = original
    return totals[1:], clone_seconds[1:]


def bench_provisioning(clone_count: int, migrate_count: int) -> None:
    from django.db import connection

    from tenants import services

    say("\n== 2. Provisioning with the full set of tenant apps (each run on a fresh database connection)")
    started = time.perf_counter()
    services.tenant_template_ensure()
    say(f"template schema created by migrations (once, before timing): {ms(time.perf_counter() - started)}")
    say("CLONE   = tenants.services.tenant_provision (tenant + domain rows, schema cloned from the template,")
    say("          first Admin with an Argon2 password, audit event; one transaction)")
    say("MIGRATE = the same steps, schema by CREATE SCHEMA + migrate_schemas (django-tenants without a template)")
    say("(one untimed warm-up run of each first)")

    totals, clone_schema = clone_runs(clone_count, "clone")
    say(f"CLONE   total          {summary(totals)}")
    say(f"        schema clone   {summary(clone_schema)}")

    migrate_totals: list[float] = []
    migrate_schema: list[float] = []
    for i in range(migrate_count + 1):  # run 0 is a warm-up, as above
        connection.close()
        total, schema = provision_by_migrating(
            name=f"Migrate bench {i}", slug=f"migr-{i:03d}", admin_email=f"admin@migr{i}.test",
            admin_password=ADMIN_PASSWORD,
        )  # fmt: skip
        if i:
            migrate_totals.append(total)
            migrate_schema.append(schema)
    say(f"MIGRATE total          {summary(migrate_totals)}")
    say(f"        schema migrate {summary(migrate_schema)}")
    say(
        f"ratio MIGRATE/CLONE: total p50 {statistics.median(migrate_totals) / statistics.median(totals):.2f}x, "
        f"p95 {percentile(migrate_totals, 95) / percentile(totals, 95):.2f}x; schema step alone "
        f"p50 {statistics.median(migrate_schema) / statistics.median(clone_schema):.2f}x"
    )
    clone_verdict(totals)


def clone_verdict(totals: list[float]) -> None:
    p95 = percentile(totals, 95)
    verdict = "meets" if p95 < 1 else "MISSES"
    say(f"target CLONE p95 < 1 s: {verdict} ({ms(p95)}, {tenants_existing()} tenants in the database)")


def tenants_existing() -> int:
    from tenants.models import Tenant
    from tenants.runtime import public_context

    with public_context():
        return Tenant.objects.exclude(schema_name="public").count()


def tenants_fill(count: int) -> int:
    """Clone schemas until `count` tenants (template included) exist; bare (no Admin): only schemas matter."""
    from django.conf import settings
    from django.db import transaction

    from tenants import services
    from tenants.backends import tenancy_backend
    from tenants.models import Domain, Tenant
    from tenants.runtime import public_context

    backend = tenancy_backend()
    template = services.tenant_template_ensure()
    with public_context():
        have = tenants_existing()
        started, made = time.perf_counter(), 0
        for i in range(have, count):
            slug = f"fill-{i:04d}"
            with transaction.atomic():
                tenant = Tenant.objects.create(schema_name=backend.schema_name_for(slug), name=slug, slug=slug)
                Domain.objects.create(domain=f"{slug}.{settings.TESSERA_BASE_DOMAIN}", tenant=tenant, is_primary=True)
                services._schema_clone(template.schema_name, tenant.schema_name)
            made += 1
        if made:
            seconds = time.perf_counter() - started
            say(f"cloned {made} more tenant schemas in {seconds:.1f} s ({ms(seconds / made)} each)")
        return tenants_existing()


def run_timed(cmd: list[str], env: dict[str, str]) -> tuple[float, int, int, str]:
    """Run a child to completion: (seconds, exit code, its peak RSS in KiB, its output).

    Peak RSS is the child's own VmHWM, polled from /proc: getrusage/wait4 figures for a child carry
    the parent's high-water mark over from fork.
    """
    with tempfile.TemporaryFile(mode="w+") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        peak_kib = 0
        while proc.poll() is None:
            with contextlib.suppress(OSError, StopIteration, ValueError), open(f"/proc/{proc.pid}/status") as f:
                peak_kib = max(peak_kib, int(next(line for line in f if line.startswith("VmHWM")).split()[1]))
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        out.seek(0)
        output = out.read()
    return seconds, proc.returncode, peak_kib, output


def bench_migrate_schemas(tenants: int, stock: bool, repeat: int) -> None:
    from django.conf import settings

    say(f"\n== 3. `manage.py migrate_schemas --tenant` with nothing pending, {tenants} tenants (subprocess)")
    count = tenants_fill(tenants)
    say(f"tenant schemas visited (template included): {count}")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("TESSERA_STOCK_MIGRATE_EXECUTOR", None)
    command = [sys.executable, "manage.py", "migrate_schemas", "--tenant", "--noinput"]
    startup, _rc, _rss, _tail = run_timed([sys.executable, "manage.py", "migrate_schemas", "--help"], env)
    say(f"process start-up + django.setup() (manage.py migrate_schemas --help): {startup:.2f} s")
    # Untimed: applies anything pending (another engineer may have added a migration to the tree
    # since this process loaded the code), so the timed runs below really have nothing to do.
    prep = run_timed(command, env)
    applied = prep[3].count("Applying ")
    say(f"untimed preparatory run: {prep[0]:.2f} s, exit code {prep[1]}, migrations applied: {applied}")
    say(
        "fit: runs over a single schema (fixed cost, 'one') and over all; per-tenant = (all - one) / (tenants - 1);"
        f" 1,000 = one + 999 × per-tenant; medians of {repeat} runs (the stock full run: 1)"
    )

    rows = [("skipping executor (ours)", env, repeat)]
    if stock:  # the full stock run is long enough to average out noise by itself
        rows.append(("stock django-tenants", {**env, "TESSERA_STOCK_MIGRATE_EXECUTOR": "1"}, 1))
    results = {}
    for label, run_env, full_runs in rows:
        ones = [run_timed([*command, f"--schema={settings.TESSERA_TEMPLATE_SCHEMA}"], run_env) for _ in range(repeat)]
        fulls = [run_timed(command, run_env) for _ in range(full_runs)]
        failed = next((run for run in ones + fulls if run[1]), None)
        if failed:
            say(f"{label}: exit code {failed[1]}\n{failed[3][-2000:]}")
            continue
        if any("Applying " in run[3] for run in ones + fulls):
            say(f"{label}: WARNING a migration was applied during a timed run (the tree changed): figures invalid")
        one = statistics.median(run[0] for run in ones)
        seconds = statistics.median(run[0] for run in fulls)
        rss = max(run[2] for run in ones + fulls)
        per_tenant = max(seconds - one, 0) / max(count - 1, 1)
        at_1000 = one + per_tenant * 999
        results[label] = at_1000
        skipped = next((line for line in reversed(fulls[-1][3].strip().splitlines()) if "skipped" in line), "")
        say(
            f"{label:25} all {count}: {seconds:6.2f} s  one: {one:5.2f} s  {per_tenant * 1000:6.1f} ms/tenant  "
            f"-> 1,000 tenants ≈ {at_1000:6.1f} s  (child peak RSS {rss / 1024:.0f} MiB)"
        )
        runs_all, runs_one = (" ".join(f"{run[0]:.2f}" for run in runs) for runs in (fulls, ones))
        say(f"{'':25} each run, s: all {runs_all}; one {runs_one}")
        if skipped:
            say(f"{'':25} its output: {skipped.strip()}")
    if len(results) == 2:
        ours, theirs = results.values()
        say(f"at 1,000 tenants the skipping executor is {theirs / ours:.0f}x faster")
    if results:
        ours = next(iter(results.values()))
        say(
            f"target < 30 s for 1,000 tenants with nothing pending: {'meets' if ours < 30 else 'MISSES'} ({ours:.1f} s)"
        )


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_report(database_note: str) -> None:
    from django.db import connection

    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    mem = ""
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        mem = f", {kib / 1024 / 1024:.1f} GiB RAM"
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
        cursor.execute("SHOW fsync")
        fsync = cursor.fetchone()[0]
    from importlib.metadata import version

    import django
    import django_tenants  # noqa: F401  (version from metadata)

    say("== Machine")
    say(f"nproc {len(os.sched_getaffinity(0))} (cpu_count {os.cpu_count()}), CPU: {model}{mem}")
    say(
        f"Python {platform.python_version()}, Django {django.get_version()}, "
        f"django-tenants {version('django-tenants')}, PostgreSQL {pg_version} (fsync={fsync})"
    )
    say(database_note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clone-runs", type=int, default=20, help="timed CLONE provisionings (default 20)")
    parser.add_argument("--migrate-runs", type=int, default=10, help="timed MIGRATE provisionings (default 10)")
    parser.add_argument("--tenants", type=int, default=200, help="tenants for the migrate_schemas run (default 200)")
    parser.add_argument("--again-runs", type=int, default=10, help="timed CLONE runs with --tenants present (10)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each migrate_schemas timing (default 3)")
    parser.add_argument("--no-stock", action="store_true", help="skip the stock django-tenants baseline (slow)")
    args = parser.parse_args()

    if os.environ.setdefault("TESSERA_MODE", "saas") != "saas":
        sys.exit("This benchmark needs TESSERA_MODE=saas (PostgreSQL schemas).")
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("TESSERA_LOG_LEVEL", "WARNING")  # no log line per provisioned tenant

    bench_started = time.perf_counter()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the private server is still stopped
    from bench._pg import bench_database

    with bench_database() as db:
        os.environ["TESSERA_DATABASE_URL"] = db.url

        import django

        django.setup()

        machine_report(db.note)
        load_at_start = load_average()
        busy = os.getloadavg()[0] > len(os.sched_getaffinity(0))
        say(f"load average (1/5/15 min): {load_at_start}" + ("  <- busy machine: figures inflated" if busy else ""))
        say("\n== 1. Shared schema")
        started = time.perf_counter()
        from bench._pg import shared_migrate

        shared_migrate()
        say(f"migrate_schemas --shared: {time.perf_counter() - started:.2f} s")

        bench_provisioning(args.clone_runs, args.migrate_runs)
        bench_migrate_schemas(args.tenants, stock=not args.no_stock, repeat=args.repeat)

        count = tenants_existing()
        say(f"\n== 4. CLONE again, now with {count} tenants in the database (catalog size matters to the clone)")
        totals, clone_schema = clone_runs(args.again_runs, "again")
        say(f"CLONE   total          {summary(totals)}")
        say(f"        schema clone   {summary(clone_schema)}")
        clone_verdict(totals)

        say("\n== 5. Memory and load")
        say(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        say(f"load average at the end (1/5/15 min): {load_average()}; at the start: {load_at_start}")
        say(f"wall time of the whole benchmark: {time.perf_counter() - bench_started:.0f} s")
        from django.db import connections

        connections.close_all()


if __name__ == "__main__":
    main()
