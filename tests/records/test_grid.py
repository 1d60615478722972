"""Editing in the records table: a cell saved through the write spine (typed, validated, versioned:
someone else's change meanwhile is merged or shown in the cell), and bulk edit/delete of the selected
rows, audited as one event. Driven as htmx does (the HX-Request header; the answer is the row);
tests/browser/test_records_grid.py drives the same in Chromium."""

from __future__ import annotations

import re

import pytest

from audit.models import AuditEvent
from rbac.roles import Role
from records.models import Change, Record
from records.services import record_create, record_delete, record_update
from tests.html_forms import form_with_button

HX = {"HTTP_HX_REQUEST": "true"}


def text(response) -> str:
    return response.content.decode()


@pytest.fixture
def as_role(tenant, client_for, make_user, admin_user):
    def make(role: str):
        user = admin_user if role == Role.ADMIN else make_user(role=role)
        return client_for(tenant, user)

    return make


@pytest.fixture
def ada(customers, admin_user):
    return record_create(
        actor=admin_user, collection=customers, data={"name": "Ada", "email": "ada@x.test", "score": 30}
    )


def cell_url(record, key: str) -> str:
    return f"/records/customers/r/{record.id}/cell/{key}/"


def editor_of(response) -> str:
    found = re.search(r'<td data-key="[^"]+" class="editing.*?</td>', text(response), re.S)
    assert found, "no cell editor in the answer"
    return found.group(0)


def save_cell(client, record, key: str, value: str, version: int):
    return client.post(cell_url(record, key), {f"f-{key}": value, "base_version": str(version)}, **HX)


def test_a_cell_opens_a_typed_editor_at_the_records_version(admin_client, ada):
    score = admin_client.get(cell_url(ada, "score"), **HX)
    tier = admin_client.get(cell_url(ada, "tier"), **HX)

    assert score.status_code == 200 and text(score).startswith(f'<tr data-id="{ada.id}" data-version="1">')
    assert re.search(r'<input type="number" name="f-score" value="30"', editor_of(score))
    assert 'name="base_version" value="1"' in editor_of(score)
    assert re.search(r'<select name="f-tier".*<option value="pro"', editor_of(tier), re.S)


def test_a_saved_cell_goes_through_the_spine_and_answers_the_new_row(admin_client, ada):
    saved = save_cell(admin_client, ada, "score", "31", 1)

    ada.refresh_from_db()
    assert saved.status_code == 200
    assert ada.data["score"] == 31 and ada.version == 2
    assert 'data-version="2"' in text(saved) and 'class="editing' not in text(saved)
    assert re.search(r'<td class="num" data-key="score">31</td>', text(saved))
    assert re.search(r'<td data-key="name"><a href="[^"]+" class="open">Ada</a></td>', text(saved))
    change = Change.objects.get(record_id=ada.id, version=2)
    assert change.changed_fields == ["score"]
    assert AuditEvent.objects.filter(action="record.updated", target_id=ada.id).count() == 1


def test_a_refused_value_keeps_what_was_typed_and_says_why(admin_client, ada, admin_user, customers):
    record_create(actor=admin_user, collection=customers, data={"name": "Bob", "email": "bob@x.test"})

    not_a_number = save_cell(admin_client, ada, "score", "thirty", 1)
    taken = save_cell(admin_client, ada, "email", "BOB@x.test", 1)
    required = save_cell(admin_client, ada, "name", "", 1)

    ada.refresh_from_db()
    assert ada.version == 1 and ada.data["email"] == "ada@x.test"
    assert not_a_number.status_code == 400 and 'value="thirty"' in editor_of(not_a_number)
    assert "Enter a whole number." in editor_of(not_a_number)
    assert taken.status_code == 400 and 'value="BOB@x.test"' in editor_of(taken)
    assert "Another record already has this “email”." in editor_of(taken)
    assert required.status_code == 400 and "This field is required." in editor_of(required)


def test_clearing_a_cell_removes_the_value(admin_client, ada):
    cleared = save_cell(admin_client, ada, "score", "", 1)

    ada.refresh_from_db()
    assert cleared.status_code == 200 and "score" not in ada.data


