"""Exports of query results and filtered record sets: every row present, values that parse back, no
formula a spreadsheet would run, an audit event for each. (The million-record memory figure is in
bench/analytics/run.py: tests never measure time or memory.)"""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest

from audit.models import AuditEvent
from rbac.roles import Role

FORMULA = '=HYPERLINK("http://evil.test","x")'


def body(response) -> bytes:
    assert response.status_code == 200, response.content if hasattr(response, "content") else response
    return b"".join(response.streaming_content)


@pytest.fixture
def with_formula(orders, admin_user):
    from records.services import record_create

    collection, _stored = orders
    record_create(actor=admin_user, collection=collection, data={"customer": FORMULA, "region": "EU", "amount": -5})
    return collection


def test_records_csv_parses_back_to_the_stored_values(with_formula, admin_client):
    from records.models import Record

    out = body(admin_client.get("/analytics/records/orders/export.csv", {"region": "EU"})).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(out)))
    stored = {r.id: r.data for r in Record.objects.filter(collection=with_formula, deleted_at=None)}
    eu = {i: d for i, d in stored.items() if d.get("region") == "EU"}
    assert {r["id"] for r in rows} == set(eu)
    for row in rows:
        data = eu[row["id"]]
        for key in ("customer", "region", "closed_on", "closed_at"):
            want = data.get(key)
            got = row[key]
            if isinstance(want, str) and want.startswith("="):
                assert got == "'" + want  # shown as text by spreadsheets, never run
            else:
                assert got == ("" if want is None else str(want))
        if isinstance(data.get("amount"), (int, float)):
            assert float(row["amount"]) == data["amount"]  # -5 stays a number: no guard on numbers
    assert AuditEvent.objects.filter(action="analytics.exported", changes__what="records").count() == 1


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_records_json_and_ndjson_are_the_stored_data(with_formula, admin_client, fmt):
    from records.models import Record

    raw = body(admin_client.get(f"/analytics/records/orders/export.{fmt}")).decode()
    items = json.loads(raw) if fmt == "json" else [json.loads(line) for line in raw.splitlines()]
    stored = {r.id: r.data for r in Record.objects.filter(collection=with_formula, deleted_at=None)}
    assert len(items) == len(stored) == 89
    for item in items:
        data = stored[item["id"]]
        assert {k: v for k, v in item.items() if k in data} == data


def test_records_xlsx_holds_every_row_and_no_formula(with_formula, admin_client):
    raw = body(admin_client.get("/analytics/records/orders/export.xlsx"))
    with zipfile.ZipFile(io.BytesIO(raw)) as book:
        sheet = book.read("xl/worksheets/sheet1.xml").decode()
        strings = book.read("xl/sharedStrings.xml").decode() if "xl/sharedStrings.xml" in book.namelist() else ""
    assert sheet.count("<row ") == 90  # header + 89 records
    assert "<f>" not in sheet
    assert "HYPERLINK" in sheet + strings


def test_query_result_exports(orders, admin_client):
    params = {"run": "1", "collection": "orders", "g1": "region", "a_fn": ["count", "sum"], "a_field": ["", "qty"]}
    out = body(admin_client.get("/analytics/export.csv", params)).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["region", "count", "sum_qty"]
    _collection, stored = orders
    regions = [s["data"].get("region") for s in stored]
    assert {r[0]: int(r[1]) for r in rows[1:]} == {(k or ""): regions.count(k) for k in set(regions)}
    event = AuditEvent.objects.get(action="analytics.exported")
    assert event.changes["what"] == "query_result" and event.changes["format"] == "csv"
    ndjson = body(admin_client.get("/analytics/export.ndjson", params)).decode()
    assert [json.loads(line)["region"] for line in ndjson.splitlines()] == [r[0] or None for r in rows[1:]]


def test_bad_exports_are_refused(orders, admin_client, client_for, tenant, make_user):
    assert admin_client.get("/analytics/records/orders/export.pdf").status_code == 404
    bad = admin_client.get("/analytics/records/orders/export.csv", {"ghost": "1"})
    assert bad.status_code == 400 and b"ghost" in bad.content
    viewer = client_for(tenant, make_user(Role.VIEWER))
    assert viewer.get("/analytics/records/orders/export.csv").status_code == 403
    assert not AuditEvent.objects.filter(action="analytics.exported").exists()


@pytest.mark.saas_only
def test_another_workspace_session_exports_nothing(orders, tenant, tenant_b, admin_user, client_for):
    on_b = client_for(tenant_b)
    on_b.cookies = client_for(tenant, admin_user).cookies
    response = on_b.get("/analytics/records/orders/export.csv")
    assert response.status_code == 302 and "/login" in response["Location"]
