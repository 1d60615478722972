"""A database of its own for a benchmark: a private PostgreSQL server, or a fresh database on a given one.

    with bench_database() as db:
        os.environ["TESSERA_DATABASE_URL"] = db.url
        say(db.note)

Without TESSERA_BENCH_DATABASE_URL it starts a private PostgreSQL (initdb in its own folder under /tmp, a
free port on 127.0.0.1, durability off: fsync, synchronous_commit and full_page_writes), creates a
database in it and stops the server and removes the folder afterwards. With TESSERA_BENCH_DATABASE_URL
it creates a database of its own on that server and drops it afterwards. Nothing else is touched.
Used by bench/tenant_provisioning/run.py, bench/console_records.py and bench/api/run.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DURABILITY_OFF = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


def pg_bin_dir() -> str:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name.split(".")[0]))
    if found:
        return str(found[-1])
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return os.path.dirname(pg_ctl)
    sys.exit("PostgreSQL server binaries not found (apt-get install postgresql, or set TESSERA_BENCH_DATABASE_URL)")


def _as_pg(*cmd: str) -> list[str]:
    """initdb and the server refuse to run as root: run them as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivatePostgres:
    """A throw-away PostgreSQL server (the same recipe as test.sh)."""

    def __init__(self, *, settings: str = "") -> None:
        self.bin = pg_bin_dir()
        self.dir = tempfile.mkdtemp(prefix="tessera-bench.")
        self.settings = f"{DURABILITY_OFF} -c max_connections=200 {settings}".strip()
        self.started = False
        self.port = 0

    def start(self) -> str:
        """Start the server; returns the URL of its `postgres` database."""
        os.chmod(self.dir, 0o755)
        data, sock = f"{self.dir}/pg", f"{self.dir}/sock"
        for path in (data, sock):
            os.mkdir(path)
            if os.geteuid() == 0:
                shutil.chown(path, "postgres", "postgres")
        initdb = [f"{self.bin}/initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"]
        subprocess.run(_as_pg(*initdb), check=True, stdout=subprocess.DEVNULL)
        for _attempt in range(3):  # another process may take the free port before the server binds it
            self.port = free_port()
            opts = f"-p {self.port} -k {sock} -c listen_addresses=127.0.0.1 {self.settings}"
            done = subprocess.run(
                _as_pg(f"{self.bin}/pg_ctl", "-D", data, "-l", f"{sock}/pg.log", "-w", "-o", opts, "start"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if done.returncode == 0:
                self.started = True
                return f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        sys.exit(f"Could not start PostgreSQL; see {sock}/pg.log")

    def cpu_seconds(self) -> float:
        """CPU the server has used so far: the postmaster, its live processes and every exited backend
        (a backend per connection; the kernel adds an exited child's time to its parent's)."""
        pid = int(Path(f"{self.dir}/pg/postmaster.pid").read_text().split()[0])
        total = process_cpu_seconds(pid, children=True)
        for child in child_pids(pid):
            total += process_cpu_seconds(child)
        return total

    def stop(self) -> None:
        if self.started:
            subprocess.run(
                _as_pg(f"{self.bin}/pg_ctl", "-D", f"{self.dir}/pg", "-m", "immediate", "stop"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)


def process_cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU of a process (plus its reaped children's with children=True); 0 once gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def child_pids(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def database_create(server_url: str, name: str) -> str:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server_url.rsplit("/", 1)[0] + "/" + name


def database_drop(server_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@dataclass
class BenchDatabase:
    url: str  # of the benchmark's own database
    note: str  # one line saying where it lives, for the report
    server: PrivatePostgres | None  # None on a given server


@contextlib.contextmanager
def bench_database(*, server_settings: str = "") -> Iterator[BenchDatabase]:
    """A database of the benchmark's own; cleaned up after.

    `server_settings`: extra `-c name=value` options for a private server (ignored for a given one).
    """
    name = f"tessera_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    given = os.environ.get("TESSERA_BENCH_DATABASE_URL")
    server = None
    try:
        if given:
            server_url = given
            note = f"database: given server (TESSERA_BENCH_DATABASE_URL), own database {name}, dropped after"
        else:
            server = PrivatePostgres(settings=server_settings)
            server_url = server.start()
            note = (
                f"database: private PostgreSQL on 127.0.0.1:{server.port} in {server.dir} with fsync=off, "
                "synchronous_commit=off, full_page_writes=off (durability off: figures are CPU cost, not disk)"
            )
        yield BenchDatabase(database_create(server_url, name), note, server)
    finally:
        if given:
            for dropped in (name, f"{name}_directory"):  # the directory beside it, if shared_migrate made one
                try:
                    database_drop(given, dropped)
                except Exception as exc:  # report, do not mask the benchmark's own error
                    print(f"(could not drop {dropped}: {exc})", flush=True)
        if server is not None:
            server.stop()


def shared_migrate() -> None:
    """Migrate what a fresh SaaS deployment migrates before any sign-up: the shared schema and, when the
    directory is on (SaaS), its database. With no TESSERA_DIRECTORY_DATABASE_URL the directory is the
    server's `<name>_directory` beside the benchmark's database (created here, dropped by bench_database)."""
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
    if "directory" not in settings.DATABASES:  # the desktop: one cell, no directory
        return
    if not os.environ.get("TESSERA_DIRECTORY_DATABASE_URL"):
        import psycopg

        url = os.environ["TESSERA_DATABASE_URL"]
        with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            name = settings.DATABASES["directory"]["NAME"]
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                database_create(url, name)
    call_command("migrate", database="directory", interactive=False, verbosity=0)  # sign-up reserves slugs there