def test_someone_elses_change_to_another_field_is_merged(admin_client, ada, make_user):
    manager = make_user(role=Role.MANAGER)
    record_update(actor=manager, record=ada, data={"name": "Ada Lovelace"})

    saved = save_cell(admin_client, ada, "score", "99", 1)

    ada.refresh_from_db()
    assert saved.status_code == 200
    assert ada.data["name"] == "Ada Lovelace" and ada.data["score"] == 99 and ada.version == 3


def test_a_stale_cell_shows_their_value_and_saving_again_keeps_mine(admin_client, ada, make_user):
    manager = make_user(role=Role.MANAGER, email="meg@alpha.test")
    record_update(actor=manager, record=ada, data={"score": 40})

    stale = save_cell(admin_client, ada, "score", "35", 1)

    ada.refresh_from_db()
    assert stale.status_code == 409 and ada.data["score"] == 40
    editor = editor_of(stale)
    assert re.search(r"meg@alpha.test changed this to “40” while you were editing", editor)
    assert 'value="35"' in editor and 'name="base_version" value="2"' in editor
    assert "Save mine" in editor and "Keep theirs" in editor

    mine = save_cell(admin_client, ada, "score", "35", 2)

    ada.refresh_from_db()
    assert mine.status_code == 200 and ada.data["score"] == 35 and ada.version == 3


def test_a_cell_of_a_record_deleted_meanwhile_says_so(admin_client, ada, admin_user):
    record_delete(actor=admin_user, record=ada)

    gone = save_cell(admin_client, ada, "score", "1", 1)

    assert gone.status_code == 200 and "This record was deleted by someone else" in text(gone)


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ANALYST])
def test_readers_get_no_editor_and_cannot_save_a_cell(as_role, ada, role):
    reader = as_role(role)

    table = reader.get("/records/customers/")
    opened = reader.get(cell_url(ada, "score"), **HX)
    saved = save_cell(reader, ada, "score", "1", 1)

    ada.refresh_from_db()
    assert "data-editable" not in text(table) and 'form="bulk"' not in text(table)
    assert opened.status_code == 403 and saved.status_code == 403 and ada.data["score"] == 30


# --- bulk ----------------------------------------------------------------------------------------


@pytest.fixture
def many(customers, admin_user):
    return [record_create(actor=admin_user, collection=customers, data={"name": f"P{i}", "score": i}) for i in range(6)]


def test_bulk_delete_removes_the_selection_with_one_audit_event(admin_client, many):
    chosen = [r.id for r in many[:4]]
    table = admin_client.get("/records/customers/?sort=score")
    form = form_with_button(table, "Delete selected")

    done = admin_client.post(form.action, {**form.fields, "action": "delete", "ids": chosen})

    assert done.status_code == 302 and done["Location"] == "/records/customers/?sort=score"
    assert set(Record.objects.filter(deleted_at=None).values_list("id", flat=True)) == {r.id for r in many[4:]}
    assert "4 records deleted." in text(admin_client.get(done["Location"]))
    bulk = AuditEvent.objects.filter(action="records.bulk_deleted")
    assert bulk.count() == 1 and bulk.get().changes["count"] == 4
    assert sorted(bulk.get().changes["ids"]) == sorted(chosen)
    assert not AuditEvent.objects.filter(action="record.deleted").exists()
    assert Change.objects.filter(op="deleted").count() == 4  # phones and webhooks hear of each one


