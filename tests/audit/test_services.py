"""audit.services: one way to record an event; every event chained; the table is append-only."""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import TransactionTestCase

from audit.models import AuditChainHead, AuditEvent
from audit.registry import ACTIONS, UnknownAuditAction
from audit.selectors import audit_chain_verify
from audit.services import (
    GENESIS_HASH,
    Actor,
    audit_event_record,
    changes_diff,
    event_canonical_bytes,
    event_hash,
)
from audit.vault import changes_open
from core.request_context import RequestContext, request_context_reset, request_context_set
from tests.conftest import ADMIN_PASSWORD


def chain() -> list[AuditEvent]:
    return list(AuditEvent.objects.order_by("seq"))


def latest(action: str | None = None) -> AuditEvent:
    qs = AuditEvent.objects.order_by("-seq")
    return (qs.filter(action=action) if action else qs).first()


# --- the chain --------------------------------------------------------------------------------------


def test_every_event_is_linked_to_the_one_before(tenant, admin_user):
    before = AuditEvent.objects.count()
    recorded = [
        audit_event_record(action="member.invited", actor=admin_user, target=("invitation", i, f"p{i}@x.test"))
        for i in range(5)
    ]

    events = chain()
    assert len(events) == before + 5
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "seq runs 1..N without gaps"
    assert events[0].prev_hash == GENESIS_HASH
    for previous, event in itertools.pairwise(events):
        assert event.prev_hash == previous.hash
    for event in events:
        assert event.hash == event_hash(event)
    assert [e.pk for e in events[-5:]] == [e.pk for e in recorded]
    head = AuditChainHead.objects.get(pk=1)
    assert (head.seq, head.hash) == (events[-1].seq, events[-1].hash)
    assert audit_chain_verify().ok


def test_the_database_refuses_to_rewind_or_delete_the_chain_head(tenant):
    from django.db import DatabaseError, transaction

    audit_event_record(action="workspace.settings_changed", actor=Actor.system("test"))
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditChainHead.objects.filter(pk=1).update(seq=0)
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditChainHead.objects.all().delete()


def test_first_event_of_an_empty_log_starts_from_genesis(tenant):
    from tests.audit.tampering import audit_sql

    audit_sql("DELETE FROM audit_auditevent")
    audit_sql("DELETE FROM audit_auditchainhead")

    event = audit_event_record(action="workspace.settings_changed", actor=Actor.system("test"))
    assert (event.seq, event.prev_hash) == (1, GENESIS_HASH)
    second = audit_event_record(action="workspace.settings_changed", actor=Actor.system("test"))
    assert (second.seq, second.prev_hash) == (2, event.hash)


