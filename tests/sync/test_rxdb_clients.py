"""Real RxDB clients against a live Tessera server: the phone-sync promise, end to end.

The clients are npm `rxdb` (memory storage, plugin replication-websocket) in a Node process
(tests/sync/rxdb/driver.mjs, pinned in package.json, installed by ./test.sh). The server is uvicorn
with the production settings on the test database (tests/live_server.py), so everything the server
must see is committed: made through its HTTP API (pairing, REST writes, console revoke) or committed
from a thread of this process (`Live.committed`), and removed again when the module ends.

Between each client and the server sits a TCP proxy inside the driver: `offline` drops the
connection and refuses new ones (a phone out of coverage); the client's own reconnect brings it back.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import host_of
from tests.live_server import database_env, is_test_database, start_server
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


# --- the live server and committed data --------------------------------------------------------------


@pytest.fixture(scope="session")
def rx_database(django_db_setup, django_db_blocker):
    """The test database even when no test of this run asks for `db` (as tests/browser does)."""
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    if is_test_database(connection.settings_dict):
        yield
        return
    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, aliases={"default"})
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

        from tests.conftest import ADMIN_PASSWORD

        csrf_re = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')

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
            self._revoke_in_console(device_id, csrf_re)
        finally:
            self.committed(password_hash, original)

    def _revoke_in_console(self, device_id: int, csrf_re) -> None:
        from django.conf import settings

        from tests.conftest import ADMIN_PASSWORD

        with self.http() as http:
            cookies: dict[str, str] = {}

            def go(method: str, path: str, **kwargs) -> httpx.Response:
                header = "; ".join(f"{k}={v}" for k, v in cookies.items())
                response = http.request(method, path, headers={"Cookie": header}, **kwargs)
                cookies.update(dict(response.cookies.items()))
                return response

            login = go("GET", "/accounts/login/")
            response = go(
                "POST",
                "/accounts/login/",
                data={
                    "csrfmiddlewaretoken": csrf_re.search(login.text).group(1),
                    "username": "admin@alpha.test",
                    "password": ADMIN_PASSWORD,
                },
            )
            assert response.status_code == 302 and settings.SESSION_COOKIE_NAME in cookies, re.findall(
                r'(?s)class="[^"]*(?:error|alert)[^"]*"[^>]*>(.{0,300})', response.text
            )
            page = go("GET", f"/devices/{device_id}/revoke/")
            assert page.status_code == 200, (page.headers.get("location"), page.text[:500])
            response = go(
                "POST",
                f"/devices/{device_id}/revoke/",
                data={"csrfmiddlewaretoken": csrf_re.search(page.text).group(1)},
            )
        assert response.status_code == 302, response.text[:500]

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


def open_clients(rx: RxDriver, live: Live, slug: str, names: list[str], **options) -> dict[str, dict]:
    """Pair one device per name and open its RxDB client; returns {name: open result} once each has
    finished its initial pull."""
    devices = {name: live.pair(name) for name in names}
    seqs = {
        name: rx.send("open", name=name, url=devices[name]["url"], collection=slug, fields=FIELDS, **options)
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
        raise AssertionError(
            f"client {last.get('name')} differs from the server in {len(diff)} documents: {list(diff.items())[:5]}"
        ) from None


def record_ids(live: Live, slug: str, n: int) -> list[str]:
    return sorted(live.server_docs(slug))[:n]


# --- the tests ------------------------------------------------------------------------------------


def test_initial_pull_of_10000_records_then_live_changes_and_deletes_both_ways(live, rx):
    slug = live.collection("rx-pull", records=INITIAL_RECORDS)
    devices = {name: live.pair(name) for name in ("stock", "phone")}
    # "stock" is RxDB's own replicateWithWebsocketServer, untouched; "phone" adds a reply timeout.
    seqs = {
        name: rx.send(
            "open",
            name=name,
            url=devices[name]["url"],
            collection=slug,
            fields=FIELDS,
            batchSize=1000,
            stock=name == "stock",
        )
        for name in devices
    }
    opened = {name: rx.result(seq, timeout=120) for name, seq in seqs.items()}
    assert opened["stock"]["count"] == INITIAL_RECORDS
    assert opened["phone"]["count"] == INITIAL_RECORDS
    server = converged(rx, live, slug, ["stock", "phone"])
    assert len(server) == INITIAL_RECORDS

    first, second, third = record_ids(live, slug, 3)
    # A REST write reaches both phones.
    response = live.rest(
        "PATCH", f"/collections/{slug}/records/{first}", json={"data": {"title": "Changed on the web"}}
    )
    assert response.status_code == 200, response.text
    for name in ("stock", "phone"):
        rx.call("wait", name=name, id=first, fields={"title": "Changed on the web", "version": 2})
    # A REST delete removes the record from both phones.
    assert live.rest("DELETE", f"/collections/{slug}/records/{second}").status_code in (200, 204)
    for name in ("stock", "phone"):
        rx.call("wait", name=name, gone=second)
    # A phone's edit and a phone's delete reach the server and the other phone.
    rx.call("patch", name="phone", id=third, set={"notes": "seen on site", "qty": 7})
    rx.call("wait", name="stock", id=third, fields={"notes": "seen on site", "qty": 7})
    rx.call("remove", name="phone", id=first)
    rx.call("wait", name="stock", gone=first)
    assert live.rest("GET", f"/collections/{slug}/records/{first}").status_code == 404
    assert live.rest("GET", f"/collections/{slug}/records/{third}").json()["data"]["notes"] == "seen on site"
    server = converged(rx, live, slug, ["stock", "phone"])
    assert len(server) == INITIAL_RECORDS - 2


def test_offline_edits_on_two_phones_merge_and_all_converge(live, rx):
    slug = live.collection("rx-merge", records=4)
    names = ["alice", "bob", "carol"]  # carol stays online and only watches
    open_clients(rx, live, slug, names, batchSize=100)
    r1, r2, r3, r4 = record_ids(live, slug, 4)

    for name in ("alice", "bob"):
        rx.call("offline", name=name)
    # Different fields of the same record: both edits are kept.
    rx.call("patch", name="alice", id=r1, set={"title": "Alice's title"})
    rx.call("patch", name="bob", id=r1, set={"notes": "Bob's note"})
    # The same field: the first write to reach the server wins (sync/replication.py).
    rx.call("patch", name="alice", id=r2, set={"qty": 100})
    rx.call("patch", name="bob", id=r2, set={"qty": 200})
    # A delete against an edit: the delete wins.
    rx.call("remove", name="alice", id=r3)
    rx.call("patch", name="bob", id=r3, set={"title": "Bob edits what Alice deleted"})
    # New records made offline on each phone.
    rx.call("insert", name="alice", doc={"id": "alice-new-1", "title": "From Alice"})
    rx.call("insert", name="bob", doc={"id": "bob-new-1", "title": "From Bob", "qty": 3})
    # Meanwhile, the web edits another field of r4 and the phones edit r4 too.
    assert live.rest("PATCH", f"/collections/{slug}/records/{r4}", json={"data": {"qty": 44}}).status_code == 200
    rx.call("patch", name="bob", id=r4, set={"notes": "Bob on r4"})

    rx.call("online", name="alice")
    rx.call("insync", name="alice")
    rx.call("wait", name="carol", id="alice-new-1", fields={"title": "From Alice"})
    rx.call("online", name="bob")
    rx.call("insync", name="bob")

    server = converged(rx, live, slug, names)
    assert server[r1]["title"] == "Alice's title" and server[r1]["notes"] == "Bob's note"
    assert server[r2]["qty"] == 100  # Alice reached the server first
    assert r3 not in server
    assert server["alice-new-1"]["title"] == "From Alice"
    assert server["bob-new-1"]["title"] == "From Bob" and server["bob-new-1"]["qty"] == 3
    assert server[r4]["qty"] == 44 and server[r4]["notes"] == "Bob on r4"


def test_phones_edit_while_the_server_restarts_and_converge_after(live, rx):
    slug = live.collection("rx-restart", records=3)
    names = ["dana", "eli"]
    open_clients(rx, live, slug, names, batchSize=100)
    r1, r2, r3 = record_ids(live, slug, 3)

    def while_down():
        # The phones keep working offline while the server is gone...
        rx.call("patch", name="dana", id=r1, set={"title": "Dana, offline"})
        rx.call("patch", name="eli", id=r2, set={"notes": "Eli, offline"})
        rx.call("insert", name="eli", doc={"id": "eli-new", "title": "Made during the outage"})

        # ...and another process of the deployment writes through the spine meanwhile.
        def spine_write():
            from records.models import Record
            from records.services import record_update

            record_update(
                actor=Live.admin(), record=Record.objects.get(livemode=True, id=r3), data={"qty": 333}, partial=True
            )

        live.committed(spine_write)

    live.restart(while_down=while_down)
    for name in names:
        rx.call("insync", name=name, timeout=30000)
    server = converged(rx, live, slug, names, timeout=30)
    assert server[r1]["title"] == "Dana, offline"
    assert server[r2]["notes"] == "Eli, offline"
    assert server[r3]["qty"] == 333
    assert server["eli-new"]["title"] == "Made during the outage"
    for name in names:  # each phone reconnected by itself through the same proxy
        assert rx.call("stats", name=name)["proxy"]["upgrades"] >= 2


def test_a_revoked_device_is_cut_off_at_once(live, rx):
    slug = live.collection("rx-revoke", records=2)
    opened = open_clients(rx, live, slug, ["lost", "kept"], batchSize=100)
    r1, r2 = record_ids(live, slug, 2)

    live.revoke(opened["lost"]["device"]["id"])

    # Its socket is closed by the server (4401), and every reconnect is refused before the upgrade.
    stats = wait_until(
        lambda: (s := rx.call("stats", name="lost")["proxy"])["open"] == 0 and s,
        timeout=10,
        what="the revoked device's socket to close",
    )
    upgrades, server_bytes = stats["upgrades"], stats["serverBytes"]
    wait_until(
        lambda: rx.call("stats", name="lost")["proxy"]["statuses"][upgrades:],
        timeout=15,
        what="the revoked device to try again",
    )

    # No further data: a change reaches the other device but not the revoked one, and its local
    # edits never reach the server.
    rx.call("patch", name="lost", id=r2, set={"title": "written after revocation"})
    assert (
        live.rest("PATCH", f"/collections/{slug}/records/{r1}", json={"data": {"title": "after revoke"}}).status_code
        == 200
    )
    rx.call("wait", name="kept", id=r1, fields={"title": "after revoke"})
    time.sleep(1.5)
    after = rx.call("stats", name="lost")["proxy"]
    assert after["upgrades"] == upgrades, after
    assert after["serverBytes"] == server_bytes, after
    assert all(status in (401, 403) for status in after["statuses"][upgrades:]), after
    assert rx.call("dump", name="lost")["docs"][r1]["title"] != "after revoke"
    assert live.server_docs(slug)[r2]["title"] != "written after revocation"
    assert 4401 in after["closeCodes"], after
