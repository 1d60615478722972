"""Fixtures for webhook tests: a real HTTP receiver on 127.0.0.1, committed workspaces, and real Celery
worker processes on a real broker (a private redis-server in SaaS, the desktop's filesystem broker on
the desktop).

The receiver is on loopback, which the SSRF guard refuses: tests that deliver to it put 127.0.0.1 on
the explicit allow-list (TESSERA_OUTBOUND_ALLOWED_HOSTS); tests/webhooks/test_ssrf.py checks the guard
with an empty one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import SAAS
from tests.live_server import REPO_ROOT, database_env, free_port, test_databases_missing

LOOPBACK_ALLOWED = "127.0.0.1,::1/128"


# --- the receiver -----------------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() on arrival
    peer: tuple = ()  # the client's (address, port): one per connection

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0


class Receiver:
    """A threaded http.server on 127.0.0.1 that records every request. `replies` (a list, used in
    order, the last one repeating) or `reply_for(path)` choose the answers."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.replies: list[Reply] = [Reply()]
        self._lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                reply = receiver._reply()
                if reply.delay:
                    time.sleep(reply.delay)
                with receiver._lock:
                    receiver.received.append(
                        Received(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            time.time(),
                            tuple(self.client_address),
                        )
                    )
                    receiver._lock.notify_all()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # a killed worker hangs up mid-request
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _reply(self) -> Reply:
        with self._lock:
            return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def wait_for(self, count: int, timeout: float = 30.0, predicate: Callable[[list[Received]], int] | None = None):
        """Wait until `count` requests arrived (or `predicate(received)` reaches count)."""
        measure = predicate or len
        deadline = time.monotonic() + timeout
        with self._lock:
            while measure(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"Only {measure(self.received)} of {count} webhook requests arrived")
                self._lock.wait(min(left, 0.5))
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def loopback_allowed(settings):
    """Deliveries in this test may go to the receiver on 127.0.0.1."""
    settings.TESSERA_OUTBOUND_ALLOWED_HOSTS = LOOPBACK_ALLOWED.split(",")


# --- committed workspaces (for worker processes, which cannot see a test's open transaction) ------------


@dataclass
class Workspace:
    tenant: object
    admin: object
    created_slug: str | None = None  # SaaS: a throwaway tenant to drop


def _workspace_new(tenants_provisioned) -> Workspace:
    from accounts.models import User
    from accounts.onboarding import workspace_signup
    from billing.plans import Plan
    from rbac.roles import Role
    from tenants.models import Tenant
    from tenants.runtime import workspace_context

    if SAAS:
        slug = "wh-" + uuid.uuid4().hex[:8]
        tenant = workspace_signup(
            name="Webhooks live",
            slug=slug,
            admin_email=f"admin@{slug}.test",
            admin_password=None,
            plan=Plan.ENTERPRISE,
        ).tenant
    else:
        tenant, slug = tenants_provisioned["alpha"], None
        Tenant.objects.filter(pk=tenant.pk).update(plan=Plan.ENTERPRISE)
    with workspace_context(tenant):
        admin = User.objects.filter(role=Role.ADMIN, is_active=True).order_by("pk").first()
    return Workspace(tenant=tenant, admin=admin, created_slug=slug)


def _workspace_drop(ws: Workspace, plan_before=None) -> None:
    from records.models import Change, Collection, Record
    from tenants.models import Tenant
    from tenants.runtime import workspace_context
    from tenants.services import tenant_drop
    from webhooks.models import Endpoint, Event

    if ws.created_slug:
        tenant_drop(tenant=ws.tenant)
        return
    with workspace_context(ws.tenant):  # desktop: remove what the test committed to the one workspace
        Endpoint.objects.all().delete()
        Event.objects.all().delete()
        slugs = Collection.objects.filter(slug__startswith="whk").values("pk")
        Change.objects.filter(collection__in=slugs).delete()
        Record.objects.filter(collection__in=slugs).delete()
        Collection.objects.filter(slug__startswith="whk").delete()
    if plan_before is not None:
        Tenant.objects.filter(pk=ws.tenant.pk).update(plan=plan_before)


@pytest.fixture(scope="session")
def webhooks_test_database(request, django_db_setup, django_db_blocker):
    """The test database even when only worker tests were collected (pytest-django creates it only
    for tests using `db`; these commit, so they cannot). As tests/browser does; never the real one."""
    from django.test.utils import setup_databases, teardown_databases

    missing = test_databases_missing()
    if not missing:
        yield
        return
    with django_db_blocker.unblock():
        keepdb = bool(request.config.getoption("reuse_db", False))
        config = setup_databases(verbosity=0, interactive=False, aliases=missing, keepdb=keepdb)
    yield
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=0, keepdb=keepdb)


@pytest.fixture
def committed_workspace(
    webhooks_test_database, django_db_blocker, tenants_provisioned
) -> Iterator[Callable[[], Workspace]]:
    """committed_workspace() -> a Workspace whose writes commit (SaaS: a new tenant, dropped after;
    desktop: the one workspace, cleaned after). Use inside `with django_db_blocker.unblock()`."""
    made: list[tuple[Workspace, object]] = []
    with django_db_blocker.unblock():
        plan_before = tenants_provisioned["alpha"].plan

        def make() -> Workspace:
            ws = _workspace_new(tenants_provisioned)
            made.append((ws, plan_before))
            return ws

        yield make
        for ws, plan in made:
            _workspace_drop(ws, plan)


# --- brokers and workers ------------------------------------------------------------------------------------