def test_hash_is_sha256_over_previous_hash_and_canonical_json(tenant):
    event = audit_event_record(
        action="member.role_changed",
        actor=Actor("user", "7", "ann@alpha.test"),
        target=("user", 7, "Ann"),
        changes={"before": {"role": "viewer"}, "after": {"role": "manager"}},
    )
    event.refresh_from_db()
    # A member's name and address are hashed sealed under the member (the clear columns are a copy
    # that erasing the member overwrites); the seals open to the clear values.
    sealed_actor, sealed_target = event.personal["actor_label"], event.personal["target_label"]
    assert sealed_actor["$vault"] == sealed_target["$vault"] == "user:7"
    assert changes_open(event.personal) == {"actor_label": "ann@alpha.test", "target_label": "Ann"}
    assert (event.actor_label, event.target_label) == ("ann@alpha.test", "Ann")

    body = {
        "seq": event.seq,
        "occurred_at": event.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": ["user", "7", sealed_actor],
        "action": "member.role_changed",
        "target": ["user", "7", sealed_target],
        "ip": None,
        "user_agent": "",
        "request_id": "",
        "changes": {"after": {"role": "manager"}, "before": {"role": "viewer"}},
        "prev_hash": event.prev_hash,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert event_canonical_bytes(event) == canonical
    assert event.hash == hashlib.sha256(event.prev_hash.encode() + b"\n" + canonical).hexdigest()


def test_canonical_form_is_independent_of_timezone_and_key_order(tenant):
    event = audit_event_record(action="workspace.settings_changed", changes={"b": 1, "a": {"y": 2, "x": 1}})
    event.refresh_from_db()
    same = AuditEvent(**{f.attname: getattr(event, f.attname) for f in AuditEvent._meta.fields})
    same.occurred_at = event.occurred_at.astimezone(timezone(timedelta(hours=-5)))
    same.changes = {"a": {"x": 1, "y": 2}, "b": 1}
    assert event_canonical_bytes(same) == event_canonical_bytes(event)
    assert event_hash(same) == event.hash


@pytest.mark.parametrize(
    "field, value",
    [
        ("seq", 10**9),
        ("actor_label", "mallory@evil.test"),
        ("action", "member.removed"),
        ("target_id", "999"),
        ("ip", "10.9.9.9"),
        ("user_agent", "curl"),
        ("request_id", "req_forged"),
        ("changes", {"after": {"role": "admin"}}),
        ("prev_hash", "f" * 64),
        ("occurred_at", datetime(2001, 1, 1, tzinfo=UTC)),
    ],
)
def test_hash_covers_every_field(tenant, field, value):
    event = audit_event_record(action="member.invited", actor=Actor.system(), target=("invitation", 1, "x@x.test"))
    event.refresh_from_db()
    original = event.hash
    setattr(event, field, value)
    assert event_hash(event) != original


def test_changes_are_stored_as_plain_json(tenant):
    when = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
    event = audit_event_record(
        action="workspace.settings_changed", changes={"after": {"price": Decimal("1.50"), "at": when}}
    )
    event.refresh_from_db()
    assert event.changes == {"after": {"price": "1.50", "at": str(when)}}
    assert audit_chain_verify().ok


def test_changes_diff_keeps_only_changed_keys():
    assert changes_diff({"role": "viewer", "name": "Ann"}, {"role": "admin", "name": "Ann"}) == {
        "before": {"role": "viewer"},
        "after": {"role": "admin"},
    }


# --- who, what, where ----------------------------------------------------------------------------------


def test_actor_and_target_are_captured(tenant, admin_user, make_user):
    member = make_user()
    event = audit_event_record(action="member.removed", actor=admin_user, target=member)
    assert (event.actor_type, event.actor_id, event.actor_label) == ("user", str(admin_user.pk), admin_user.email)
    assert (event.target_type, event.target_id, event.target_label) == ("user", str(member.pk), str(member))


@pytest.mark.parametrize(
    "actor, expected",
    [
        (None, ("system", "", "system")),
        (Actor.system("seed_demo"), ("system", "", "seed_demo")),
        (Actor.anonymous("who@x.test"), ("anonymous", "", "who@x.test")),
        (Actor("api_key", "12", "CI key"), ("api_key", "12", "CI key")),
    ],
)
def test_actor_kinds(tenant, actor, expected):
    event = audit_event_record(action="user.login_failed", actor=actor)
    assert (event.actor_type, event.actor_id, event.actor_label) == expected


def test_anonymous_user_object_is_recorded_as_anonymous(tenant):
    from django.contrib.auth.models import AnonymousUser

    event = audit_event_record(action="user.login_failed", actor=AnonymousUser())
    assert event.actor_type == "anonymous"


def test_ip_user_agent_and_request_id_come_from_the_request_context(tenant):
    token = request_context_set(RequestContext(request_id="req_ctx123456", ip="2001:DB8:0:0::1", user_agent="UA/1"))
    try:
        event = audit_event_record(action="workspace.settings_changed")
    finally:
        request_context_reset(token)
    assert (event.request_id, event.user_agent) == ("req_ctx123456", "UA/1")
    assert event.ip == "2001:db8::1"  # stored in its normal form, so the hash survives a round trip
    event.refresh_from_db()
    assert event_hash(event) == event.hash
    outside = audit_event_record(action="workspace.settings_changed")
    assert (outside.request_id, outside.ip, outside.user_agent) == ("", None, "")


def test_a_request_stamps_its_event_with_ip_agent_and_request_id(tenant, admin_user, admin_client):
    response = admin_client.post(
        "/settings/",
        {"name": "Alpha Renamed", "timezone": "Europe/Paris"},
        HTTP_USER_AGENT="Mozilla/5.0 (AuditTest)",
        REMOTE_ADDR="203.0.113.7",
    )
    assert response.status_code == 302

    event = latest("workspace.settings_changed")
    assert event.request_id == response["Request-Id"]
    assert event.ip == "203.0.113.7"
    assert event.user_agent == "Mozilla/5.0 (AuditTest)"
    assert (event.actor_type, event.actor_id, event.actor_label) == ("user", str(admin_user.pk), admin_user.email)
    assert (event.target_type, event.target_id) == ("tenant", str(tenant.pk))
    assert event.changes["after"] == {"name": "Alpha Renamed", "timezone": "Europe/Paris"}
    assert audit_chain_verify().ok


def test_log_in_and_failed_log_in_are_recorded_with_the_request(tenant, admin_user, client_for):
    client = client_for(tenant)
    bad = client.post(
        "/accounts/login/", {"username": admin_user.email, "password": "wrong-password-1"}, HTTP_USER_AGENT="UA-bad"
    )
    assert bad.status_code == 400
    failed = latest("user.login_failed")
    assert (failed.actor_type, failed.actor_label) == ("anonymous", admin_user.email)
    assert (failed.request_id, failed.user_agent) == (bad["Request-Id"], "UA-bad")

    good = client.post(
        "/accounts/login/", {"username": admin_user.email, "password": ADMIN_PASSWORD}, HTTP_USER_AGENT="UA-good"
    )
    assert good.status_code == 302
    logged_in = latest("user.logged_in")
    assert (logged_in.actor_type, logged_in.actor_id) == ("user", str(admin_user.pk))
    assert (logged_in.request_id, logged_in.user_agent, logged_in.ip) == (good["Request-Id"], "UA-good", "127.0.0.1")


# --- the registry ---------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["member.exploded", "member", "", "MEMBER.INVITED", "records.deleted"])
def test_unknown_action_is_rejected_and_nothing_is_written(tenant, action):
    head_before = AuditChainHead.objects.filter(pk=1).values_list("seq", flat=True).first()
    count = AuditEvent.objects.count()
    with pytest.raises(UnknownAuditAction):
        audit_event_record(action=action)
    assert AuditEvent.objects.count() == count
    assert AuditChainHead.objects.filter(pk=1).values_list("seq", flat=True).first() == head_before


def test_registry_names_are_resource_dot_verb():
    for name in ACTIONS:
        resource, _, verb = name.partition(".")
        assert resource and verb and name == name.lower(), name


# --- append-only ------------------------------------------------------------------------------------


def test_orm_refuses_to_change_or_delete_an_event(tenant):
    event = audit_event_record(action="workspace.settings_changed")
    event.actor_label = "mallory"
    with pytest.raises(RuntimeError, match="append-only"):
        event.save()
    with pytest.raises(RuntimeError, match="append-only"):
        event.delete()


def test_queryset_update_and_delete_are_refused_by_the_database(tenant):
    event = audit_event_record(action="workspace.settings_changed")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(actor_label="mallory")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    event.refresh_from_db()
    assert event.actor_label == "system"


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditevent SET actor_label = 'mallory' WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ],
)
def test_database_refuses_raw_update_and_delete(tenant, sql):
    event = audit_event_record(action="workspace.settings_changed")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [event.pk])
    assert AuditEvent.objects.filter(pk=event.pk, actor_label="system").exists()
    assert audit_chain_verify().ok