def test_bulk_set_is_all_or_nothing(admin_client, many, customers):
    ids = [r.id for r in many]
    url = "/records/customers/bulk/"

    done = admin_client.post(url, {"action": "set", "field": "tier", "value": "pro", "ids": ids})
    bad = admin_client.post(url, {"action": "set", "field": "score", "value": "lots", "ids": ids})
    unique = admin_client.post(url, {"action": "set", "field": "email", "value": "same@x.test", "ids": ids[:2]})

    assert done.status_code == 302
    assert {r.data.get("tier") for r in Record.objects.filter(id__in=ids)} == {"pro"}
    event = AuditEvent.objects.get(action="records.bulk_updated")
    assert event.changes["count"] == 6 and event.changes["set"] == {"tier": "pro"}
    assert bad.status_code == 302 and unique.status_code == 302
    assert not Record.objects.filter(data__has_key="email").exists()
    flashed = text(admin_client.get("/records/customers/"))
    assert "Enter a whole number." in flashed or "Enter a number." in flashed or "score" in flashed
    assert "Nothing was changed: Another record already has this “email”." in flashed


def test_bulk_needs_a_selection_and_edit_rights(admin_client, as_role, many):
    empty = admin_client.post("/records/customers/bulk/", {"action": "delete"}, follow=True)
    viewer = as_role(Role.VIEWER).post("/records/customers/bulk/", {"action": "delete", "ids": [many[0].id]})

    assert "Select the records first" in text(empty)
    assert viewer.status_code == 403 and Record.objects.filter(deleted_at=None).count() == 6


def test_bulk_goes_back_only_to_this_site(admin_client, many):
    done = admin_client.post(
        "/records/customers/bulk/", {"action": "delete", "ids": [many[0].id], "next": "https://evil.test/"}
    )

    assert done["Location"] == "/records/customers/"


@pytest.mark.saas_only
def test_another_workspaces_session_cannot_edit_these_records(ada, tenant, tenant_b, client_for):
    from accounts.models import User
    from tenants.runtime import workspace_context

    with workspace_context(tenant_b):
        beta_admin = User.objects.get(email="admin@beta.test")
    on_b = client_for(tenant_b, beta_admin)

    opened = on_b.get(cell_url(ada, "score"), **HX)
    saved = save_cell(on_b, ada, "score", "1", 1)
    bulk = on_b.post("/records/customers/bulk/", {"action": "delete", "ids": [ada.id]})

    with workspace_context(tenant):  # the requests left the connection in beta's schema
        ada.refresh_from_db()
    assert opened.status_code == 404 and saved.status_code == 404 and bulk.status_code == 404
    assert ada.data["score"] == 30 and ada.deleted_at is None


def test_bulk_deleted_records_free_their_unique_values_and_tell_the_feed(admin_client, ada, admin_user, customers):
    done = admin_client.post("/records/customers/bulk/", {"action": "delete", "ids": [ada.id]})

    change = Change.objects.get(record_id=ada.id, op="deleted")
    again = record_create(actor=admin_user, collection=customers, data={"name": "Ada 2", "email": "ada@x.test"})
    assert done.status_code == 302 and change.version == 2 and change.data["email"] == "ada@x.test"
    assert again.data["email"] == "ada@x.test"


def test_select_all_matching_deletes_every_record_of_the_tables_query(admin_client, many):
    done = admin_client.post(
        "/records/customers/bulk/", {"action": "delete", "scope": "matching", "query": "score__gte=3"}
    )

    assert done.status_code == 302
    assert sorted(r.data["score"] for r in Record.objects.filter(deleted_at=None)) == [0, 1, 2]


# --- bulk jobs: large selections carried out by a worker ----------------------------------------------


@pytest.fixture
def small_jobs(monkeypatch):
    """A "large" selection is anything over 2 records here, and a worker's batch is 2 records."""
    from records import services
    from records.views import grid

    monkeypatch.setattr(grid, "BULK_INLINE", 2)
    monkeypatch.setattr(services, "BULK_JOB_BATCH", 2)


