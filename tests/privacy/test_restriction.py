"""Restriction of processing (GDPR art. 18): the subject's records are kept but not processed — edits
refused on every surface (API problem+json, console form error, websocket error frame), left out of
exports and analytics, their webhook deliveries held, phones told to drop them — until the restriction
is lifted (audited), when all of it resumes. Another subject is untouched; another workspace cannot
touch the request."""

from __future__ import annotations

import json

import pytest

from analytics.queries import query_for, query_run
from audit.models import AuditEvent
from audit.selectors import audit_chain_verify
from privacy.retention import retention_apply, retention_policy_set
from privacy.services import subject_request_open
from records.exports import records_export
from records.models import Record
from records.query import table_query_parse
from records.services import record_create
from tests.conftest import ApiClient
from tests.privacy.conftest import ADA, GRACE
from tests.sync.conftest import Socket, run
from webhooks.delivery import delivery_attempt
from webhooks.models import Delivery
from webhooks.services import endpoint_create

pytestmark = pytest.mark.usefixtures("loopback_allowed", "own_counters", "own_channel_layer")


def _export(admin_user, customers) -> str:
    query = table_query_parse(customers, {})
    return b"".join(records_export(actor=admin_user, collection=customers, query=query, fmt="json")).decode()


def _counted() -> int:
    _, spec = query_for(raw={"collection": "customers", "aggregates": [{"fn": "count"}]}, livemode=True)
    return query_run(spec=spec, livemode=True, time_zone="UTC").rows[0][0]


