"""A live Tessera server (or two) and real RxDB clients against it: the fixtures of the sync tests
that run RxDB (tests/sync/test_rxdb_*.py), registered for them in tests/sync/conftest.py.

The clients are npm `rxdb` (memory storage, plugin replication-websocket) in a Node process
(tests/sync/rxdb/driver.mjs, pinned in package.json, installed by ./test.sh). The server is uvicorn
with the production settings on the test database (tests/live_server.py), so everything the server
must see is committed: made through its HTTP API (pairing, REST writes, console revoke) or committed
from a thread of this process (`Live.committed`), and removed again when the module ends.

Between each client and the server sits a TCP proxy inside the driver: `offline` drops the
connection and refuses new ones (a phone out of coverage); the client's own reconnect brings it back.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.conftest import host_of
from tests.live_server import database_env, is_test_database, start_server, test_databases_missing
from tests.sync.rxdb_harness import RxDriver, rows_as_the_spine_writes, wait_until

FIELDS = [
    {"key": "title", "type": "text"},
    {"key": "notes", "type": "text"},
    {"key": "qty", "type": "integer"},
]
INITIAL_RECORDS = 10_000
# The spine's bulk upsert costs 30+ queries and an audit event per record (12-28 ms each here): 10,000
# would take minutes. The first SPINE_SEEDED records go through it; the rest are inserted in bulk as
# exactly the rows it writes (tests/sync/rxdb_harness.py: rows_as_the_spine_writes).
SPINE_SEEDED = 200
CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


# --- the live server and committed data --------------------------------------------------------------


@pytest.fixture(scope="session")
def rx_database(django_db_setup, django_db_blocker):
    """The test database even when no test of this run asks for `db` (as tests/browser does)."""
    from django.test.utils import setup_databases, teardown_databases

    missing = test_databases_missing()
    if not missing:
        yield
        return
    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, aliases=missing)
    yield
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=0)


@dataclass
class Live:
    server: Any
    tenant: Any
    blocker: Any
    env_db: dict
    base_domain: str
    collections: list = field(default_factory=list)
    device_ids: list = field(default_factory=list)
    workdirs: list = field(default_factory=list)
    api_key: str = ""
    counter_before: int = 0
    others: list = field(default_factory=list)  # further server processes (second_server)
    links: list = field(default_factory=list)

    # committed ORM work, in a thread with its own connection, inside the tenant
    def committed(self, fn, *args, **kwargs):
        outcome: dict[str, Any] = {}

        def target():
            from django.db import connections

            from tenants.runtime import workspace_context

            try:
                with workspace_context(self.tenant):
                    outcome["value"] = fn(*args, **kwargs)
            except BaseException as exc:
                outcome["error"] = exc
            finally:
                connections.close_all()

        with self.blocker.unblock():
            thread = threading.Thread(target=target, name="rxdb-commit")
            thread.start()
            thread.join(timeout=120)
        if thread.is_alive():
            raise TimeoutError("the committed database call did not finish within 120 s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("value")

    @property
    def host(self) -> str:
        return host_of(self.tenant)

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.server.port}",
            headers={"Host": f"{self.host}:{self.server.port}"},
            trust_env=False,
            timeout=30,
        )

    @staticmethod
    def admin():
        from accounts.models import User

        return User.objects.get(email="admin@alpha.test")

    def collection(self, slug: str, *, records: int = 0) -> str:
        """A committed collection `slug` with `records` records made by the write spine's bulk upsert."""

        def make():
            from records.services import collection_create, record_bulk_upsert

            admin = self.admin()
            collection = collection_create(actor=admin, name=slug.title(), slug=slug, fields=FIELDS)
            self.collections.append(collection.pk)
            by_spine = min(records, SPINE_SEEDED)
            if by_spine:
                items = [{"data": {"title": f"Job {n}", "qty": n}} for n in range(by_spine)]
                results = record_bulk_upsert(actor=admin, collection=collection, items=items)
                assert all(r.status == "created" for r in results)
            if records > by_spine:
                rows_as_the_spine_writes(admin, collection, range(by_spine, records))
            return slug

        return self.committed(make)

    def pair(self, name: str, role: str = "manager") -> dict:
        """A device paired the way a phone pairs: POST /sync/v1/pair with a code from the console."""

        def start():
            from sync.services import pairing_start

            admin = self.admin()
            return pairing_start(actor=admin, user=admin, role=role).code

        code = self.committed(start)
        with self.http() as http:
            response = http.post("/sync/v1/pair", json={"code": code, "name": name, "client_version": "rxdb/17.6.0"})
        assert response.status_code == 201, f"{response.text[:300]}\n--- server log ---\n{self.server.log_tail(40)}"
        body = response.json()
        self.device_ids.append(body["device"]["id"])
        return {"token": body["token"], "url": body["websocket_url"] + "?token=" + body["token"], **body["device"]}

    def rest(self, method: str, path: str, **kwargs) -> httpx.Response:
        if not self.api_key:

            def make_key():
                from partners.services import api_key_create

                return api_key_create(
                    actor=self.admin(), name="rxdb harness", mode="live", scopes=["records:read", "records:write"]
                )

            self.api_key = self.committed(make_key)[1]
        with self.http() as http:
            return http.request(method, "/api/v1" + path, headers={"Authorization": f"Bearer {self.api_key}"}, **kwargs)

    def server_docs(self, slug: str) -> dict[str, dict]:
        """The server's live records of `slug` as the documents a phone must end up with."""

        def read():
            from records.models import Record
            from sync.documents import document_of

            records = Record.objects.filter(collection__slug=slug, collection__deleted_at=None, livemode=True)
            docs = {}
            for record in records.filter(deleted_at=None):
                doc = document_of(record)
                doc.pop("_deleted")
                docs[record.id] = doc
            return docs

        return self.committed(read)

    def revoke(self, device_id: int) -> None:
        """Revoke from the console, as an Admin would: log in, open the confirmation page, submit it."""
        with self.console() as go:
            page = go("GET", f"/devices/{device_id}/revoke/")
            assert page.status_code == 200, (page.headers.get("location"), page.text[:500])
            token = CSRF_RE.search(page.text).group(1)
            response = go("POST", f"/devices/{device_id}/revoke/", data={"csrfmiddlewaretoken": token})
        assert response.status_code == 302, response.text[:500]

    @contextmanager
    def console(self, server=None):
        """A logged-in Admin's console session on `server` (default: the first process): yields
        go(method, path, **httpx kwargs) that carries the session cookie."""
        from tests.conftest import ADMIN_PASSWORD

        def password_hash(value: str | None = None) -> str:
            # The test settings hash with MD5, which the server's production settings do not accept:
            # for the duration of this log-in the admin's password is hashed as production hashes it.
            from django.contrib.auth.hashers import PBKDF2PasswordHasher

            from accounts.models import User

            user = self.admin()
            before = user.password
            new = value or PBKDF2PasswordHasher().encode(ADMIN_PASSWORD, "rxdbharness", iterations=1000)
            User.objects.filter(pk=user.pk).update(password=new)
            return before

        original = self.committed(password_hash)
        try:
            with self.http_to(server or self.server) as http:
                cookies: dict[str, str] = {}

                def go(method: str, path: str, **kwargs) -> httpx.Response:
                    header = "; ".join(f"{k}={v}" for k, v in cookies.items())
                    response = http.request(method, path, headers={"Cookie": header}, **kwargs)
                    cookies.update(dict(response.cookies.items()))
                    return response

                self._console_login(go, cookies)
                yield go
        finally:
            self.committed(password_hash, original)

    @staticmethod
    def _console_login(go, cookies) -> None:
        from django.conf import settings

        from tests.conftest import ADMIN_PASSWORD

        login = go("GET", "/accounts/login/")
        response = go(
            "POST",
            "/accounts/login/",
            data={
                "csrfmiddlewaretoken": CSRF_RE.search(login.text).group(1),
                "username": "admin@alpha.test",
                "password": ADMIN_PASSWORD,
            },
        )
        assert response.status_code == 302 and settings.SESSION_COOKIE_NAME in cookies, re.findall(
            r'(?s)class="[^"]*(?:error|alert)[^"]*"[^>]*>(.{0,300})', response.text
        )

    def second_server(self, *, slow_link: bool = False):
        """Another server process of the same deployment (same database, same Redis and channel-layer
        prefix): a load balancer may send each request or socket to either. `slow_link`: it reaches
        Redis through a SlowLink (`server.redis_link`), to slow down what it publishes.
        SaaS only: the desktop edition is one process by design (its channel layer is in memory)."""
        env = dict(self.env_db)
        link = None
        if slow_link:
            link = SlowLink(os.environ["TESSERA_REDIS_URL"])
            self.links.append(link)
            env["TESSERA_REDIS_URL"] = link.url
        server = start_server(env, self.base_domain)
        server.redis_link = link
        self.others.append(server)
        self.workdirs.append(server.workdir)
        return server

    def http_to(self, server) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{server.port}",
            headers={"Host": f"{self.host}:{server.port}"},
            trust_env=False,
            timeout=30,
        )

    def rest_to(self, server, method: str, path: str, **kwargs) -> httpx.Response:
        """A REST call handled by `server` (one process of the deployment)."""
        self.rest("GET", "/collections")  # makes the key once
        with self.http_to(server) as http:
            return http.request(method, "/api/v1" + path, headers={"Authorization": f"Bearer {self.api_key}"}, **kwargs)

    def restart(self, *, while_down=None) -> None:
        """Stop the server, run `while_down()`, start it again on the same port."""
        port = self.server.port
        self.server.stop()
        if while_down is not None:
            while_down()
        self.server = start_server(self.env_db, self.base_domain, port=port)
        self.workdirs.append(self.server.workdir)

    def cleanup(self) -> None:
        """Leave the test database as the other tests of this worker expect it: no records, changes,
        collections, devices or keys of ours (audit events stay: they cannot be deleted)."""

        def clean():
            from partners.models import ApiKey
            from records.models import ChangeCounter, Collection, Record
            from sync.models import Device, PairingCode

            for pk in self.collections:
                Record.objects.filter(collection_id=pk).delete()
                Collection.objects.filter(pk=pk).delete()  # its changes go with it (cascade)
            PairingCode.objects.filter(device_id__in=self.device_ids).delete()
            Device.objects.filter(pk__in=self.device_ids).delete()
            ApiKey.objects.filter(name="rxdb harness").delete()
            ChangeCounter.objects.filter(pk=1).update(value=self.counter_before)

        self.committed(clean)


