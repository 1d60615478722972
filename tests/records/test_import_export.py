"""CSV import (upload, column matching, checks, per-row error report, all-or-nothing or skip bad rows)
and CSV/JSON export (streamed, the table's filters/search/sort, audited), as the console offers them."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import AuditEvent
from rbac.roles import Role
from records.models import Record
from records.services import collection_update, record_create
from tests.html_forms import form_with_button


def text(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def upload(client, csv_text: str, name: str = "people.csv", encoding: str = "utf-8"):
    """Upload a file; returns the column-matching page's URL (or the failed response)."""
    file = SimpleUploadedFile(name, csv_text.encode(encoding), content_type="text/csv")
    response = client.post("/records/customers/import/", {"file": file})
    return response


def mapping_page(client, csv_text: str, **kwargs):
    uploaded = upload(client, csv_text, **kwargs)
    assert uploaded.status_code == 302, text(uploaded)
    url = uploaded["Location"]
    page = client.get(url)
    assert page.status_code == 200
    return url, page


def run_import(client, csv_text: str, mode: str = "all", action: str = "import", **changes):
    url, page = mapping_page(client, csv_text)
    form = form_with_button(page, "Import")
    response = client.post(url, {**form.fields, "mode": mode, "action": action, **changes})
    return response, text(response)


def row_errors(body: str) -> list[tuple[int, str, str]]:
    table = re.search(r'data-testid="row-errors">.*?</table>', body, re.S)
    if not table:
        return []
    rows = re.findall(r'<tr><td class="num">(\d+)</td><td>([^<]*)</td><td>([^<]*)</td></tr>', table.group(0))
    return [(int(n), col, msg) for n, col, msg in rows]


GOOD = "Name,email,tier,Score\nAda,ada@x.test,pro,3\nBob,bob@x.test,,4\n"
BAD = (
    "name,email,tier,score\n"
    "Ada,ada@x.test,pro,3\n"
    ",nobody@x.test,free,1\n"  # row 3: name required
    "Cy,not-an-email,gold,x\n"  # row 4: email, tier and score wrong
    "Dee,ADA@x.test,free,2\n"  # row 5: email repeats row 2 (unique, case-insensitive)
    "Eve,eve@x.test,free,5\n"
)


# --- upload and column matching --------------------------------------------------------------------


def test_columns_are_matched_by_key_or_label(admin_client, customers, admin_user):
    fields = [{**f, "label": "E-mail address"} if f["key"] == "email" else f for f in customers.fields]
    collection_update(actor=admin_user, collection=customers, fields=fields)
    _, page = mapping_page(admin_client, "ID,Name,e-mail address,TIER,unknown,Mail\n,A,a@x.test,pro,?,\n")
    form = form_with_button(page, "Import")

    assert form.fields["col_0"] == "id"
    assert form.fields["col_1"] == "name"
    assert form.fields["col_2"] == "email"  # by label, ignoring case
    assert form.fields["col_3"] == "tier"
    assert form.fields["col_4"] == ""
    assert form.fields["col_5"] == ""
    assert "a@x.test" in text(page)  # a preview of the values


@pytest.mark.parametrize(
    ("content", "name", "error"),
    [
        ("", "empty.csv", "The submitted file is empty."),
        ("\n\n", "blank.csv", "no header row"),
    ],
)
def test_bad_uploads_are_400(admin_client, customers, content, name, error):
    response = upload(admin_client, content, name=name)

    assert response.status_code == 400
    assert error in text(response)


def test_upload_without_a_file_or_too_big_is_400(admin_client, customers, monkeypatch):
    from records.views import imports as views

    missing = admin_client.post("/records/customers/import/", {})
    monkeypatch.setattr(views, "IMPORT_MAX_BYTES", 10)
    big = upload(admin_client, GOOD)

    assert missing.status_code == 400 and "This field is required." in text(missing)
    assert big.status_code == 400 and "larger than" in text(big)