def test_a_restricted_subject_is_kept_but_not_processed_until_lifted(
    tenant, admin_user, admin_client, mapped, api, pair, receiver, django_capture_on_commit_callbacks
):
    customers, orders = mapped
    endpoint, _ = endpoint_create(actor=admin_user, url=receiver.url(), event_types=["record.*"])
    ada = record_create(actor=admin_user, collection=customers, data=ADA)
    order = record_create(actor=admin_user, collection=orders, data={"customer_email": ADA["email"], "item": "lamp"})
    grace = record_create(actor=admin_user, collection=customers, data=GRACE)
    # Ada's order's delivery is still to go out when she asks (the receiver was down, say).
    for delivery in Delivery.objects.filter(endpoint=endpoint).exclude(event__payload__data__object__id=order.id):
        assert delivery_attempt(delivery.pk).result == "succeeded"
    assert _counted() == 2

    client = api(scopes=["compliance:manage", "records:write", "records:read"])
    opened = client.post(
        "/api/v1/subject_requests",
        {"kind": "restriction", "subject": ADA["email"], "requested_by": "Ada, by letter", "verification": "ID seen"},
    )
    assert opened.status_code == 201, opened.content
    dsr = opened.json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        restricted = client.post(f"/api/v1/subject_requests/{dsr}/restrict")
    assert restricted.status_code == 200, restricted.content
    body = restricted.json()
    assert body["status"] == "completed" and body["restricted_at"] and body["restriction_lifted_at"] is None
    assert {r["id"] for r in body["certificate"]["records_restricted"]} == {ada.id, order.id}

    # Edits refused: the API answers problem+json 409 subject_restricted; the record is unchanged.
    patched = client.patch(f"/api/v1/collections/customers/records/{ada.id}", {"data": {"tier": "pro"}})
    assert patched.status_code == 409 and patched["Content-Type"].startswith("application/problem+json")
    assert patched.json()["code"] == "subject_restricted"
    assert client.delete(f"/api/v1/collections/orders/records/{order.id}").json()["code"] == "subject_restricted"
    # the console's form shows why
    page = admin_client.get(f"/records/customers/r/{ada.id}/")
    form = admin_client.post(
        f"/records/customers/r/{ada.id}/",
        {"f-name": "Ada Changed", "f-email": ADA["email"], "f-tier": "pro", "base_version": ada.version},
    )
    assert page.status_code == 200 and form.status_code == 400
    assert "is restricted" in form.content.decode()
    # Grace is edited as usual
    assert (
        client.patch(f"/api/v1/collections/customers/records/{grace.id}", {"data": {"tier": "pro"}}).status_code == 200
    )
    assert Record.objects.get(pk=ada.pk).data == ADA | {"tier": "free"}

    # Exports and analytics leave her out.
    exported = _export(admin_user, customers)
    assert GRACE["email"] in exported and ADA["email"] not in exported
    assert _counted() == 1
    # Her order's held delivery does not go out.
    held = Delivery.objects.get(endpoint=endpoint, event__payload__data__object__id=order.id)
    assert held.status == "pending" and held.next_attempt_at is None
    # Retention keeps her record (she may need it for a claim).
    policy = retention_policy_set(actor=admin_user, collection=customers, days=1, action="erase")
    Record.objects.filter(pk__in=[ada.pk, grace.pk]).update(updated_at="2000-01-01T00:00:00Z")
    assert retention_apply(policy=policy, dry_run=True, actor=admin_user).record_ids == [grace.id]

    # A phone: the pull sends her record as a tombstone without values; its edit is refused with an error frame.
    _, token = pair()

    async def phone():
        sock = Socket(tenant, token)
        await sock.connect()
        docs = (await sock.call("customers", "masterChangesSince", [None, 10]))["result"]["documents"]
        (doc,) = [d for d in docs if d["id"] == ada.id]
        edit = {"id": ada.id, **ADA, "notes": "edited on the phone", "version": ada.version, "_deleted": False}
        answer = await sock.call("customers", "masterWrite", [[{"newDocumentState": edit}]])
        error = await sock.recv()
        await sock.close()
        return doc, answer, error

    doc, answer, error = run(phone)
    assert doc["_deleted"] is True and not any(v in json.dumps(doc) for v in ADA.values())
    assert answer["result"][0]["_deleted"] is True
    assert error["id"] == answer["id"] and error["error"]["code"] == "subject_restricted"
    assert error["error"]["records"] == [ada.id]

    # Lifting needs a reason, is audited, and processing resumes.
    assert client.post(f"/api/v1/subject_requests/{dsr}/lift_restriction", {"reason": ""}).status_code in (400, 422)
    with django_capture_on_commit_callbacks(execute=True):
        lifted = client.post(f"/api/v1/subject_requests/{dsr}/lift_restriction", {"reason": "accuracy confirmed"})
    assert lifted.status_code == 200 and lifted.json()["restriction_lifted_at"]
    again = client.post(f"/api/v1/subject_requests/{dsr}/lift_restriction", {"reason": "twice"})
    assert again.status_code == 409 and again.json()["code"] == "not_restricted"
    assert AuditEvent.objects.filter(action="subject_request.restriction_lifted", target_id=dsr).count() == 1
    assert AuditEvent.objects.filter(action="record.restriction_lifted", target_id=ada.id).count() == 1
    assert audit_chain_verify().ok
    held.refresh_from_db()
    assert held.next_attempt_at is not None and delivery_attempt(held.pk).result == "succeeded"
    assert client.patch(f"/api/v1/collections/customers/records/{ada.id}", {"data": {"tier": "pro"}}).status_code == 200
    assert ADA["email"] in _export(admin_user, customers) and _counted() == 2


@pytest.mark.saas_only  # one workspace per desktop
def test_another_workspace_cannot_restrict_or_lift(tenant, tenant_b, admin_user, api, mapped):
    from tenants.runtime import workspace_context

    record_create(actor=admin_user, collection=mapped[0], data=ADA)
    dsr = subject_request_open(
        actor=admin_user, kind="restriction", subject_identifier=ADA["email"], requested_by="x", verification="y"
    )
    key = api(scopes=["compliance:manage"])
    on_b = ApiClient(tenant_b, key.raw_key)
    assert on_b.post(f"/api/v1/subject_requests/{dsr.id}/restrict").status_code == 401
    with workspace_context(tenant_b):
        from accounts.models import User
        from partners.services import api_key_create

        b_admin = User.objects.filter(role="admin").first()
        _, raw = api_key_create(actor=b_admin, name="b", mode="live", scopes=["compliance:manage"])
    b_client = ApiClient(tenant_b, raw)
    assert b_client.post(f"/api/v1/subject_requests/{dsr.id}/restrict").status_code == 404
    assert b_client.post(f"/api/v1/subject_requests/{dsr.id}/lift_restriction", {"reason": "x"}).status_code == 404
    with workspace_context(tenant):
        dsr.refresh_from_db()
    assert dsr.restricted_at is None