class SlowLink:
    """A TCP proxy to Redis that, once `delay` is set, holds every chunk a server process sends to
    Redis that many seconds (in order): a process whose network to Redis has become slow, so what it
    publishes arrives after another process's later publishes. Answers come back at once."""

    def __init__(self, redis_url: str):
        parsed = urlparse(redis_url)
        self.target = (parsed.hostname or "127.0.0.1", parsed.port or 6379)
        self.delay = 0.0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        threading.Thread(target=self._run, name="slow-redis-link", daemon=True).start()
        self.ready.wait(10)
        self.url = parsed._replace(netloc=f"127.0.0.1:{self.port}").geturl()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _accept(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pipe(reader, up_writer, slow=True), self._pipe(up_reader, writer, slow=False), return_exceptions=True
        )

    async def _pipe(self, reader, writer, *, slow: bool) -> None:
        queue: asyncio.Queue = asyncio.Queue()

        async def later() -> None:
            while True:
                due, chunk = await queue.get()
                await asyncio.sleep(max(0.0, due - self.loop.time()))
                if chunk is None:
                    writer.close()
                    return
                writer.write(chunk)
                await writer.drain()

        sender = self.loop.create_task(later())
        try:
            while chunk := await reader.read(65536):
                queue.put_nowait((self.loop.time() + (self.delay if slow else 0.0), chunk))
        finally:
            queue.put_nowait((self.loop.time(), None))
            await sender

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def _plan_restore(workspace, plan: str, django_db_blocker) -> None:
    with django_db_blocker.unblock():
        type(workspace).objects.filter(pk=workspace.pk).update(plan=plan)
    workspace.plan = plan