def test_bad_mappings_are_400(admin_client, customers):
    url, page = mapping_page(admin_client, GOOD)
    form = form_with_button(page, "Import")

    twice = admin_client.post(url, {**form.fields, "col_1": "name"})
    nothing = admin_client.post(url, {"mode": "all", "col_0": "", "col_1": "", "col_2": "", "col_3": ""})
    no_name = admin_client.post(url, {**form.fields, "col_0": ""})
    bogus = admin_client.post(url, {**form.fields, "col_0": "nonsense", "mode": "sometimes"})

    assert twice.status_code == 400 and "already fills “name”" in text(twice)
    assert nothing.status_code == 400 and "at least one column" in text(nothing)
    assert no_name.status_code == 400 and "Required fields without a column: “name”" in text(no_name)
    assert bogus.status_code == 400 and text(bogus).count("Select a valid choice") == 2
    assert not Record.objects.filter(collection=customers).exists()


def test_staged_upload_belongs_to_its_uploader_and_expires(admin_client, customers, client_for, tenant, make_user):
    url, _ = mapping_page(admin_client, GOOD)
    other = client_for(tenant, make_user(Role.MANAGER))

    assert other.get(url).status_code == 410
    assert admin_client.get("/records/customers/import/not-a-token/").status_code == 410


# --- import modes ----------------------------------------------------------------------------------


def test_import_creates_records_through_the_spine_and_is_audited(admin_client, customers):
    response, body = run_import(admin_client, GOOD)

    assert response.status_code == 200 and response.streaming
    assert 'data-committed="true"' in body
    assert re.search(r"<strong>2</strong> created", body)
    rows = {r.data["name"]: r.data for r in Record.objects.filter(collection=customers)}
    assert rows == {
        "Ada": {"name": "Ada", "email": "ada@x.test", "tier": "pro", "score": 3},
        "Bob": {"name": "Bob", "email": "bob@x.test", "tier": "free", "score": 4},  # tier's default
    }
    event = AuditEvent.objects.get(action="records.imported")
    assert event.changes["created"] == 2 and event.changes["mode"] == "all" and event.changes["file"] == "people.csv"
    assert AuditEvent.objects.filter(action="record.created").count() == 2  # each record through the spine


def test_all_or_nothing_imports_nothing_and_reports_every_bad_row(admin_client, customers):
    _, body = run_import(admin_client, BAD, mode="all")

    assert 'data-committed="false"' in body and "Nothing was imported" in body
    assert not Record.objects.filter(collection=customers).exists()
    assert row_errors(body) == [
        (3, "name", "is required."),
        (4, "score", "“x” must be a whole number"),
        (4, "email", "must be an e-mail address."),
        (4, "tier", "must be one of: free, pro."),
        (5, "email", "“ADA@x.test” repeats row 2"),
    ]
    assert not AuditEvent.objects.filter(action="records.imported").exists()


def test_skip_bad_rows_imports_the_good_ones_and_reports_the_others(admin_client, customers):
    _, body = run_import(admin_client, BAD, mode="skip")

    assert 'data-committed="true"' in body
    assert re.search(r"<strong>2</strong> created.*<strong>3</strong> skipped", body, re.S)
    assert sorted(r.data["name"] for r in Record.objects.filter(collection=customers)) == ["Ada", "Eve"]
    assert {n for n, _, _ in row_errors(body)} == {3, 4, 5}
    assert "email" in {c for n, c, _ in row_errors(body) if n == 5}
    event = AuditEvent.objects.get(action="records.imported")
    assert event.changes["created"] == 2 and event.changes["bad_rows"] == 3 and event.changes["mode"] == "skip"


def test_check_only_changes_nothing(admin_client, customers):
    _, good = run_import(admin_client, GOOD, action="check")
    _, bad = run_import(admin_client, BAD, action="check")

    assert "All 2 rows are fine" in good and "Nothing was changed" in good
    assert "3 of 5 rows have problems" in bad and len(row_errors(bad)) >= 3
    assert not Record.objects.filter(collection=customers).exists()


def test_existing_records_conflict_with_unique_values_and_id_column_updates(admin_client, customers, admin_user):
    ada = record_create(actor=admin_user, collection=customers, data={"name": "Ada", "email": "ada@x.test", "score": 1})
    imposter = "name,email,score\nImposter,ADA@X.TEST,2\n"
    update = f"id,name,email,score\n{ada.id},Ada Lovelace,ada@x.test,\n,Twin,ada@x.test,2\n"

    _, refused = run_import(admin_client, imposter, mode="all")
    _, skipped = run_import(admin_client, update, mode="skip")

    assert row_errors(refused) == [(2, "email", f"“ADA@X.TEST” is already used by record {ada.id}")]
    assert re.search(r"<strong>1</strong> updated", skipped)
    assert row_errors(skipped) == [(3, "email", "“ada@x.test” repeats row 2")]
    ada.refresh_from_db()
    assert ada.data == {"name": "Ada Lovelace", "email": "ada@x.test", "tier": "free"}  # empty score cleared
    assert Record.objects.filter(collection=customers).count() == 1


