"""Background exports through the API and the console: start, progress, the signed download link, the
file's rows; bad input as problem+json; another workspace's exports out of reach.

What these tests model: the Celery worker is `export_job_run` called in the test's process (the real
worker and broker are in test_export_worker.py); the broker the start hands the job to is left out."""

from __future__ import annotations

import csv
import io
import json

import pytest

from analytics.export_jobs import export_job_run
from analytics.models import ExportJob
from audit.models import AuditEvent
from rbac.roles import Role
from tests.conftest import ApiClient

EXPORTS = "/api/v1/analytics/exports"
PROBLEM = "application/problem+json"


@pytest.fixture(autouse=True)
def exports_dir(settings, tmp_path):
    settings.TESSERA_EXPORTS_DIR = tmp_path / "exports"
    return settings.TESSERA_EXPORTS_DIR


def problem(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    if code:
        assert body["code"] == code, body
    return body


def _download(client, url: str) -> bytes:
    path = url.split("://", 1)[1].split("/", 1)[1]
    response = client.get("/" + path)
    assert response.status_code == 200, response
    return b"".join(response.streaming_content)


def test_api_export_of_filtered_records_runs_to_a_signed_link(orders, api, anon_client):
    client = api(scopes=["analytics:read", "records:read"], mode="live")
    started = client.post(EXPORTS, {"collection": "orders", "filters": {"region": "EU"}, "format": "csv"})
    assert started.status_code == 202, started.content
    job = started.json()
    assert job["object"] == "analytics_export" and job["status"] == "queued" and job["url"] is None
    assert problem(client.get(f"{EXPORTS}/{job['id']}/file"), 404, "export_not_ready")

    export_job_run(token=job["id"])  # what the worker does

    done = client.get(f"{EXPORTS}/{job['id']}").json()
    _collection, stored = orders
    eu = [s["data"] for s in stored if s["data"].get("region") == "EU"]
    assert done["status"] == "done" and done["rows_done"] == done["rows_total"] == len(eu)
    # the link needs no key or session: it is the credential, signed and expiring
    rows = list(csv.DictReader(io.StringIO(_download(anon_client, done["url"]).decode("utf-8-sig"))))
    assert sorted(r["customer"] for r in rows) == sorted(d["customer"] for d in eu)
    by_key = b"".join(client.get(f"{EXPORTS}/{job['id']}/file").streaming_content)
    assert by_key == _download(anon_client, done["url"])
    event = AuditEvent.objects.get(action="analytics.exported")
    assert event.changes["background"] == job["id"] and event.changes["filters"] == {"region": "EU"}


def test_api_export_of_a_query_result(orders, api):
    client = api(scopes=["analytics:read"], mode="live")
    query = {"collection": "orders", "group_by": [{"field": "region"}], "aggregates": [{"fn": "count"}]}
    job = client.post(EXPORTS, {"query": query, "format": "ndjson"}).json()
    export_job_run(token=job["id"])
    body = b"".join(client.get(f"{EXPORTS}/{job['id']}/file").streaming_content).decode()
    _collection, stored = orders
    regions = [s["data"].get("region") for s in stored]
    assert {(r := json.loads(line))["region"]: r["count"] for line in body.splitlines()} == {
        k: regions.count(k) for k in set(regions)
    }


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"collection": "orders", "format": "pdf"}, 400, "format"),
        ({"format": "csv"}, 422, "collection"),
        ({"collection": "orders", "query": {"collection": "orders"}, "format": "csv"}, 422, "collection"),
        ({"collection": "orders", "filters": {"ghost": "1"}, "format": "csv"}, 422, "filters.ghost"),
        ({"collection": "nope", "format": "csv"}, 404, None),
        ({"query": {"collection": "orders", "group_by": [{"field": "nope"}]}, "format": "csv"}, 422, "group_by[0]"),
    ],
)
def test_bad_exports_are_problems_and_start_nothing(orders, api, body, status, param):
    client = api(scopes=["analytics:read", "records:read"], mode="live")
    out = problem(client.post(EXPORTS, body), status)
    if param:
        assert param in json.dumps(out)
    assert not ExportJob.objects.exists()


def test_a_records_export_needs_the_records_scope(orders, api):
    client = api(scopes=["analytics:read"], mode="live")
    assert "records" in problem(client.post(EXPORTS, {"collection": "orders", "format": "csv"}), 403)["detail"]


def test_a_test_key_exports_sandbox_data_and_sees_no_live_export(orders, api, admin_user):
    from records.services import collection_create, record_create

    live = api(scopes=["analytics:read", "records:read"], mode="live")
    live_job = live.post(EXPORTS, {"collection": "orders", "format": "json"}).json()
    sandbox = collection_create(
        actor=admin_user, name="Orders", slug="orders", fields=[{"key": "qty", "type": "integer"}], livemode=False
    )
    record_create(actor=admin_user, collection=sandbox, data={"qty": 1})
    test = api(scopes=["analytics:read", "records:read"], mode="test")
    problem(test.get(f"{EXPORTS}/{live_job['id']}"), 404)
    job = test.post(EXPORTS, {"collection": "orders", "format": "json"}).json()
    export_job_run(token=job["id"])
    assert [r["qty"] for r in json.loads(b"".join(test.get(f"{EXPORTS}/{job['id']}/file").streaming_content))] == [1]