@pytest.fixture(scope="module")
def live(rx_database, django_db_blocker, request):
    from django.conf import settings
    from django.db import connection

    # Only now, with the test database in place (a session fixture would otherwise come first).
    tenants_provisioned = request.getfixturevalue("tenants_provisioned")
    if not is_test_database(connection.settings_dict):
        raise RuntimeError(f"Refusing to serve a non-test database: {connection.settings_dict['NAME']}")
    # Its own channel-layer prefix: another xdist worker's sync tests use the same Redis and the same
    # group names (tenant alpha, small ids), and must not reach this server's devices.
    env_db = {**database_env(connection), "TESSERA_CHANNELS_PREFIX": f"rxdb{os.getpid()}"}
    base_domain = getattr(settings, "TESSERA_BASE_DOMAIN", "")
    # These tests pair more phones than the Free plan's 5 (tests/sync/test_plan_limits.py tests that
    # limit): the module's workspace is on the Enterprise plan, set before the server reads it.
    alpha = tenants_provisioned["alpha"]
    plan_before = alpha.plan
    with django_db_blocker.unblock():
        type(alpha).objects.filter(pk=alpha.pk).update(plan="enterprise")
    alpha.plan = "enterprise"
    request.addfinalizer(lambda: _plan_restore(alpha, plan_before, django_db_blocker))
    server = start_server(env_db, base_domain)
    state = Live(
        server, tenants_provisioned["alpha"], django_db_blocker, env_db, base_domain, workdirs=[server.workdir]
    )

    def counter():
        from records.models import ChangeCounter

        row = ChangeCounter.objects.filter(pk=1).first()
        return row.value if row else 0

    state.counter_before = state.committed(counter)
    try:
        yield state
    finally:
        state.server.stop()
        for other in state.others:
            other.stop()
        for link in state.links:
            link.close()
        try:
            state.cleanup()
        finally:
            for workdir in state.workdirs:
                if workdir is not None:
                    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def rx():
    driver = RxDriver()
    yield driver
    driver.close()