def test_all_or_nothing_rolls_back_when_the_spine_refuses_a_row(admin_client, customers, monkeypatch):
    from records import imports

    real = imports.record_bulk_upsert
    calls = {"n": 0}

    def racing(*, actor, collection, items):
        calls["n"] += 1
        if calls["n"] == 2:  # someone took the e-mail between the check and the write
            record_create(actor=actor, collection=collection, data={"name": "Racer", "email": "zed@x.test"})
        return real(actor=actor, collection=collection, items=items)

    monkeypatch.setattr(imports, "record_bulk_upsert", racing)
    monkeypatch.setattr(imports, "BATCH_ROWS", 2)
    rows = "name,email\n" + "".join(f"P{i},p{i}@x.test\n" for i in range(3)) + "Zed,zed@x.test\n"

    _, body = run_import(admin_client, rows, mode="all")

    assert 'data-committed="false"' in body
    assert row_errors(body) == [(5, "email", "Another record already has this “email”.")]
    assert not Record.objects.filter(collection=customers).exists()  # the whole import rolled back


def test_large_import_streams_progress_in_batches(admin_client, customers, monkeypatch):
    from records import imports

    monkeypatch.setattr(imports, "BATCH_ROWS", 50)
    rows = "name,score\n" + "".join(f"N{i},{i}\n" for i in range(240))

    _, body = run_import(admin_client, rows, mode="skip")

    chunks = body.count('class="progress-line"')
    assert chunks == 5  # 240 rows in batches of 50
    assert "Imported 240 rows" in body
    assert Record.objects.filter(collection=customers).count() == 240


def test_import_reads_excel_flavoured_files(admin_client, customers):
    semicolons = "\ufeffname;score;notes\r\nZoë;1;'=SUM(A1)\r\n"
    url, page = mapping_page(admin_client, semicolons)
    form = form_with_button(page, "Import")
    body = text(admin_client.post(url, {**form.fields, "mode": "all"}))
    latin = "name,notes\nJosé,caf\xe9\n"
    url2, page2 = mapping_page(admin_client, latin, encoding="cp1252")
    body2 = text(admin_client.post(url2, {**form_with_button(page2, "Import").fields, "mode": "all"}))

    assert 'data-committed="true"' in body and 'data-committed="true"' in body2
    zoe = Record.objects.get(collection=customers, data__name="Zoë")
    assert zoe.data["score"] == 1 and zoe.data["notes"] == "=SUM(A1)"
    assert Record.objects.get(collection=customers, data__name="José").data["notes"] == "café"


def test_import_twice_is_refused_once_done(admin_client, customers):
    url, page = mapping_page(admin_client, GOOD)
    form = form_with_button(page, "Import")
    first = text(admin_client.post(url, {**form.fields, "mode": "all"}))
    again = admin_client.post(url, {**form.fields, "mode": "all"})

    assert 'data-committed="true"' in first
    assert again.status_code == 410
    assert Record.objects.filter(collection=customers).count() == 2


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ANALYST])
def test_only_editors_import(tenant, client_for, make_user, customers, role):
    client = client_for(tenant, make_user(role))

    assert upload(client, GOOD).status_code == 403


# --- export ---------------------------------------------------------------------------------------------


@pytest.fixture
def people(customers, admin_user):
    rows = [
        ("Ada", "ada@x.test", "pro", 30, "=2+2"),
        ("Bob", "bob@x.test", "free", 10, None),
        ("Cy", "cy@x.test", "pro", 20, "line1\nline2, with comma"),
        ("Dee", "dee@x.test", "free", None, None),
    ]
    out = {}
    for name, email, tier, score, notes in rows:
        data = {"name": name, "email": email, "tier": tier, "score": score, "notes": notes}
        out[name] = record_create(
            actor=admin_user, collection=customers, data={k: v for k, v in data.items() if v is not None}
        )
    return out