@pytest.mark.saas_only
def test_every_tenant_schema_carries_the_append_only_trigger(tenants_provisioned, db):
    from django.conf import settings

    schemas = [t.schema_name for t in tenants_provisioned.values()] + [settings.TESSERA_TEMPLATE_SCHEMA]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE t.tgname = 'audit_event_append_only' AND c.relname = 'audit_auditevent' AND t.tgenabled = 'O'"
        )
        have = {row[0] for row in cursor.fetchall()}
    assert set(schemas) <= have


# --- concurrency ----------------------------------------------------------------------------------


class TestConcurrentWriters(TransactionTestCase):
    """Eight threads, each on its own database connection, append at once; the chain stays one line.

    Each writer must commit for the others to queue behind it, so this runs outside any test
    transaction. The events it adds are valid, chained events and stay in alpha's log: the usual
    flush afterwards is skipped, since it would wipe the tenants every other test shares.
    """

    databases = {"default"}

    def _fixture_teardown(self):
        pass

    @pytest.fixture(autouse=True)
    def _alpha(self, tenants_provisioned):
        self.alpha = tenants_provisioned["alpha"]

    def test_concurrent_writers_never_fork_the_chain(self):
        from tenants.runtime import workspace_context

        writers, per_writer = 8, 6
        label = f"concurrency-{datetime.now(UTC).timestamp()}"
        start = threading.Barrier(writers)
        errors: list[BaseException] = []

        def write(n: int) -> None:
            try:
                with workspace_context(self.alpha):
                    start.wait(timeout=30)
                    for i in range(per_writer):
                        audit_event_record(
                            action="workspace.settings_changed", actor=Actor.system(label), changes={"w": n, "i": i}
                        )
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "a writer hung"
        assert not errors, errors

        with workspace_context(self.alpha):
            events = chain()
            verification = audit_chain_verify()
        mine = [e for e in events if e.actor_label == label]

        assert len(mine) == writers * per_writer
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert len({e.prev_hash for e in events}) == len(events), "two events claim the same predecessor: a fork"
        assert verification.ok, verification
        for n in range(writers):  # each writer's own events keep their order
            own = [e.changes["i"] for e in mine if e.changes["w"] == n]
            assert own == list(range(per_writer))