def test_a_forged_or_expired_link_downloads_nothing(orders, api, anon_client):
    from datetime import timedelta

    from django.utils import timezone

    client = api(scopes=["analytics:read", "records:read"], mode="live")
    job = client.post(EXPORTS, {"collection": "orders", "format": "csv"}).json()
    export_job_run(token=job["id"])
    url = client.get(f"{EXPORTS}/{job['id']}").json()["url"]
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    assert anon_client.get(path.replace("/download/", "/download/x")).status_code == 404
    ExportJob.objects.filter(token=job["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert anon_client.get(path).status_code == 404


def test_console_background_export_shows_progress_and_a_link(orders, admin_client, client_for, tenant, make_user):
    response = admin_client.post(
        "/analytics/exports/start/", {"collection": "orders", "format": "csv", "f.region": "US"}
    )
    assert response.status_code == 302 and response["Location"].endswith("/analytics/exports/")
    page = admin_client.get("/analytics/exports/").content.decode()
    assert 'data-status="queued"' in page and "hx-trigger" in page  # polls while it runs
    job = ExportJob.objects.get()
    export_job_run(token=job.token)
    page = admin_client.get("/analytics/exports/").content.decode()
    assert 'data-status="done"' in page and "hx-trigger" not in page
    link = page.split('href="', 1)[1].split('/"', 1)[0] if False else _link_in(page)
    rows = list(csv.DictReader(io.StringIO(_download(admin_client, "http://x" + link).decode("utf-8-sig"))))
    assert {r["region"] for r in rows} == {"US"}
    # another member sees their own exports only; a Viewer may not export
    analyst = client_for(tenant, make_user(Role.ANALYST))
    assert 'data-status="done"' not in analyst.get("/analytics/exports/").content.decode()
    viewer = client_for(tenant, make_user(Role.VIEWER))
    assert viewer.post("/analytics/exports/start/", {"collection": "orders", "format": "csv"}).status_code == 403
    assert ExportJob.objects.count() == 1


def _link_in(page: str) -> str:
    at = page.index('data-testid="download"')
    start = page.rindex('href="', 0, at) + len('href="')
    return page[start : page.index('"', start)]


@pytest.mark.saas_only
def test_another_workspace_finds_neither_the_export_nor_its_link(orders, api, tenant_b):
    from accounts.models import User
    from partners.services import api_key_create
    from tenants.runtime import workspace_context

    client = api(scopes=["analytics:read", "records:read"], mode="live")
    job = client.post(EXPORTS, {"collection": "orders", "format": "csv"}).json()
    export_job_run(token=job["id"])
    url = client.get(f"{EXPORTS}/{job['id']}").json()["url"]
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    with workspace_context(tenant_b):
        admin_b = User.objects.get(email="admin@beta.test")
        _key, raw = api_key_create(actor=admin_b, name="BI", mode="live", scopes=["analytics:read", "records:read"])
    on_b = ApiClient(tenant_b, raw)
    problem(on_b.get(f"{EXPORTS}/{job['id']}"), 404)
    problem(on_b.get(f"{EXPORTS}/{job['id']}/file"), 404)
    assert ApiClient(tenant_b).get(path).status_code == 404  # alpha's signed link on beta's host


def test_an_export_belongs_to_the_key_that_started_it(orders, api, admin_client):
    """Another key of the same workspace (even with every scope) finds neither the export nor its file,
    and a console member does not see it among theirs; the key that started it does."""
    mine = api(scopes=["analytics:read", "records:read"], mode="live")
    other = api(scopes=["analytics:read", "records:read"], mode="live")
    job = mine.post(EXPORTS, {"collection": "orders", "format": "csv"}).json()
    export_job_run(token=job["id"])
    assert mine.get(f"{EXPORTS}/{job['id']}").json()["status"] == "done"
    assert mine.get(f"{EXPORTS}/{job['id']}/file").status_code == 200
    problem(other.get(f"{EXPORTS}/{job['id']}"), 404)
    problem(other.get(f"{EXPORTS}/{job['id']}/file"), 404)
    theirs = other.post(EXPORTS, {"collection": "orders", "format": "json"}).json()
    problem(mine.get(f"{EXPORTS}/{theirs['id']}"), 404)
    assert ExportJob.objects.get(token=job["id"]).requested_by_key == str(mine.key.pk)
    assert job["id"] not in admin_client.get("/analytics/exports/").content.decode()
