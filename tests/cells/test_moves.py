"""Moving a workspace between two cells: this test's database is cell `main` (eu), a second database
on the same PostgreSQL server is cell `b` (us), with a real server of its own; the directory is the
test directory database both share. The move runs as operators run it (`workspace_move` in the
target cell). The model leaves out: two PostgreSQL servers (one server, two databases), two Redis,
and writers running during the move (the freeze itself is tested in tests/directory/test_routing.py).
"""

from __future__ import annotations

import http.client
import json
import secrets
import socket
import threading
import time

import psycopg
import psycopg.sql
import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection, connections
from django.test import Client
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from accounts.onboarding import workspace_signup
from billing.services import customer_ensure
from billing.services import event_process as stripe_event_process
from directory.models import WorkspaceLocation
from directory.selectors import workspace_location_forget
from partners.services import api_key_create
from records.services import collection_create, record_create, record_delete, record_update
from sync.services import pairing_exchange, pairing_start
from tenants.models import Tenant
from tenants.runtime import WorkspaceMoving, workspace_context
from tests.billing.conftest import fake_stripe  # noqa: F401 (fixture)
from tests.billing.fake_stripe import FakeStripe
from tests.conftest import ADMIN_PASSWORD
from tests.live_server import database_env, free_port, run_module, start_server

pytestmark = pytest.mark.saas_only


def committed(work):
    """Run `work` in a thread of its own: its own connection, committed at once (other processes see
    it), outside the test's transaction."""
    result, failure = [], []

    def run():
        try:
            result.append(work())
        except BaseException as exc:  # re-raised in the test
            failure.append(exc)
        finally:
            for alias in connections:
                connections[alias].close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


RECORDS = 40


