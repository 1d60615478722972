"""API keys: shown once and stored hashed, revoke, rotation with an overlap window, expiry; Admin
only and audited; a key works only on its own workspace's host."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEvent
from core.token_buckets import token_buckets
from partners.models import SCOPES, ApiKey
from partners.services import ApiKeyError, api_key_create, api_key_expire_due, api_key_revoke, api_key_rotate
from rbac.roles import Role
from tests.conftest import SAAS
from tests.partners.conftest import PING

pytestmark = [pytest.mark.urls("tests.partners.api_views"), pytest.mark.usefixtures("real_limits")]


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def ping(api_for, tenant, raw):
    return api_for(tenant, raw).get(PING)


# --- creation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "prefix"), [("test", "tsk_test_"), ("live", "tsk_live_")])
def test_created_key_is_returned_once_and_only_its_hash_is_stored(admin_user, mode, prefix):
    key, raw = api_key_create(
        actor=admin_user, name="ERP sync", mode=mode, scopes=["records:write", "records:read", "records:read"]
    )

    assert re.fullmatch(re.escape(prefix) + r"[A-Za-z0-9_-]{43}", raw)
    key.refresh_from_db()
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert key.prefix == f"{raw[:13]}…{raw[-4:]}"
    assert key.scopes == ["records:read", "records:write"]  # canonical order, no duplicates
    assert key.created_by == admin_user and key.status == "active"
    stored = [str(v) for v in ApiKey.objects.filter(pk=key.pk).values().get().values()]
    assert not any(raw in value for value in stored)
    event = events("api_key.created")[-1]
    assert event.actor_label == admin_user.email and event.target_id == str(key.pk)
    assert event.changes["after"]["scopes"] == ["records:read", "records:write"]
    assert raw not in str(event.changes)


def test_two_keys_never_share_a_secret(make_key):
    raws = {make_key()[1] for _ in range(20)}
    assert len(raws) == 20


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "  "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"mode": "prod"}, "mode"),
        ({"scopes": []}, "scopes"),
        ({"scopes": ["records:read", "admin:all"]}, "scopes"),
        ({"expires_at": "past"}, "expires_at"),
    ],
)
def test_bad_input_is_refused_with_the_field_at_fault(admin_user, kwargs, field):
    args = {"name": "ERP", "mode": "test", "scopes": ["records:read"], **kwargs}
    if args.get("expires_at") == "past":
        args["expires_at"] = timezone.now() - timedelta(minutes=1)

    with pytest.raises(ApiKeyError) as exc:
        api_key_create(actor=admin_user, **args)

    assert exc.value.field == field
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ANALYST, Role.VIEWER])
def test_only_admins_manage_keys(make_user, make_key, role):
    member = make_user(role=role)
    key, _ = make_key()

    with pytest.raises(PermissionDenied):
        api_key_create(actor=member, name="x", mode="test", scopes=["records:read"])
    with pytest.raises(PermissionDenied):
        api_key_revoke(actor=member, key=key)
    with pytest.raises(PermissionDenied):
        api_key_rotate(actor=member, key=key, overlap=timedelta(hours=1))
    assert ApiKey.objects.count() == 1 and ApiKey.objects.get().is_active


def test_a_key_cannot_create_keys(make_key):
    key, _ = make_key(scopes=list(SCOPES))

    with pytest.raises(PermissionDenied):
        api_key_create(actor=key, name="x", mode="test", scopes=["records:read"])


# --- authentication ------------------------------------------------------------------------------


def test_a_key_authenticates_and_records_when_and_where_it_was_used(tenant, make_key, api_for):
    key, raw = make_key()

    response = ping(api_for, tenant, raw)

    assert response.status_code == 200 and response.json() == {"ok": True, "key": key.pk}
    key.refresh_from_db()
    assert key.last_used_ip == "127.0.0.1"
    assert timezone.now() - key.last_used_at < timedelta(minutes=1)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer tsk_test_not-a-real-key",
        "Bearer sk_live_from_another_product",
        "Bearer",
        "Bearer a b",
        "Basic Zm9vOmJhcg==",
    ],
)
def test_unknown_or_malformed_credentials_get_401(tenant, client_for, header):
    response = client_for(tenant, HTTP_AUTHORIZATION=header).get(PING)

    assert response.status_code in (401, 403)
    if header.startswith("Bearer"):
        assert response.status_code == 401
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == "unauthenticated"


def test_revoked_key_gets_401_at_once_and_revoking_is_audited(tenant, admin_user, make_key, api_for):
    key, raw = make_key()
    assert ping(api_for, tenant, raw).status_code == 200

    api_key_revoke(actor=admin_user, key=key)
    api_key_revoke(actor=admin_user, key=key)  # twice changes nothing

    response = ping(api_for, tenant, raw)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"
    assert "revoked" in response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert [e.target_id for e in events("api_key.revoked")] == [str(key.pk)]


def test_a_key_revoked_by_another_server_process_is_refused_at_its_next_request(tenant, make_key, api_for):
    """Server processes remember keys between requests (partners.keycache). A change committed in
    another process reaches them through the workspace's key generation, which that process bumps."""
    key, raw = make_key()
    assert ping(api_for, tenant, raw).status_code == 200
    assert ping(api_for, tenant, raw).status_code == 200

    # What another process's revocation leaves: the row changed and the generation bumped; nothing
    # in this process was told.
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    token_buckets().key_generation_bump(tenant.pk)

    response = ping(api_for, tenant, raw)
    assert response.status_code == 401 and "revoked" in response.json()["detail"]


