"""Data-subject requests: the SLA clock (frozen and advanced with a patched clock), reminders, the
access package behind its signed link, the console and the API, and isolation between workspaces."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import timedelta
from unittest import mock

import pytest
from django.core import mail
from django.utils import timezone

from audit.models import AuditEvent
from privacy.models import SubjectRequest
from privacy.services import subject_request_extend, subject_request_open, subject_requests_remind
from records.services import record_create, record_update
from tests.conftest import ApiClient
from tests.privacy.conftest import ADA, GRACE, GRACE_VALUES


def _open(actor, kind="access", regime="gdpr", received_at=None, subject=ADA["email"]):
    return subject_request_open(
        actor=actor,
        kind=kind,
        regime=regime,
        subject_identifier=subject,
        requested_by="the subject, by e-mail",
        verification="replied from the address on file",
        received_at=received_at,
    )


def _at(moment):
    """The clock stopped at `moment` (everything that asks django.utils.timezone.now)."""
    return mock.patch("django.utils.timezone.now", return_value=moment)


# --- the SLA clock -------------------------------------------------------------------------------------


def test_due_dates_follow_the_law_and_the_clock_runs_out(tenant, admin_user):
    start = timezone.now().replace(microsecond=0) - timedelta(days=1)
    gdpr = _open(admin_user, regime="gdpr", received_at=start)
    ccpa = _open(admin_user, regime="ccpa", received_at=start)
    assert gdpr.due_at == start + timedelta(days=30) and ccpa.due_at == start + timedelta(days=45)
    with _at(start + timedelta(days=29, hours=23)):
        assert not gdpr.overdue and gdpr.days_left == 0
    with _at(start + timedelta(days=30, hours=1)):
        assert gdpr.overdue and not ccpa.overdue
        assert list(SubjectRequest.objects.filter(pk__in=[gdpr.pk, ccpa.pk], due_at__lt=timezone.now())) == [gdpr]


def test_extension_moves_the_due_date_once(tenant, admin_user):
    from core.errors import Conflict, ServiceError

    dsr = _open(admin_user)
    due = dsr.due_at
    with pytest.raises(ServiceError):
        subject_request_extend(actor=admin_user, request=dsr, reason=" ")
    subject_request_extend(actor=admin_user, request=dsr, reason="complex: many stores")
    assert dsr.due_at == due + timedelta(days=60) and dsr.extended
    with pytest.raises(Conflict):
        subject_request_extend(actor=admin_user, request=dsr, reason="again")


def test_admins_are_reminded_once_before_a_request_falls_due(tenant, admin_user, make_user):
    make_user("manager")  # not an Admin: not reminded
    start = timezone.now() - timedelta(days=1)
    dsr = _open(admin_user, received_at=start)
    assert subject_requests_remind(now=start + timedelta(days=20)) == []  # 10 days left: too early
    reminded = subject_requests_remind(now=start + timedelta(days=24))  # 6 days left
    assert [r.pk for r in reminded] == [dsr.pk]
    (message,) = mail.outbox
    assert dsr.pk in message.subject and "due on" in message.subject and message.to == ["admin@alpha.test"]
    assert ADA["email"] not in message.body  # the subject is not named in e-mail
    assert subject_requests_remind(now=start + timedelta(days=25)) == []  # once
    assert AuditEvent.objects.filter(action="subject_request.reminded", target_id=dsr.pk).count() == 1


# --- the access package -------------------------------------------------------------------------------


def test_access_package_holds_every_value_about_the_subject_and_nothing_else(tenant, admin_user, mapped, anon_client):
    customers, orders = mapped
    ada = record_create(actor=admin_user, collection=customers, data=ADA)
    record_update(actor=admin_user, record=ada, data={"tier": "pro"})
    order = record_create(actor=admin_user, collection=orders, data={"customer_email": ADA["email"], "item": "lamp"})
    record_create(actor=admin_user, collection=customers, data=GRACE)
    record_create(actor=admin_user, collection=orders, data={"customer_email": GRACE["email"], "item": "desk"})

    from privacy.services import subject_request_package

    dsr = _open(admin_user)
    token, _ = subject_request_package(actor=admin_user, request=dsr)
    response = anon_client.get(f"/compliance/packages/{token}")  # the subject has no account
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    body = b"".join(response.streaming_content)
    archive = zipfile.ZipFile(io.BytesIO(body))
    names = set(archive.namelist())
    assert {"README.txt", "request.json", "records.json", "history.json", "audit.json"} <= names
    assert {"records/customers.csv", "records/orders.csv"} <= names
    records = {r["id"]: r for r in json.loads(archive.read("records.json"))}
    assert records[ada.id]["data"] == {**ADA, "tier": "pro"}
    assert records[order.id]["data"] == {"customer_email": ADA["email"], "item": "lamp"}
    assert set(records) == {ada.id, order.id}
    history = json.loads(archive.read("history.json"))
    assert [(h["record"], h["op"]) for h in history] == [
        (ada.id, "created"),
        (ada.id, "updated"),
        (order.id, "created"),
    ]
    audit = json.loads(archive.read("audit.json"))
    assert audit[0]["changes"]["after"]["email"] == ADA["email"]  # opened from the vault
    rows = list(csv.DictReader(io.StringIO(archive.read("records/customers.csv").decode())))
    assert rows == [{"id": ada.id, "name": ADA["name"], "email": ADA["email"], "phone": ADA["phone"],
                     "notes": ADA["notes"], "tier": "pro"}]  # fmt: skip
    everything = b"".join(archive.read(n) for n in names).decode()
    assert not any(v in everything for v in [*GRACE_VALUES, "desk", "admin@alpha.test"])
    assert "records.json" in archive.read("README.txt").decode()


def test_package_link_is_refused_when_forged_expired_or_erased(tenant, admin_user, mapped, anon_client, settings):
    from privacy.services import subject_request_package

    dsr = _open(admin_user)
    token, _ = subject_request_package(actor=admin_user, request=dsr)
    assert anon_client.get(f"/compliance/packages/{token}x").status_code == 404
    settings.TESSERA_DSR_PACKAGE_LINK_SECONDS = 60
    with mock.patch("time.time", return_value=__import__("time").time() + 120):
        assert anon_client.get(f"/compliance/packages/{token}").status_code == 404


# --- the console ---------------------------------------------------------------------------------------


def test_console_opens_a_request_shows_the_clock_and_erases(tenant, admin_client, admin_user, mapped):
    customers, _ = mapped
    record_create(actor=admin_user, collection=customers, data=ADA)
    response = admin_client.post(
        "/compliance/requests/new",
        {
            "kind": "erasure",
            "regime": "ccpa",
            "subject": ADA["email"],
            "requested_by": "the subject, by phone",
            "verification": "call-back to the number on file",
        },
    )
    assert response.status_code == 302
    dsr = SubjectRequest.objects.get()
    page = admin_client.get(response["Location"]).content.decode()
    assert ADA["name"] in page and 'data-sla="on-track"' in page and "44 days left" in page
    listing = admin_client.get("/compliance/").content.decode()
    assert dsr.pk in listing
    response = admin_client.post(f"/compliance/requests/{dsr.pk}", {"action": "erase"})
    assert response.status_code == 302
    page = admin_client.get(f"/compliance/requests/{dsr.pk}").content.decode()
    assert 'data-testid="certificate"' in page and "customers: 1" in page and ADA["email"] not in page


def test_console_form_errors_and_permissions(tenant, admin_client, make_user, client_for):
    response = admin_client.post("/compliance/requests/new", {"kind": "erasure", "regime": "gdpr", "subject": ""})
    assert response.status_code == 400 and b"This field is required" in response.content
    manager = client_for(tenant, make_user("manager"))
    assert manager.get("/compliance/").status_code == 403
    assert manager.get("/compliance/data-map").status_code == 403


def test_console_data_map_marks_fields(tenant, admin_client, customers):
    response = admin_client.post(
        "/compliance/data-map", {"collection": customers.pk, "personal": ["name", "phone"], "identifying": ["email"]}
    )
    assert response.status_code == 302
    page = admin_client.get("/compliance/data-map").content.decode()
    assert 'value="email" aria-label="email identifies the person" checked' in page
    response = admin_client.post("/compliance/data-map", {"collection": customers.pk, "personal": ["nope"]})
    assert response.status_code == 422 and b"No field nope" in response.content


# --- the API ---------------------------------------------------------------------------------------------


def test_api_opens_lists_and_erases(tenant, api, admin_user, mapped):
    customers, _ = mapped
    ada = record_create(actor=admin_user, collection=customers, data=ADA)
    client = api(scopes=["compliance:manage"])
    created = client.post(
        "/api/v1/subject_requests",
        {"kind": "erasure", "subject": ADA["email"], "requested_by": "web form", "verification": "e-mail link"},
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["object"] == "subject_request" and body["status"] == "open" and body["days_left"] == 29
    assert client.get("/api/v1/subject_requests?status=open").json()["data"][0]["id"] == body["id"]
    erased = client.post(f"/api/v1/subject_requests/{body['id']}/erase", {})
    assert erased.status_code == 200, erased.content
    assert erased.json()["status"] == "completed" and erased.json()["subject"] == "[erased]"
    ada.refresh_from_db()
    assert ada.data == {} and ada.deleted_at is not None
    again = client.post(f"/api/v1/subject_requests/{body['id']}/erase", {})
    assert again.status_code == 409 and again["Content-Type"].startswith("application/problem+json")


def test_api_errors_are_problems(tenant, api):
    client = api(scopes=["compliance:manage"])
    bad = client.post("/api/v1/subject_requests", {"kind": "forget-me", "subject": "x"})
    assert bad.status_code == 400 and bad["Content-Type"].startswith("application/problem+json")
    assert client.get("/api/v1/subject_requests/dsr_nope").status_code == 404
    assert api(scopes=["records:read"]).get("/api/v1/subject_requests").status_code == 403
    assert api(scopes=["compliance:manage"], mode="test").get("/api/v1/subject_requests").status_code == 403


@pytest.mark.saas_only
def test_a_workspace_sees_none_of_another_workspaces_requests(tenant, tenant_b, admin_user, api, client_for):
    """Tenant B's requests, package links and pages are unknown with tenant A's key and session."""
    from accounts.models import User
    from privacy.services import subject_request_package
    from tenants.runtime import workspace_context

    with workspace_context(tenant_b):
        b_admin = User.objects.get(email="admin@beta.test")
        b_request = _open(b_admin, subject="someone@beta.test")
        b_token, _ = subject_request_package(actor=b_admin, request=b_request)
    a_key = api(scopes=["compliance:manage"])
    assert a_key.get(f"/api/v1/subject_requests/{b_request.pk}").status_code == 404
    assert all(r["id"] != b_request.pk for r in a_key.get("/api/v1/subject_requests").json()["data"])
    a_on_b = ApiClient(tenant_b, a_key.raw_key)
    assert a_on_b.get("/api/v1/subject_requests").status_code == 401
    a_session = client_for(tenant, admin_user)
    assert a_session.get(f"/compliance/requests/{b_request.pk}").status_code == 404
    assert a_session.get(f"/compliance/packages/{b_token}").status_code == 404  # signed for B only
    assert client_for(tenant_b).get(f"/compliance/packages/{b_token}").status_code == 200
    with workspace_context(tenant_b):
        SubjectRequest.objects.filter(pk=b_request.pk).delete()


def test_the_subject_index_follows_the_map_and_the_records(tenant, admin_user, customers):
    """Records written before the map marks a field are found once it does; a changed e-mail moves."""
    from privacy.models import SubjectKey
    from privacy.selectors import subject_records_find
    from privacy.services import personal_data_map_set

    ada = record_create(actor=admin_user, collection=customers, data=ADA)
    assert subject_records_find(ADA["email"]) == []  # nothing marks e-mail as identifying yet
    personal_data_map_set(actor=admin_user, collection=customers, personal=["name"], identifying=["email"])
    assert subject_records_find(f"  {ADA['email'].upper()} ") == [ada]
    record_update(actor=admin_user, record=ada, data={"email": "ada.new@example.org"})
    assert subject_records_find(ADA["email"]) == [] and subject_records_find("ada.new@example.org") == [ada]
    # hashes, never the values ("ada" alone is three hex digits: a hash may hold it by chance)
    assert not SubjectKey.objects.filter(value_hash__icontains="example.org").exists()
    assert all(
        len(h) >= 32 and set(h) <= set("0123456789abcdef")
        for h in SubjectKey.objects.values_list("value_hash", flat=True)
    )


def test_rectification_corrects_every_record_of_the_subject_through_the_write_spine(tenant, api, admin_user, mapped):
    """The corrected phone is written to Ada's customer record as an edit (new version, change feed,
    audit); Grace is untouched; the certificate names fields, not values; bad corrections are refused
    whole, as problems."""
    from records.models import Change, Record

    customers, orders = mapped
    ada = record_create(actor=admin_user, collection=customers, data=ADA)
    grace = record_create(actor=admin_user, collection=customers, data=GRACE)
    record_create(actor=admin_user, collection=orders, data={"customer_email": ADA["email"], "item": "lamp"})
    client = api(scopes=["compliance:manage", "records:write"])
    dsr = _open(admin_user, kind="rectification")
    url = f"/api/v1/subject_requests/{dsr.pk}/rectify"

    unknown = client.post(url, {"corrections": {"phone": "+44 20 0000 0000", "shoe_size": 9}})
    assert unknown.status_code == 422 and unknown.json()["param"] == "corrections"
    invalid = client.post(url, {"corrections": {"tier": "platinum"}})  # not a choice of the field
    assert invalid.status_code in (400, 422) and invalid["Content-Type"].startswith("application/problem+json")
    assert Record.objects.get(pk=ada.pk).version == 1

    done = client.post(url, {"corrections": {"phone": "+44 20 0000 0000"}})
    assert done.status_code == 200, done.content
    assert done.json()["status"] == "completed"
    ada.refresh_from_db()
    assert ada.data["phone"] == "+44 20 0000 0000" and ada.version == 2
    assert Change.objects.filter(record_id=ada.id, op="updated", changed_fields=["phone"]).exists()
    assert Record.objects.get(pk=grace.pk).data == {**GRACE, "tier": "free"}
    certificate = SubjectRequest.objects.get(pk=dsr.pk).certificate
    assert certificate["records_rectified"] == [{"collection": "customers", "id": ada.id, "fields": ["phone"]}]
    assert "0000" not in json.dumps(certificate)
    assert AuditEvent.objects.filter(action="subject_request.rectified", target_id=dsr.pk).exists()
    assert client.post(url, {"corrections": {"phone": "1"}}).status_code == 409  # closed now


def test_console_rectifies_and_shows_form_errors(tenant, admin_client, admin_user, mapped):
    customers, _ = mapped
    ada = record_create(actor=admin_user, collection=customers, data=ADA)
    dsr = _open(admin_user, kind="rectification")
    url = f"/compliance/requests/{dsr.pk}"
    assert b'value="rectify"' in admin_client.get(url).content
    assert admin_client.post(url, {"action": "rectify", "corrections": "no equals sign"}).status_code == 400
    assert admin_client.post(url, {"action": "rectify", "corrections": "shoe_size = 9"}).status_code == 422
    assert admin_client.post(url, {"action": "rectify", "corrections": "phone = +44 1"}).status_code == 302
    ada.refresh_from_db()
    assert ada.data["phone"] == "+44 1"
    assert b"Records corrected" in admin_client.get(url).content