@pytest.fixture
def cell_b(tenants_provisioned, db):
    """A second cell's database, migrated (public schema) by its own process; dropped afterwards."""
    env_a = database_env(connection)
    name = f"{connection.settings_dict['NAME']}_cellb"
    url_b = env_a["TESSERA_DATABASE_URL"].replace(f"/{connection.settings_dict['NAME']}", f"/{name}", 1)
    with psycopg.connect(env_a["TESSERA_DATABASE_URL"], autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    port = free_port()
    cells = {
        "main": {"region": "eu", "public_url": "http://tessera.localhost"},
        # how cell main reaches cell b's public site (*.localhost names do not resolve on every machine)
        "b": {
            "region": "us",
            "public_url": f"http://tessera.localhost:{port}",
            "internal_url": f"http://127.0.0.1:{port}",
        },
    }
    # cell b's Redis: another database of the tests' Redis server (its keys apart from cell main's)
    redis_b = django_settings.REDIS_URL.rsplit("/", 1)[0] + "/1"
    env_b = {
        "TESSERA_DATABASE_URL": url_b,
        "TESSERA_REDIS_URL": redis_b,
        "TESSERA_DIRECTORY_DATABASE_URL": env_a["TESSERA_DIRECTORY_DATABASE_URL"],
        "TESSERA_CELL": "b",
        "TESSERA_REGION": "us",
        "TESSERA_CELLS": json.dumps(cells),
        "TESSERA_BASE_DOMAIN": "tessera.localhost",
        "TESSERA_PUBLIC_URL": f"http://tessera.localhost:{port}",
        "TESSERA_SECRET_KEY": "cell-b-" + secrets.token_urlsafe(20),
    }
    run_module("django", env_b, "migrate_schemas", "--shared", "--noinput", "-v0", timeout=300)
    yield {"env": env_b, "port": port, "cells": cells, "source_url": env_a["TESSERA_DATABASE_URL"], "redis": redis_b}
    for alias in list(connections):
        connections[alias].close()
    redis.Redis.from_url(redis_b).flushdb()  # only this test uses it
    with psycopg.connect(env_a["TESSERA_DATABASE_URL"], autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_moved_workspace_keeps_every_acknowledged_write_and_works_in_its_new_cell(
    cell_b,
    db,
    settings,
    fake_stripe: FakeStripe,  # noqa: F811
):
    """A writer keeps creating, updating and deleting records in the old cell while the move runs:
    every write it was told succeeded is in the new cell afterwards; during the freeze it is told
    `workspace_moving`; the audit chain verifies there and the change feed continues its sequence.
    A phone syncing in the old cell is told where to reconnect and pulls everything there; a Stripe
    event about the workspace's customer reaching the old cell is handed to the new one, which acts
    on it (Stripe's API is the tests' fake, tests/billing/fake_stripe.py: it cannot be reached)."""
    slug = "zeta-" + secrets.token_hex(3)

    def workspace_with_records():
        email = f"admin@{slug}.test"
        signed = workspace_signup(name="Zeta", slug=slug, admin_email=email, admin_password=ADMIN_PASSWORD)
        with workspace_context(signed.tenant):
            fields = [{"key": "name", "type": "text"}]
            customers = collection_create(actor=signed.admin, name="Customers", slug="customers", fields=fields)
            records = [
                record_create(actor=signed.admin, collection=customers, data={"name": f"customer {n}"})
                for n in range(RECORDS)
            ]
            scopes = ["records:read", "records:write"]
            _, raw_key = api_key_create(actor=signed.admin, name="partner", mode="live", scopes=scopes)
            started = pairing_start(actor=signed.admin, role="manager")
            _, phone_token = pairing_exchange(tenant=signed.tenant, code=started.code, name="Field phone")
        # a Stripe customer (the directory notes it: billing.routing) with a subscription to Starter
        customer = customer_ensure(workspace=signed.tenant, email=email).stripe_customer_id
        return signed, customers, records, raw_key, phone_token, customer

    signed, customers, records, raw_key, phone_token, customer = committed(workspace_with_records)
    price = next(p for p in fake_stripe.prices.values() if p["lookup_key"] == "tessera_starter_monthly")
    subscription = fake_stripe.subscription_create(
        customer=customer, prices=[price], trial_days=0, metadata={"workspace_id": str(signed.tenant.pk)}
    )
    subscription = fake_stripe.subscription_set(subscription["id"], status="active")

    # cell main's own server (this database), where a phone is syncing when the move starts
    server_a = start_server(
        database_env(connection),
        "tessera.localhost",
        extra_env={"TESSERA_CELLS": json.dumps(cell_b["cells"]), "TESSERA_SYNC_HEARTBEAT_SECONDS": "1"},
    )
    phone = _phone(server_a.port, slug, phone_token)
    assert _changes_since(phone)["documents"], "the phone syncs in cell main before the move"
    listening = _PhoneListening(phone)
    # a partner's API calls in cell main, counted in its Redis and not flushed yet when the move starts
    api_headers = {"Host": f"{slug}.tessera.localhost:{server_a.port}", "Authorization": f"Bearer {raw_key}"}
    for _ in range(5):
        assert _http(server_a, "GET", "/api/v1/collections/customers/records?limit=1", api_headers)[0] == 200
    counters = redis.Redis.from_url(settings.REDIS_URL)
    old_counters = f"{settings.TESSERA_COUNTERS_NAMESPACE}:usage:{{w{signed.tenant.pk}}}"
    counted = {k.decode(): int(v) for k, v in counters.hgetall(old_counters).items()}
    assert sum(v for k, v in counted.items() if k.endswith(":c")) == 5, counted
    acknowledged = {r.id: f"customer {n}" for n, r in enumerate(records)}  # record id -> name (None: deleted)
    outcome = {"refused": 0, "stopped_by": None}
    stop = threading.Event()

    def writer():
        """Creates, updates, deletes until the workspace is gone from this cell."""
        live = list(records)
        n = 0
        with workspace_context(signed.tenant):
            while not stop.is_set():
                n += 1
                try:
                    if n % 3 == 1 or len(live) < 5:
                        record = record_create(actor=signed.admin, collection=customers, data={"name": f"new {n}"})
                        live.append(record)
                        acknowledged[record.id] = f"new {n}"
                    elif n % 3 == 2:
                        record = live[n % len(live)]
                        record_update(actor=signed.admin, record=record, data={"name": f"updated {n}"})
                        acknowledged[record.id] = f"updated {n}"
                    else:
                        record = live.pop(n % len(live))
                        record_delete(actor=signed.admin, record=record)
                        acknowledged[record.id] = None
                except WorkspaceMoving:
                    outcome["refused"] += 1
                    time.sleep(0.005)
                except Exception as exc:  # the workspace left this cell (its schema renamed): done
                    outcome["stopped_by"] = exc
                    return
                time.sleep(0.002)

    thread = threading.Thread(target=lambda: committed(writer))
    thread.start()
    try:
        out = run_module(
            "django", cell_b["env"], "workspace_move", slug, "--from", cell_b["source_url"],
            "--from-redis", settings.REDIS_URL, timeout=300,
        )  # fmt: skip
        # the phone connected during the move is told where its workspace went (at its next heartbeat)
        told, closed = listening.told_elsewhere()
        # and a phone connecting to the old cell afterwards, at once
        told_again, closed_again = _PhoneListening(_phone(server_a.port, slug, phone_token)).told_elsewhere()
    finally:
        stop.set()
        thread.join(30)
        server_a.stop()
    new_sync_url = f"ws://{slug}.tessera.localhost:{cell_b['port']}/sync/v1/"
    for frame, close in ((told, closed), (told_again, closed_again)):
        assert frame is not None, f"closed {close} without saying where\n{server_a.log_tail()}"
        assert frame["error"]["code"] == "workspace_elsewhere" and frame["error"]["url"] == new_sync_url, frame
        assert frame["error"]["region"] == "us"
        assert (close.code, close.reason) == (4421, f"workspace_elsewhere {new_sync_url}")
    assert f"moved {slug}: main -> b" in out and "audit events verified" in out, out
    assert f"{len(counted)} usage counters carried" in out, out
    assert outcome["stopped_by"] is not None, "the writer kept writing to the old cell after the move"
    assert len(acknowledged) > RECORDS

    with psycopg.connect(cell_b["env"]["TESSERA_DATABASE_URL"]) as cell_b_db:
        schema = psycopg.sql.Identifier(signed.tenant.schema_name)
        rows = cell_b_db.execute(
            psycopg.sql.SQL("SELECT id, data->>'name', deleted_at IS NOT NULL FROM {}.records_record").format(schema)
        ).fetchall()
        seq_before = cell_b_db.execute(psycopg.sql.SQL("SELECT max(seq) FROM {}.records_change").format(schema))
        seq_before = seq_before.fetchone()[0]
    in_b = {record_id: (None if deleted else name) for record_id, name, deleted in rows}
    assert in_b == acknowledged, {k: (v, in_b.get(k)) for k, v in acknowledged.items() if in_b.get(k) != v}

    print(f"writes acknowledged {len(acknowledged) - RECORDS}, refused during the freeze {outcome['refused']}")
    # what the old cell (this process, in the test's transaction) sees now
    location = WorkspaceLocation.objects.get(slug=slug)
    assert (location.cell, location.region, location.status) == ("b", "us", "active")
    # the old cell: no tenant row, its schema kept under another name until an operator drops it
    assert not Tenant.objects.filter(slug=slug).exists()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", [f"moved_{signed.tenant.schema_name}_%"]
        )
        assert cursor.fetchone() is not None

    # the unflushed API calls moved with it: in cell b's counters under its id there, gone from cell main's
    with psycopg.connect(cell_b["env"]["TESSERA_DATABASE_URL"]) as cell_b_db:
        new_id = cell_b_db.execute("SELECT id FROM tenants_tenant WHERE slug = %s", [slug]).fetchone()[0]
    new_counters = f"{settings.TESSERA_COUNTERS_NAMESPACE}:usage:{{w{new_id}}}"
    counters_b = redis.Redis.from_url(cell_b["redis"])
    assert {k.decode(): int(v) for k, v in counters_b.hgetall(new_counters).items()} == counted
    assert not counters.exists(old_counters)

    # requests reaching the old cell are sent to the new one
    settings.TESSERA_CELLS = cell_b["cells"]
    workspace_location_forget(slug)
    console = Client(HTTP_HOST=f"{slug}.tessera.localhost").get("/records/")
    assert console.status_code == 302
    assert console["Location"] == f"http://{slug}.tessera.localhost:{cell_b['port']}/records/"
    api = Client(HTTP_HOST=f"{slug}.tessera.localhost").get(
        "/api/v1/collections/customers/records", HTTP_AUTHORIZATION=f"Bearer {raw_key}"
    )
    assert api.status_code == 421
    assert api.json()["base_url"] == f"http://{slug}.tessera.localhost:{cell_b['port']}/api/v1"

    # the new cell serves it: the same API key reads the records and writes the next change
    stripe_env = {
        "TESSERA_STRIPE_API_BASE": fake_stripe.url,
        "TESSERA_STRIPE_SECRET_KEY": settings.STRIPE_SECRET_KEY,
        "TESSERA_STRIPE_WEBHOOK_SECRETS": fake_stripe.webhook_secret,
    }
    server = start_server({**cell_b["env"], **stripe_env}, "tessera.localhost", port=cell_b["port"])
    try:
        host = {"Host": f"{slug}.tessera.localhost:{server.port}", "Authorization": f"Bearer {raw_key}"}
        status, body = _http(server, "GET", f"/api/v1/collections/customers/records/{records[0].id}", host)
        if acknowledged[records[0].id] is None:
            assert status == 404, body
        else:
            assert status == 200, body
            assert json.loads(body)["data"]["name"] == acknowledged[records[0].id]
        headers = {**host, "Content-Type": "application/json"}
        status, body = _http(
            server, "POST", "/api/v1/collections/customers/records", headers, {"data": {"name": "first in cell b"}}
        )
        assert status == 201, body
        # the phone reconnects where it was told, with the same token, and pulls the workspace there
        phone = _phone(server.port, slug, phone_token)
        pulled, checkpoint = {}, None
        while True:
            page = _changes_since(phone, checkpoint=checkpoint, batch=1000)
            if not page["documents"]:
                break
            pulled.update({d["id"]: None if d["_deleted"] else d["name"] for d in page["documents"]})
            checkpoint = page["checkpoint"]
        phone.close()
        assert pulled == {**acknowledged, json.loads(body)["id"]: "first in cell b"}

        # Stripe's event about the customer reaches the old cell: handed on to cell b, signed
        event = fake_stripe.event("customer.subscription.updated", subscription)
        payload, signature = fake_stripe.signed(event)
        received = Client(HTTP_HOST=settings.TESSERA_BASE_DOMAIN).post(
            "/stripe/webhooks", payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature
        )
        assert received.status_code == 200, received.content
        assert stripe_event_process(event["id"]) == "forwarded to cell b"  # the Celery task's body
    finally:
        server.stop()
    with psycopg.connect(cell_b["env"]["TESSERA_DATABASE_URL"]) as cell_b_db:
        seq_after = cell_b_db.execute(psycopg.sql.SQL("SELECT max(seq) FROM {}.records_change").format(schema))
        assert seq_after.fetchone()[0] == seq_before + 1, "the change feed continues its sequence"
        forwarded = cell_b_db.execute(
            "SELECT forwarded_from, processed_at FROM billing_stripeevent WHERE id = %s", [event["id"]]
        ).fetchone()
        assert forwarded == ("main", None), "cell b received the event from cell main (its task not run yet)"
    # cell b's task acts on it: the moved workspace's subscription, found by its customer
    process = f"from billing.services import event_process; print(event_process({event['id']!r}))"
    assert (
        run_module("django", {**cell_b["env"], **stripe_env}, "shell", "--no-imports", "-c", process).strip()
        == "active starter"
    )
    with psycopg.connect(cell_b["env"]["TESSERA_DATABASE_URL"]) as cell_b_db:
        plan = cell_b_db.execute("SELECT plan FROM tenants_tenant WHERE slug = %s", [slug]).fetchone()
        assert plan == ("starter",)


def _phone(port: int, slug: str, token: str):
    """A phone's websocket to the server on `port`, for workspace `slug` (a real websocket client)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    uri = f"ws://{slug}.tessera.localhost:{port}/sync/v1/?token={token}"
    # no pings of its own: a loaded machine may answer one late, and the server's heartbeats suffice
    return connect(uri, sock=sock, proxy=None, max_size=None, open_timeout=20, ping_interval=None)


def _changes_since(phone, checkpoint=None, batch: int = 10) -> dict:
    request = {"id": "pull", "collection": "customers", "method": "masterChangesSince", "params": [checkpoint, batch]}
    phone.send(json.dumps(request))
    while True:
        frame = json.loads(phone.recv(timeout=20))
        if frame["id"] == "pull":
            assert "result" in frame, frame
            return frame["result"]


class _PhoneListening:
    """Reads a phone's socket in a thread of its own, as a phone does (an unread socket stops
    answering the server's pings and is closed by it), until the server closes it."""

    def __init__(self, phone):
        self.phone, self.told, self.close = phone, None, None
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()

    def _listen(self):
        try:
            while True:
                frame = json.loads(self.phone.recv())
                if frame["id"] == "workspace_elsewhere":
                    self.told = frame
        except ConnectionClosed as exc:
            self.close = exc.rcvd

    def told_elsewhere(self, timeout: float = 60.0):
        """The `workspace_elsewhere` frame the server sent before it closed, and the close."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the socket stayed open {timeout:.0f} s after the move"
        return self.told, self.close


def _http(server, method: str, path: str, headers: dict, body=None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode()
    except OSError as exc:
        raise AssertionError(f"{method} {path}: {exc!r}\n--- server log ---\n{server.log_tail()}") from exc
    finally:
        conn.close()
