"""Members are data subjects too: an erasure request about a member's e-mail erases their account and
everything the workspace holds about them outside records, and partners hear `subject.erased`.

The member logs in through the console (a session, an audit event with their address and browser),
fails a log-in once (the log-in throttle's entry and an audit event naming the typed address), is
given a new role (a `member.role_changed` webhook body with their e-mail), changes a record (its
stamps), and pairs a phone named after them that is connected over the real websocket consumer. After
the erasure every table of the workspace's schema is read in full: their e-mail and name are nowhere;
the audit chain verifies, their events say "[erased]"; their session no longer works; the phone's
socket was closed; the webhook receiver got `subject.erased`, which names no one. The Admin who did it
is still named everywhere.

What this leaves out: as tests/privacy/test_erasure.py (dead row versions, deliveries attempted in
this process rather than by a Celery worker, the in-process websocket client instead of RxDB).
"""

from __future__ import annotations

import json

import pytest

from accounts.models import User
from accounts.services import AccountError, LastAdminError, member_erase, member_role_change, user_create
from audit.models import AuditEvent
from audit.selectors import audit_chain_verify
from core.actors import Actor
from privacy.selectors import subject_data_collect
from privacy.services import subject_request_erase, subject_request_open
from records.models import Record
from records.services import record_create
from sync.models import Device
from tests.conftest import ADMIN_PASSWORD
from tests.privacy.test_erasure import workspace_hits
from tests.sync.conftest import Socket, db, run
from webhooks.delivery import delivery_attempt
from webhooks.models import Delivery
from webhooks.services import endpoint_create

pytestmark = pytest.mark.usefixtures("loopback_allowed", "own_counters", "own_channel_layer")

MIRA = {"email": "mira.membrane@example.org", "full_name": "Mira Membrane"}
MIRA_VALUES = [MIRA["email"], MIRA["full_name"], "Membrane"]


def _deliver(endpoint) -> None:
    for delivery in Delivery.objects.filter(endpoint=endpoint, status="pending"):
        assert delivery_attempt(delivery.pk).result == "succeeded"


def test_erasing_a_member_leaves_no_trace_of_them_and_the_chain_verifies(
    tenant, admin_user, customers, pair, receiver, client_for, django_capture_on_commit_callbacks
):
    endpoint, _ = endpoint_create(
        actor=admin_user, url=receiver.url(), event_types=["member.*", "device.*", "subject.erased"]
    )
    mira = user_create(email=MIRA["email"], password=ADMIN_PASSWORD, full_name=MIRA["full_name"], role="manager")
    browser = client_for(tenant, HTTP_USER_AGENT="MiraBrowser/1.0")
    assert browser.post("/accounts/login/", {"username": MIRA["email"], "password": "wrong"}).status_code == 400
    response = browser.post("/accounts/login/", {"username": MIRA["email"], "password": ADMIN_PASSWORD})
    assert response.status_code == 302 and browser.get("/records/").status_code == 200
    stranger = client_for(tenant)
    stranger.post("/accounts/login/", {"username": MIRA["email"], "password": "guess"})
    record = record_create(actor=mira, collection=customers, data={"name": "Lamp buyer"})
    member_role_change(actor=admin_user, member=mira, role="analyst")
    device, token = pair(user=mira, name="Mira Membrane's phone")
    _deliver(endpoint)
    hits = workspace_hits(MIRA_VALUES)
    assert {"accounts_user", "audit_auditevent", "webhooks_event", "sync_device", "records_record"} <= set(hits)
    assert Record.objects.get(pk=record.pk).updated_by.endswith(MIRA["email"])
    assert audit_chain_verify().ok

    def erase():
        with django_capture_on_commit_callbacks(execute=True):
            request = subject_request_open(
                actor=admin_user,
                kind="erasure",
                subject_identifier=MIRA["email"],
                requested_by="Mira, in person",
                verification="known to the Admin",
            )
            return subject_request_erase(actor=admin_user, request=request)

    async def phone():
        sock = Socket(tenant, token)
        await sock.connect()
        request = await db(erase)()
        closed = await sock.comm.receive_output(timeout=3)
        return request, closed

    request, closed = run(phone)

    # the phone's socket was closed at once, and the phone is gone with the account
    assert closed["type"] == "websocket.close" and closed["code"] == 4401
    assert not Device.objects.filter(pk=device.pk).exists() and not User.objects.filter(pk=mira.pk).exists()
    # her session no longer signs anyone in
    assert browser.get("/records/").status_code == 302
    # nothing of her is left in any table of the workspace
    assert workspace_hits(MIRA_VALUES) == {}
    # the chain verifies; what she did is still there, without her name, address or browser
    assert audit_chain_verify().ok
    logged_in = AuditEvent.objects.filter(action="user.logged_in", actor_id=str(mira.pk)).get()
    assert (logged_in.actor_label, logged_in.ip, logged_in.user_agent) == ("[erased]", None, "[erased]")
    assert Record.objects.get(pk=record.pk).updated_by == f"user:{mira.pk}:[erased]"
    # the Admin who acted is still named
    changed = AuditEvent.objects.get(action="member.role_changed", target_id=str(mira.pk))
    assert changed.actor_label == admin_user.email and changed.target_label == "[erased]"
    # partners heard of it, with no value of hers in the body
    _deliver(endpoint)
    (erased,) = [r.json() for r in receiver.received if r.json()["type"] == "subject.erased"]
    assert erased["data"]["object"] == {
        "object": "subject_erasure",
        "request": request.id,
        "records": [],
        "member_erased": True,
    }
    assert not any(v.lower() in json.dumps(erased).lower() for v in MIRA_VALUES)
    assert request.certificate["member_erased"] is True


def test_a_member_cannot_erase_themselves_nor_the_last_admin_be_erased(tenant, admin_user, make_user):
    with pytest.raises(AccountError):
        member_erase(actor=admin_user, member=admin_user)
    other_admin = make_user("admin")
    member_erase(actor=admin_user, member=other_admin)
    assert not User.objects.filter(pk=other_admin.pk).exists()
    with pytest.raises(LastAdminError):
        member_erase(actor=Actor.system("compliance"), member=admin_user)
    assert User.objects.filter(pk=admin_user.pk, is_active=True).exists()


def test_the_access_package_holds_the_members_account_sessions_phones_and_actions(
    tenant, admin_user, make_user, customers, pair, client_for
):
    member = make_user("manager", email="pia.package@example.org", full_name="Pia Package")
    client_for(tenant, member)  # signed in: a session
    pair(user=member, name="Pia's phone")
    record_create(actor=member, collection=customers, data={"name": "Someone"})
    found = subject_data_collect("PIA.package@example.org")
    assert found.member["email"] == "pia.package@example.org" and found.member["full_name"] == "Pia Package"
    assert len(found.member["sessions"]) == 1
    assert [d["name"] for d in found.member["devices"]] == ["Pia's phone"]
    assert "record.created" in {a["action"] for a in found.member["activity"]}
    assert admin_user.email not in json.dumps(found.member)
