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
import threading

import psycopg
import pytest
from django.db import connection, connections
from django.test import Client

from accounts.onboarding import workspace_signup
from audit.selectors import audit_chain_verify
from directory.models import WorkspaceLocation
from directory.selectors import workspace_location_forget
from partners.services import api_key_create
from records.services import collection_create, record_create
from tenants.models import Tenant
from tenants.runtime import workspace_context
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
        "b": {"region": "us", "public_url": f"http://tessera.localhost:{port}"},
    }
    env_b = {
        "TESSERA_DATABASE_URL": url_b,
        "TESSERA_DIRECTORY_DATABASE_URL": env_a["TESSERA_DIRECTORY_DATABASE_URL"],
        "TESSERA_CELL": "b",
        "TESSERA_REGION": "us",
        "TESSERA_CELLS": json.dumps(cells),
        "TESSERA_BASE_DOMAIN": "tessera.localhost",
        "TESSERA_PUBLIC_URL": f"http://tessera.localhost:{port}",
        "TESSERA_SECRET_KEY": "cell-b-" + secrets.token_urlsafe(20),
    }
    run_module("django", env_b, "migrate_schemas", "--shared", "--noinput", "-v0", timeout=300)
    yield {"env": env_b, "port": port, "cells": cells, "source_url": env_a["TESSERA_DATABASE_URL"]}
    for alias in list(connections):
        connections[alias].close()
    with psycopg.connect(env_a["TESSERA_DATABASE_URL"], autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_moved_workspace_works_in_its_new_cell_with_its_data_and_audit_chain(cell_b, django_db_blocker, settings):
    slug = "zeta-" + secrets.token_hex(3)

    def workspace_with_records():
        email = f"admin@{slug}.test"
        signed = workspace_signup(name="Zeta", slug=slug, admin_email=email, admin_password=ADMIN_PASSWORD)
        with workspace_context(signed.tenant):
            fields = [{"key": "name", "type": "text"}]
            customers = collection_create(actor=signed.admin, name="Customers", slug="customers", fields=fields)
            for n in range(RECORDS):
                record_create(actor=signed.admin, collection=customers, data={"name": f"customer {n}"})
            _, raw_key = api_key_create(actor=signed.admin, name="partner", mode="live", scopes=["records:read"])
            return raw_key, audit_chain_verify().checked, signed.tenant.schema_name

    raw_key, audit_events, schema = committed(workspace_with_records)

    out = run_module("django", cell_b["env"], "workspace_move", slug, "--from", cell_b["source_url"], timeout=300)
    assert f"moved {slug}: main -> b" in out and f"{audit_events} audit events verified" in out, out

    # what the old cell (this process, in the test's transaction) sees now
    location = WorkspaceLocation.objects.get(slug=slug)
    assert (location.cell, location.region, location.status) == ("b", "us", "active")
    # the old cell: no tenant row, its schema kept under another name until an operator drops it
    assert not Tenant.objects.filter(slug=slug).exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", [f"moved_{schema}_%"])
        assert cursor.fetchone() is not None

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

    # the new cell serves it: the same API key reads every record
    server = start_server(cell_b["env"], "tessera.localhost", port=cell_b["port"])
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request(
            "GET",
            "/api/v1/collections/customers/records?limit=100",
            headers={"Host": f"{slug}.tessera.localhost:{server.port}", "Authorization": f"Bearer {raw_key}"},
        )
        response = conn.getresponse()
        assert response.status == 200, response.read()[:500].decode() + server.log_tail()
        names = sorted(item["data"]["name"] for item in json.loads(response.read())["data"])
        assert names == sorted(f"customer {n}" for n in range(RECORDS))
    finally:
        server.stop()