def open_clients(
    rx: RxDriver, live: Live, slug: str, names: list[str], *, on: dict | None = None, **options
) -> dict[str, dict]:
    """Pair one device per name and open its RxDB client (on the server process `on[name]` if given);
    returns {name: open result} once each has finished its initial pull."""
    devices = {name: live.pair(name) for name in names}
    on = on or {}
    seqs = {
        name: rx.send(
            "open",
            name=name,
            url=url_on(devices[name], on[name]) if name in on else devices[name]["url"],
            collection=slug,
            fields=FIELDS,
            **options,
        )
        for name in names
    }
    opened = {}
    for name, seq in seqs.items():
        try:
            opened[name] = {**rx.result(seq, timeout=120), "device": devices[name]}
        except Exception as exc:
            raise AssertionError(f"{exc}\n--- server log ---\n{live.server.log_tail(60)}") from exc
    return opened


def converged(rx: RxDriver, live: Live, slug: str, names: list[str], timeout: float = 20) -> dict[str, dict]:
    """Wait until every client holds exactly the server's records; returns the server's documents."""
    last: dict[str, Any] = {}

    def same() -> dict | None:
        expected = live.server_docs(slug)
        for name in names:
            docs = rx.call("dump", name=name)["docs"]
            if docs != expected:
                last.update(name=name, expected=expected, got=docs)
                return None
        return expected

    try:
        return wait_until(same, timeout=timeout, interval=0.25, what="all clients to converge on the server's state")
    except AssertionError:
        expected, got = last.get("expected", {}), last.get("got", {})
        diff = {
            key: {"server": expected.get(key), "client": got.get(key)}
            for key in sorted(set(expected) | set(got))
            if expected.get(key) != got.get(key)
        }
        try:
            state = rx.call("inspect", name=last.get("name"))
            if os.environ.get("TESSERA_RXDB_TRACE_SDK") == "1":  # what the SDK client did, step by step
                path = Path(tempfile.gettempdir()) / f"rxdb-trace-{last.get('name')}.json"
                path.write_text(json.dumps({"diff": diff, **rx.call("trace", name=last.get("name"))}, indent=1))
        except Exception as exc:  # the report must not hide the difference
            state = repr(exc)
        raise AssertionError(
            f"client {last.get('name')} differs from the server in {len(diff)} documents: {list(diff.items())[:5]}"
            f"\nits replication: {state}"
        ) from None


class _FormInputs(HTMLParser):
    """The named inputs of a page's forms and their values (text inputs, hidden inputs, textareas)."""

    def __init__(self):
        super().__init__()
        self.values: dict[str, str] = {}
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name") and a.get("type", "text") not in ("checkbox", "radio", "submit"):
            self.values.setdefault(a["name"], a.get("value") or "")
        elif tag == "textarea" and a.get("name"):
            self._textarea = a["name"]
            self.values[a["name"]] = ""

    def handle_data(self, data):
        if self._textarea:
            self.values[self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = None


def console_record_edit(go, slug: str, record_id: str, changes: dict) -> httpx.Response:
    """Edit a record in the console as a person would: open its page, change fields, save."""
    path = f"/records/{slug}/r/{record_id}/"
    page = go("GET", path)
    if page.status_code != 200:
        return page  # not there (deleted, or not synced yet): the caller decides
    form = _FormInputs()
    form.feed(page.text)
    data = {**form.values, **{f"f-{k}": str(v) for k, v in changes.items()}}  # RecordForm's prefix
    return go("POST", path, data=data)


def url_on(device: dict, server) -> str:
    """The device's socket URL on another server process of the deployment."""
    return re.sub(r":\d+/", f":{server.port}/", device["url"], count=1)


def record_ids(live: Live, slug: str, n: int) -> list[str]:
    return sorted(live.server_docs(slug))[:n]