class RedisServer:
    """A private redis-server on a free port (no persistence): it can be stopped and started again."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url, socket_timeout=1).ping()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@dataclass
class Broker:
    """Where the test process and its workers meet."""

    workdir: Path
    redis: RedisServer | None = None

    @property
    def queue_dir(self) -> Path:
        return self.workdir / "queue"

    def worker_env(self) -> dict[str, str]:
        if self.redis is not None:
            # The broker is private; the cache is the test process's own, as web processes and workers
            # share one in production (webhooks.tasks: wake-up flags).
            from django.conf import settings

            return {"TESSERA_REDIS_URL": settings.REDIS_URL, "TESSERA_CELERY_BROKER_URL": self.redis.url}
        return {"TESSERA_DATA_DIR": str(self.workdir)}  # desktop: the queue folder lives in the data folder

    def app_conf(self) -> dict:
        if self.redis is not None:
            return {"broker_url": self.redis.url, "broker_transport_options": {"max_retries": 0}}
        from django.conf import settings

        options = dict(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
        options.update(
            data_folder_in=str(self.queue_dir),
            data_folder_out=str(self.queue_dir),
            control_folder=str(self.workdir / "queue-control"),
            polling_interval=0.05,
        )
        return {"broker_transport_options": options}


def _celery_pools_reset(app) -> None:
    """Connections to the old broker closed and forgotten: the app's pool, its producer pool, and
    kombu's registry of producer pools, which hands a pool back by broker URL (a producer pool made
    before the switch would come back, on a closed connection pool, once the URL is the same again)."""
    import kombu.pools

    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    with contextlib.suppress(AttributeError, KeyError):
        app.__dict__["amqp"]._producer_pool = None
    kombu.pools.reset()


@contextlib.contextmanager
def celery_pointed_at(broker: Broker) -> Iterator[None]:
    """Point this process's Celery app (which sends the on-commit tasks) at the test's broker."""
    from config.celery_app import app

    conf = broker.app_conf()
    before = {k: app.conf.get(k) for k in conf}
    app.conf.update(conf)
    _celery_pools_reset(app)
    try:
        yield
    finally:
        app.conf.update(before)
        _celery_pools_reset(app)


class Worker:
    """A real `celery worker` process (with embedded beat for the sweeper), in its own process group."""

    def __init__(self, broker: Broker, workdir: Path, connection, *, concurrency: int = 2, extra_env=None):
        self.broker, self.workdir, self.concurrency = broker, workdir, concurrency
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            **database_env(connection),
            **broker.worker_env(),
            "TESSERA_OUTBOUND_ALLOWED_HOSTS": LOOPBACK_ALLOWED,
            "TESSERA_WEBHOOK_HTTPS_REQUIRED": "0",
            "TESSERA_WEBHOOK_SWEEP_SECONDS": "1",
            "TESSERA_WEBHOOK_SWEEP_GRACE_SECONDS": "2",
            "TESSERA_WEBHOOK_LOCK_SECONDS": "5",
            "TESSERA_LOG_FORMAT": "text",
            **(extra_env or {}),
        }
        from django.conf import settings

        self.env["TESSERA_SECRET_KEY"] = settings.SECRET_KEY  # same key → same secrets-at-rest key
        self.process: subprocess.Popen | None = None
        self.log_path = workdir / f"worker-{uuid.uuid4().hex[:6]}.log"
        self.starts = 0

    def start(self, timeout: float = 60.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        pool = ["--pool=prefork", f"--concurrency={self.concurrency}"] if SAAS else ["--pool=solo"]
        args = [
            sys.executable, "-m", "celery", "-A", "config.celery_app", "worker", *pool,
            "-B", "-s", str(self.workdir / "beat-schedule"),
            "--without-heartbeat", "--without-gossip", "--without-mingle",
            "-n", f"webhooks-test-{uuid.uuid4().hex[:6]}@localhost", "-l", "INFO",
        ]  # fmt: skip
        log = open(self.log_path, "a")  # noqa: SIM115 (kept open by the child)
        if not SAAS:
            from desktop.broker import queue_recover

            queue_recover(self.broker.queue_dir)  # what the app does before its worker starts
        self.process = subprocess.Popen(
            args, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"The worker exited ({self.process.returncode}):\n{self.log_tail()}")
            if self.log_path.read_text(errors="replace").count(" ready.") >= self.starts:
                return
            time.sleep(0.1)
        raise RuntimeError(f"The worker did not start in {timeout:.0f} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """kill -9 the worker and its pool processes."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        """Warm shutdown (SIGTERM to the main process only: it stops its pool itself)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def log_tail(self, lines: int = 80) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@pytest.fixture
def broker(tmp_path) -> Iterator[Broker]:
    """SaaS: a private redis-server (so parallel test processes never share a queue); desktop: a
    filesystem-broker folder of this test's own."""
    workdir = tmp_path / "broker"
    workdir.mkdir()
    if SAAS:
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is needed for the webhook worker tests")
        redis_server = RedisServer(tmp_path / "redis")
        redis_server.start()
        b = Broker(workdir, redis_server)
    else:
        from desktop.broker import Transport

        Transport.global_state.clear()
        b = Broker(workdir)
    with celery_pointed_at(b):
        yield b
    if b.redis is not None:
        b.redis.stop()


@pytest.fixture
def worker_for(broker, tmp_path, django_db_blocker) -> Iterator[Callable[..., Worker]]:
    """worker_for(**kw) -> a started Worker on `broker` against the test database."""
    from django.db import connection

    workers: list[Worker] = []

    def make(**kwargs) -> Worker:
        with django_db_blocker.unblock():
            w = Worker(broker, tmp_path / "worker", connection, **kwargs)
        w.start()
        workers.append(w)
        return w

    yield make
    for w in workers:
        w.stop()