def test_csv_export_streams_the_filtered_sorted_rows_and_is_audited(admin_client, people):
    response = admin_client.get("/records/customers/export.csv?tier=pro&sort=-score")

    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.match(r'attachment; filename="customers-\d{8}-\d{6}\.csv"', response["Content-Disposition"])
    rows = list(csv.reader(io.StringIO(text(response).lstrip("\ufeff"))))
    assert rows[0] == ["id", "name", "email", "tier", "score", "notes", "created_at", "updated_at"]
    assert [r[1] for r in rows[1:]] == ["Ada", "Cy"]
    assert rows[1][5] == "'=2+2"  # formula-like text is guarded for spreadsheets
    assert rows[2][5] == "line1\nline2, with comma"
    event = AuditEvent.objects.get(action="records.exported")
    assert event.changes["filters"] == {"tier": "pro"} and event.changes["format"] == "csv"


def test_json_export_with_search(admin_client, people):
    response = admin_client.get("/records/customers/export.json?q=dee&sort=name")

    items = json.loads(text(response))
    assert response["Content-Type"] == "application/json"
    assert [i["data"]["name"] for i in items] == ["Dee"]
    assert set(items[0]) == {"id", "version", "created_at", "updated_at", "data"}
    empty = json.loads(text(admin_client.get("/records/customers/export.json?q=nobody")))
    assert empty == []


def test_export_links_carry_the_current_view(admin_client, people):
    page = admin_client.get("/records/customers/?tier=pro&sort=-score&q=x")

    link = re.search(r'<a href="([^"]+)" data-testid="export-csv"', text(page)).group(1).replace("&amp;", "&")
    assert link.startswith("/records/customers/export.csv?")
    assert set(link.split("?", 1)[1].split("&")) == {"q=x", "sort=-score", "tier=pro"}


def test_bad_export_filters_are_400(admin_client, people):
    response = admin_client.get("/records/customers/export.csv?score__gt=lots")

    assert response.status_code == 400
    assert not AuditEvent.objects.filter(action="records.exported").exists()


def test_export_then_import_round_trips(admin_client, people, customers):
    exported = text(admin_client.get("/records/customers/export.csv?sort=name")).lstrip("\ufeff")
    before = {r.id: r.data for r in Record.objects.filter(collection=customers)}
    edited = exported.replace("bob@x.test", "robert@x.test")

    _, body = run_import(admin_client, edited, mode="all")

    assert 'data-committed="true"' in body, row_errors(body)
    assert re.search(r"<strong>0</strong> created, <strong>1</strong> updated, 3 unchanged", body)
    after = {r.id: r.data for r in Record.objects.filter(collection=customers)}
    assert after == {**before, people["Bob"].id: {**before[people["Bob"].id], "email": "robert@x.test"}}


def test_import_refuses_ids_of_deleted_records(admin_client, people, admin_user):
    from records.services import record_delete

    record_delete(actor=admin_user, record=people["Bob"])

    _, body = run_import(admin_client, f"id,name\n{people['Bob'].id},Bob again\n", mode="all")

    assert row_errors(body) == [(2, "id", "is the id of a deleted record")]


def test_export_streams_in_chunks_under_asgi(admin_client, people, admin_user, customers):
    """Under ASGI the response is an async iterator (really streamed, not buffered into a list)."""
    from django.test import AsyncRequestFactory

    from records.exports import records_export
    from records.query import table_query_parse
    from records.views.common import _streaming

    chunks = records_export(actor=admin_user, collection=customers, query=table_query_parse(customers, {}), fmt="json")
    response = _streaming(AsyncRequestFactory().get("/"), chunks, "application/json")

    assert response.is_async

    async def collect():
        return b"".join([part async for part in response])

    assert [i["data"]["name"] for i in json.loads(async_to_sync(collect)())] == ["Dee", "Cy", "Bob", "Ada"]


