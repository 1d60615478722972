"""Erasure of one data subject everywhere, with the audit chain still verifiable.

One subject (Ada) is seeded in every store a workspace keeps: a record created through the API with an
Idempotency-Key (the cached response), edited (change history and audit events), an order naming her,
webhook events delivered to a real HTTP receiver on loopback (outbox bodies and the delivery log), and a
paired phone that pulled her record (its checkpoint) and streams the collection over the real websocket
consumer, and a background export's file holding her record (plus one holding only Grace, which stays).
After the erasure every table of the workspace's schema is read in full and searched for her values, and
so is every file in the exports folder: none may be left; the audit chain verifies before and after; the
phone and the receiver got the deletion; Grace, another subject, is untouched.

What this leaves out: the database files themselves (PostgreSQL keeps dead row versions until VACUUM,
SQLite free pages until they are reused; the test's transaction never commits); a real RxDB client
(the in-process websocket client speaks the same frames; tests/sync/test_rxdb_clients.py has stock
RxDB phones through an erasure); a Celery worker (deliveries are attempted in
this process, as tests/webhooks/test_delivery.py does).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from django.db import connection

from analytics.export_jobs import export_file_path, export_job_run, export_job_start
from audit.models import AuditEvent, AuditVaultKey
from audit.selectors import audit_chain_verify
from audit.vault import ERASED, changes_open
from privacy.models import SubjectRequest
from privacy.selectors import subject_records_find
from privacy.services import subject_request_erase, subject_request_open
from records.models import Change, Record
from records.services import record_create, record_update
from sync.models import DeviceCheckpoint
from tests.privacy.conftest import ADA, ADA_VALUES, GRACE, GRACE_VALUES
from tests.sync.conftest import Socket, db, run
from webhooks.delivery import delivery_attempt
from webhooks.models import Delivery
from webhooks.services import endpoint_create

pytestmark = pytest.mark.usefixtures("loopback_allowed", "own_counters", "own_channel_layer")


def _cell_text(cell) -> str:
    if isinstance(cell, (bytes, memoryview)):
        return bytes(cell).decode("utf-8", "replace")
    if isinstance(cell, (dict, list)):
        return json.dumps(cell, ensure_ascii=False)
    return str(cell)


def file_hits(values: list[str]) -> dict[str, list[str]]:
    """{file: [values found]} over every file in the exports folder (every workspace's)."""
    from django.conf import settings

    hits: dict[str, list[str]] = {}
    for path in Path(settings.TESSERA_EXPORTS_DIR).rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", "replace").lower()
            hits.update(
                {str(path): [v for v in values if v.lower() in text]} if any(v.lower() in text for v in values) else {}
            )
    return hits


def workspace_hits(values: list[str]) -> dict[str, list[str]]:
    """{table: [values found]} over every table of the current workspace's schema, read in full."""
    hits: dict[str, list[str]] = {}
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        for table in tables:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                text = " ".join(_cell_text(c) for c in row).lower()
                for value in values:
                    if value.lower() in text:
                        hits.setdefault(table, []).append(value)
    return hits


def _erase(admin_user, identifier: str) -> SubjectRequest:
    request = subject_request_open(
        actor=admin_user,
        kind="erasure",
        subject_identifier=identifier,
        requested_by="the subject, by e-mail",
        verification="replied from the address on file",
    )
    return subject_request_erase(actor=admin_user, request=request)


def test_erasure_leaves_no_value_in_any_table_and_the_chain_verifies(
    tenant, admin_user, mapped, api, pair, receiver, django_capture_on_commit_callbacks
):
    customers, orders = mapped
    assert audit_chain_verify().ok
    endpoint, _ = endpoint_create(actor=admin_user, url=receiver.url(), event_types=["record.*", "subject.erased"])

    # Ada, through the API with an Idempotency-Key (its answer is cached), then edited in the console.
    client = api()
    created = client.post(
        "/api/v1/collections/customers/records", {"data": ADA}, headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert created.status_code == 201, created.content
    ada = Record.objects.get(id=created.json()["id"])
    record_update(actor=admin_user, record=ada, data={"tier": "pro", "notes": ADA["notes"] + " (vip)"})
    order = record_create(actor=admin_user, collection=orders, data={"customer_email": ADA["email"], "item": "lamp"})
    grace = record_create(actor=admin_user, collection=customers, data=GRACE)
    for delivery in Delivery.objects.filter(endpoint=endpoint):
        assert delivery_attempt(delivery.pk).result == "succeeded"
    # an export file of all customers (Ada and Grace), and one of Grace alone
    everyone = export_job_start(actor=admin_user, livemode=True, fmt="csv", collection="customers")
    only_grace = export_job_start(
        actor=admin_user, livemode=True, fmt="json", collection="customers", filters={"email": GRACE["email"]}
    )
    for job in (everyone, only_grace):
        export_job_run(token=job.token)
    assert workspace_hits(ADA_VALUES), "the seed put Ada's values in the stores"
    assert list(file_hits(ADA_VALUES)) == [str(export_file_path(everyone))]

    device, token = pair()

    def erase():
        with django_capture_on_commit_callbacks(execute=True):
            return _erase(admin_user, ADA["email"].upper())  # found case-insensitively

    async def phone():
        sock = Socket(tenant, token)
        await sock.connect()
        pulled = (await sock.call("customers", "masterChangesSince", [None, 10]))["result"]
        assert {d["id"] for d in pulled["documents"]} == {ada.id, grace.id}
        await sock.send({"id": "stream", "collection": "customers", "method": "masterChangeStream$", "params": []})
        assert (await sock.recv())["result"] == "RESYNC"
        request = await db(erase)()
        (doc,) = (await sock.recv())["result"]["documents"]
        await sock.close()
        return request, doc

    request, doc = run(phone)

    # the phone had synced (its checkpoint is stored) and was told: Ada's record is deleted, without values
    assert DeviceCheckpoint.objects.filter(device=device, collection=customers).exists()
    assert doc["id"] == ada.id and doc["_deleted"] is True
    assert not any(v.lower() in json.dumps(doc).lower() for v in ADA_VALUES)

    # the receiver got record.deleted for both of her records, without values
    for delivery in Delivery.objects.filter(endpoint=endpoint, status="pending"):
        assert delivery_attempt(delivery.pk).result == "succeeded"
    deleted = [r.json() for r in receiver.received if r.json()["type"] == "record.deleted"]
    assert {d["data"]["object"]["id"] for d in deleted} == {ada.id, order.id}
    assert all(d["data"]["object"]["data"] == {} for d in deleted)
    # and subject.erased, naming her records by id only, so it can erase downstream
    (erased,) = [r.json() for r in receiver.received if r.json()["type"] == "subject.erased"]
    assert erased["data"]["object"]["request"] == request.id and not erased["data"]["object"]["member_erased"]
    assert sorted(r["id"] for r in erased["data"]["object"]["records"]) == sorted([ada.id, order.id])
    assert not any(v.lower() in json.dumps(erased).lower() for v in ADA_VALUES)

    # nothing of Ada is left in any table of the workspace, nor in any file; the export that held her is gone
    assert workspace_hits(ADA_VALUES) == {}
    assert file_hits(ADA_VALUES) == {}
    everyone.refresh_from_db()
    assert everyone.status == "failed" and not export_file_path(everyone).exists()
    assert GRACE["email"] in export_file_path(only_grace).read_text()
    # the chain still verifies; her audit events are there, with their values erased
    assert audit_chain_verify().ok
    updated = AuditEvent.objects.filter(action="record.updated", target_id=ada.id).get()
    assert changes_open(updated.changes)["after"] == {"notes": ERASED, "tier": ERASED}
    assert not AuditVaultKey.objects.filter(subject__in=[f"record:{ada.id}", f"record:{order.id}"]).exists()
    # the records are tombstones without values; their history is emptied too
    assert Record.objects.get(pk=ada.pk).data == {} and Record.objects.get(pk=order.pk).deleted_at is not None
    assert all(c.data == {} for c in Change.objects.filter(record_id=ada.id))
    assert subject_records_find(ADA["email"]) == []
    # the request closed with its certificate, and forgot who it was about
    assert request.status == "completed" and request.certificate["records_erased"] == 2
    assert request.certificate["records_erased_by_collection"] == {"customers": 1, "orders": 1}
    assert request.subject_identifier == "[erased]"

    # Grace is untouched: her record, its history, her audit values, her webhook bodies
    assert Record.objects.get(pk=grace.pk).data["email"] == GRACE["email"]
    assert set(workspace_hits(GRACE_VALUES)) >= {"records_record", "records_change", "webhooks_event"}
    grace_created = AuditEvent.objects.get(action="record.created", target_id=grace.id)
    assert changes_open(grace_created.changes)["after"]["name"] == GRACE["name"]


def test_audit_events_of_records_hold_no_clear_values(tenant, admin_user, customers):
    """Personal values are sealed before they are hashed: the chain itself never holds them."""
    record = record_create(actor=admin_user, collection=customers, data=GRACE)
    event = AuditEvent.objects.get(action="record.created", target_id=record.id)
    assert GRACE["email"] not in json.dumps(event.changes)
    assert changes_open(event.changes)["after"]["email"] == GRACE["email"]


def test_an_erasure_needs_the_compliance_permission(tenant, admin_user, make_user, mapped):
    from core.errors import Forbidden

    manager = make_user("manager")
    with pytest.raises(Forbidden):
        subject_request_open(
            actor=manager, kind="erasure", subject_identifier=ADA["email"], requested_by="x", verification="y"
        )


def test_erasing_one_record_forgets_its_cached_api_answer(tenant, admin_user, customers, api):
    """A retention run erases records without a subject request: the record's id alone finds the cache."""
    from api.models import IdempotencyRecord
    from records.services import record_erase

    created = api().post(
        "/api/v1/collections/customers/records",
        {"data": {"name": "Kept Briefly"}},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert created.status_code == 201 and IdempotencyRecord.objects.filter(response_body__isnull=False).exists()
    record_erase(actor=admin_user, record=Record.objects.get(id=created.json()["id"]), reason="test")
    assert not any(b"Kept Briefly" in bytes(r.response_body or b"") for r in IdempotencyRecord.objects.all())