def test_a_remembered_key_costs_no_query_where_server_processes_share_a_key_generation(tenant, make_key, api_for):
    _, raw = make_key()
    assert ping(api_for, tenant, raw).status_code == 200

    with CaptureQueriesContext(connection) as queries:
        assert ping(api_for, tenant, raw).status_code == 200

    key_reads = [q for q in queries if "partners_apikey" in q["sql"]]
    # SaaS: Redis holds the generation, so the key is not read again. The desktop (one process,
    # in-process buckets) keeps no generation and reads its key on every request.
    assert len(key_reads) == (0 if SAAS else 1)


def clock_forward(monkeypatch, by: timedelta) -> None:
    """Time passes: expiry is the clock passing `expires_at`, with no write (and, for a key a server
    process remembers, no key-generation bump either), so move the clock rather than the key."""
    later = timezone.now() + by
    monkeypatch.setattr(timezone, "now", lambda: later)


def test_expired_key_gets_401_and_expiry_is_audited_once(tenant, make_key, api_for, monkeypatch):
    key, raw = make_key(expires_at=timezone.now() + timedelta(days=1))
    assert ping(api_for, tenant, raw).status_code == 200
    assert ping(api_for, tenant, raw).status_code == 200  # remembered by this process now
    assert api_key_expire_due() == []

    clock_forward(monkeypatch, timedelta(days=1, seconds=1))

    response = ping(api_for, tenant, raw)
    assert response.status_code == 401 and "expired" in response.json()["detail"]
    assert [k.pk for k in api_key_expire_due()] == [key.pk]
    assert api_key_expire_due() == []  # recorded once
    event = events("api_key.expired")[0]
    assert event.target_id == str(key.pk) and event.actor_type == AuditEvent.ActorType.SYSTEM


# --- rotation ------------------------------------------------------------------------------------


def test_rotation_keeps_the_old_key_working_for_the_overlap_then_stops_it(
    tenant, admin_user, make_key, api_for, monkeypatch
):
    old, old_raw = make_key(name="Shop", mode="live", scopes=["records:read", "events:read"])
    before = timezone.now()

    new, new_raw = api_key_rotate(actor=admin_user, key=old, overlap=timedelta(hours=24))

    old.refresh_from_db()
    assert (new.name, new.mode, new.scopes) == ("Shop", "live", ["records:read", "events:read"])
    assert new_raw.startswith("tsk_live_") and new_raw != old_raw
    assert old.rotated_to == new and old.status == "rotating" and new.status == "active"
    assert before + timedelta(hours=24) <= old.expires_at <= timezone.now() + timedelta(hours=24)
    # Within the window both work.
    assert ping(api_for, tenant, old_raw).status_code == 200
    assert ping(api_for, tenant, new_raw).status_code == 200
    event = events("api_key.rotated")[0]
    assert event.target_id == str(old.pk) and event.changes["after"]["rotated_to"] == new.pk
    assert event.changes["after"]["overlap_seconds"] == 24 * 3600

    # The window has passed.
    clock_forward(monkeypatch, timedelta(hours=24, seconds=1))

    assert ping(api_for, tenant, old_raw).status_code == 401
    assert ping(api_for, tenant, new_raw).status_code == 200
    assert [k.pk for k in api_key_expire_due()] == [old.pk]


def test_rotation_without_overlap_stops_the_old_key_at_once(tenant, admin_user, make_key, api_for):
    old, old_raw = make_key()

    _, new_raw = api_key_rotate(actor=admin_user, key=old, overlap=timedelta(0))

    assert ping(api_for, tenant, old_raw).status_code == 401
    assert ping(api_for, tenant, new_raw).status_code == 200


def test_rotation_never_extends_a_key_and_keeps_its_lifetime(admin_user, make_key):
    soon = timezone.now() + timedelta(minutes=30)
    old, _ = make_key(expires_at=soon)

    new, _ = api_key_rotate(actor=admin_user, key=old, overlap=timedelta(days=7))

    old.refresh_from_db()
    assert old.expires_at == soon  # the overlap does not outlive the key's own expiry
    assert new.expires_at == soon


def test_only_active_unrotated_keys_rotate(admin_user, make_key):
    key, _ = make_key()
    api_key_rotate(actor=admin_user, key=key, overlap=timedelta(hours=1))
    with pytest.raises(ApiKeyError, match="already rotated"):
        api_key_rotate(actor=admin_user, key=key, overlap=timedelta(hours=1))

    revoked, _ = make_key()
    api_key_revoke(actor=admin_user, key=revoked)
    with pytest.raises(ApiKeyError, match="revoked"):
        api_key_rotate(actor=admin_user, key=revoked, overlap=timedelta(hours=1))

    other, _ = make_key()
    for overlap in (timedelta(seconds=-1), timedelta(days=31)):
        with pytest.raises(ApiKeyError) as exc:
            api_key_rotate(actor=admin_user, key=other, overlap=overlap)
        assert exc.value.field == "overlap"
    assert ApiKey.objects.count() == 4  # 3 made + 1 replacement


# --- isolation -----------------------------------------------------------------------------------


@pytest.mark.saas_only
def test_a_key_of_one_workspace_means_nothing_on_another(tenant, tenant_b, make_key, api_for):
    _, raw = make_key(scopes=["records:read"])

    assert api_for(tenant, raw).get(PING).status_code == 200
    response = api_for(tenant_b, raw).get(PING)

    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"