def test_unreadable_files_are_refused_or_reported_never_500(admin_client, customers):
    huge = "x" * (1024 * 1024 + 1)  # beyond the CSV reader's field limit
    early = upload(admin_client, f"name\n{huge}\n")
    wide = upload(admin_client, ",".join(f"c{i}" for i in range(501)) + "\n")
    late = "name,score\n" + "".join(f"N{i},{i}\n" for i in range(10)) + f"{huge},1\nAfter,2\n"
    nul = "name,notes,score\nA\x00B,ok,1\nFine,x\x00y,2\nGood,,3\n"

    _, all_mode = run_import(admin_client, late, mode="all")
    _, skip_mode = run_import(admin_client, late, mode="skip")
    _, nul_mode = run_import(admin_client, nul, mode="skip")

    assert early.status_code == 400 and "not readable as CSV" in text(early)
    assert wide.status_code == 400 and "at most 500 can be imported" in text(wide)
    assert 'data-committed="false"' in all_mode
    assert [(n, c) for n, c, _ in row_errors(all_mode)] == [(12, "—")]
    assert "later rows were not read" in all_mode
    assert 'data-committed="true"' in skip_mode and re.search(r"<strong>10</strong> created", skip_mode)
    assert [(n, c) for n, c, _ in row_errors(nul_mode)] == [(2, "name"), (3, "notes")]
    assert Record.objects.filter(collection=customers).count() == 11


def test_numbers_and_json_that_cannot_be_stored_are_row_errors(admin_client, customers, admin_user):
    from records.services import collection_update

    fields = [*customers.fields, {"key": "meta", "type": "json"}, {"key": "amount", "type": "number"}]
    collection_update(actor=admin_user, collection=customers, fields=fields)
    rows = 'name,meta,amount\nA,{"x": NaN},1\nB,{},1e400\nC,"{""ok"": 1}",2.5\n'

    _, body = run_import(admin_client, rows, mode="skip")

    assert [(n, c) for n, c, _ in row_errors(body)] == [(2, "meta"), (3, "amount")]
    assert Record.objects.get(collection=customers).data == {
        "name": "C",
        "tier": "free",
        "meta": {"ok": 1},
        "amount": 2.5,
    }


def test_binary_junk_does_not_break_the_import(admin_client, customers):
    junk = bytes(range(1, 256)).decode("latin-1").replace("\x00", "")

    response = upload(admin_client, "name\n" + junk.replace("\n", " ") + "\n", encoding="latin-1")

    assert response.status_code in (302, 400)
    if response.status_code == 302:
        page = admin_client.get(response["Location"])
        body = text(admin_client.post(response["Location"], {**form_with_button(page, "Import").fields}))
        assert "data-committed" in body


def test_every_csv_cell_a_spreadsheet_would_run_is_guarded_and_imports_back(admin_client, admin_user):
    """Choice values, e-mails and record ids are typed by people too; numbers stay numbers."""
    from core.csv_cells import csv_cell_guard
    from records.services import collection_create, record_create

    fields = [
        {"key": "name", "type": "text"},
        {"key": "kind", "type": "choice", "choices": ["@SUM(A1:A9)", "plain"]},
        {"key": "mail", "type": "email"},
        {"key": "delta", "type": "integer"},
        {"key": "note", "type": "text"},
    ]
    things = collection_create(actor=admin_user, name="Things", slug="things", fields=fields)
    data = {"name": "+cmd|' /C calc'!A0", "kind": "@SUM(A1:A9)", "mail": "=1+1@x.test", "delta": -5, "note": "'=x"}
    record = record_create(actor=admin_user, collection=things, data=data, record_id="-A1")

    exported = text(admin_client.get("/records/things/export.csv")).lstrip("\ufeff")
    row = list(csv.reader(io.StringIO(exported)))[1]
    assert row[:6] == ["'-A1", "'+cmd|' /C calc'!A0", "'@SUM(A1:A9)", "'=1+1@x.test", "-5", "''=x"]
    assert csv_cell_guard("-1.5e3") == "-1.5e3" and csv_cell_guard("\t=1") == "'\t=1"

    file = SimpleUploadedFile("things.csv", exported.encode(), content_type="text/csv")
    url = admin_client.post("/records/things/import/", {"file": file})["Location"]
    form = form_with_button(admin_client.get(url), "Import")
    body = text(admin_client.post(url, {**form.fields, "mode": "all", "action": "import"}))
    assert 'data-committed="true"' in body, row_errors(body)
    record.refresh_from_db()
    assert record.data == data and Record.objects.filter(collection=things).count() == 1