def test_a_large_selection_is_deleted_by_a_worker_with_progress_above_the_table(admin_client, many, small_jobs):
    """The worker's code is run in this process, a batch at a time (the broker between them is left out:
    the test's transaction never commits, so the queued message is never sent)."""
    from records.models import BulkJob
    from records.services import records_bulk_job_run

    done = admin_client.post(
        "/records/customers/bulk/", {"action": "delete", "scope": "matching", "query": "score__gte=1"}, follow=True
    )
    job = BulkJob.objects.get()

    assert "Deleting 5 records in the background" in text(done) and "0 of 5 records (0 %)" in text(done)
    assert Record.objects.filter(deleted_at=None).count() == 6  # nothing yet: the worker does it
    assert records_bulk_job_run(job_id=job.pk, limit=2) is False
    polled = admin_client.get("/records/customers/bulk/jobs/", **HX)
    assert "2 of 5 records (40 %)" in text(polled) and 'hx-trigger="every 1s"' in text(polled)
    assert '<progress max="5" value="2"' in text(polled) and "<html" not in text(polled)
    assert not AuditEvent.objects.filter(action="records.bulk_deleted").exists()  # audited when it ends

    assert records_bulk_job_run(job_id=job.pk) is True
    finished = admin_client.get("/records/customers/bulk/jobs/", **HX)
    assert "Done: 5 records deleted" in text(finished) and "hx-trigger" not in text(finished)
    assert [r.data["score"] for r in Record.objects.filter(deleted_at=None)] == [0]
    event = AuditEvent.objects.get(action="records.bulk_deleted")
    assert event.changes["count"] == 5 and event.changes["job"] == job.pk
    assert sorted(event.changes["ids"]) == sorted(r.id for r in many if r.data["score"] >= 1)
    assert Change.objects.filter(op="deleted").count() == 5 and not AuditEvent.objects.filter(action="record.deleted")
    assert records_bulk_job_run(job_id=job.pk) is True  # a second worker on an ended job does nothing


def test_a_background_set_runs_through_the_task_and_stops_when_its_author_may_no_longer_edit(
    many, small_jobs, tenant, client_for, make_user, admin_user, monkeypatch, django_capture_on_commit_callbacks
):
    from accounts.services import member_role_change
    from config.celery_app import app
    from records.models import BulkJob
    from records.services import records_bulk_job_run

    manager = make_user(role=Role.MANAGER)
    client = client_for(tenant, manager)
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    with django_capture_on_commit_callbacks(execute=True):  # queued on commit; Celery eager runs it here
        client.post("/records/customers/bulk/", {"action": "set", "field": "tier", "value": "pro", "scope": "matching"})
    assert {r.data["tier"] for r in Record.objects.all()} == {"pro"}
    assert AuditEvent.objects.get(action="records.bulk_updated").changes["set"] == {"tier": "pro"}
    unique = client.post(
        "/records/customers/bulk/", {"action": "set", "field": "email", "value": "a@x.test", "scope": "matching"}
    )
    assert unique.status_code == 302 and BulkJob.objects.count() == 1  # refused before any job is made

    client.post("/records/customers/bulk/", {"action": "set", "field": "tier", "value": "free", "scope": "matching"})
    job = BulkJob.objects.get(status="running")
    records_bulk_job_run(job_id=job.pk, limit=2)
    member_role_change(actor=admin_user, member=manager, role=Role.VIEWER)
    records_bulk_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.status == "failed" and job.position == 2 and "may no longer edit" in job.error
    assert sorted(r.data["tier"] for r in Record.objects.all()) == ["free", "free", "pro", "pro", "pro", "pro"]
    stopped = AuditEvent.objects.filter(action="records.bulk_updated").order_by("seq").last()
    assert stopped.changes["count"] == 2 and "may no longer edit" in stopped.changes["stopped"]
    polled = client_for(tenant, admin_user).get("/records/customers/bulk/jobs/", **HX)
    assert "Stopped after 2 of 6" in text(polled)


@pytest.mark.saas_only
def test_another_workspace_sees_no_bulk_job_of_this_one(admin_client, many, small_jobs, tenant_b, client_for):
    from accounts.models import User
    from tenants.runtime import workspace_context

    admin_client.post("/records/customers/bulk/", {"action": "delete", "scope": "matching", "query": ""})
    with workspace_context(tenant_b):
        beta_admin = User.objects.get(email="admin@beta.test")

    polled = client_for(tenant_b, beta_admin).get("/records/customers/bulk/jobs/", **HX)

    assert polled.status_code == 404
