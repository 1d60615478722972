"""Idempotency-Key on POST: a retry gets the first answer again; the work is done once."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from api.idempotency import IN_FLIGHT_TIMEOUT, idempotency_records_purge
from api.models import IdempotencyRecord
from records.models import Change, Record
from tests.conftest import SAAS, ApiClient

RECORDS = "/api/v1/collections/customers/records"


@pytest.fixture(autouse=True)
def _real_limits_and_own_counters(settings):
    """Rate limits out of the way: these tests are about idempotency (tests/partners runs limits real)."""
    settings.TESSERA_RATE_LIMIT_SCALE = 1000
    settings.TESSERA_COUNTERS_NAMESPACE = f"test-{uuid.uuid4().hex}"


@pytest.fixture
def customers(tenant, admin_user):
    from records.services import collection_create

    fields = [{"key": "name", "type": "text", "required": True}, {"key": "score", "type": "integer"}]
    return collection_create(actor=admin_user, name="Customers", slug="customers", fields=fields)


@pytest.fixture
def live(api, customers):
    return api(mode="live")


def key() -> dict:
    return {"Idempotency-Key": str(uuid.uuid4())}


def stored_headers(response) -> dict:
    return {
        k: v
        for k, v in response.items()
        if k not in ("Request-Id",) and not k.lower().startswith(("ratelimit", "x-ratelimit"))
    }


def test_a_replay_is_the_identical_response_and_the_work_is_done_once(live):
    headers = key()
    first = live.post(RECORDS, {"data": {"name": "Ada"}}, headers=headers)
    again = live.post(RECORDS, {"data": {"name": "Ada"}}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert again["Original-Request-Id"] == first["Request-Id"] != again["Request-Id"]
    replayed = {
        k: v for k, v in stored_headers(again).items() if k not in ("Idempotent-Replayed", "Original-Request-Id")
    }
    assert replayed == stored_headers(first)
    assert again["ETag"] == first["ETag"] and again["Location"] == first["Location"]
    assert Record.objects.count() == 1 and Change.objects.count() == 1


def test_whitespace_of_the_json_body_does_not_matter_its_content_does(live):
    headers = key()
    first = live.post(RECORDS, '{"data": {"name": "Ada"}}', headers=headers)
    same = live.post(RECORDS, '{ "data":{"name":"Ada"} }', headers=headers)
    assert same.status_code == 201 and same["Idempotent-Replayed"] == "true" and same.content == first.content
    other = live.post(RECORDS, {"data": {"name": "Grace"}}, headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert other.json()["param"] == "Idempotency-Key"
    elsewhere = live.post("/api/v1/collections", {"name": "X", "slug": "x"}, headers=headers)
    assert elsewhere.status_code == 422 and elsewhere.json()["code"] == "idempotency_key_reused"
    assert Record.objects.count() == 1


def test_errors_are_replayed_too(live):
    headers = key()
    first = live.post(RECORDS, {"data": {"score": 1}}, headers=headers)
    assert first.status_code == 422 and first.json()["code"] == "validation_failed"
    again = live.post(RECORDS, {"data": {"score": 1}}, headers=headers)
    assert again.status_code == 422 and again.content == first.content and again["Idempotent-Replayed"] == "true"
    assert again.json()["request_id"] == first["Request-Id"]  # the first answer, word for word


def test_a_request_still_in_flight_is_a_409_until_it_is_abandoned(live):
    headers = key()
    live.post(RECORDS, {"data": {"name": "Ada"}}, headers=headers)
    IdempotencyRecord.objects.update(status_code=None, response_body=None)  # as if still running
    busy = live.post(RECORDS, {"data": {"name": "Ada"}}, headers=headers)
    assert busy.status_code == 409 and busy.json()["code"] == "idempotency_in_flight"
    IdempotencyRecord.objects.update(created_at=timezone.now() - IN_FLIGHT_TIMEOUT - timedelta(seconds=1))
    retried = live.post(RECORDS, {"data": {"name": "Ada"}}, headers=headers)
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried


def test_keys_belong_to_their_caller_and_last_24_hours(api, live, admin_user, tenant):
    headers = key()
    assert live.post(RECORDS, {"data": {"name": "A"}}, headers=headers).status_code == 201
    other_key = api(mode="live")
    assert "Idempotent-Replayed" not in other_key.post(RECORDS, {"data": {"name": "A"}}, headers=headers)
    console = ApiClient(tenant)
    console.force_login(admin_user)
    assert "Idempotent-Replayed" not in console.post(RECORDS, {"data": {"name": "A"}}, headers=headers)
    assert console.post(RECORDS, {"data": {"name": "A"}}, headers=headers)["Idempotent-Replayed"] == "true"
    assert Record.objects.count() == 3

    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=24, seconds=1))
    fresh = live.post(RECORDS, {"data": {"name": "A"}}, headers=headers)
    assert fresh.status_code == 201 and "Idempotent-Replayed" not in fresh
    assert idempotency_records_purge() == 2  # the other key's and the console user's
    assert IdempotencyRecord.objects.count() == 1


def test_the_beat_task_purges_expired_keys_in_every_workspace(
    request, tenant, admin_user, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from config.celery_app import app
    from partners.tasks import idempotency_records_purge_all_workspaces
    from tenants.runtime import workspace_context

    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "partners.idempotency_records_purge_all_workspaces" in scheduled  # desktop merges base's schedule

    workspaces = [tenant, *([request.getfixturevalue("tenant_b")] if SAAS else [])]
    expired_at = timezone.now() - timedelta(hours=24, seconds=1)
    for workspace in workspaces:
        with workspace_context(workspace):
            for name in ("expired", "fresh"):
                IdempotencyRecord.objects.create(
                    caller="user:1", idempotency_key=name, request_hash="h", method="POST", path="/x"
                )
            IdempotencyRecord.objects.filter(idempotency_key="expired").update(created_at=expired_at)
    monkeypatch.setitem(app.conf, "task_always_eager", True)

    with django_capture_on_commit_callbacks(execute=True):
        assert idempotency_records_purge_all_workspaces() == len(workspaces)

    for workspace in workspaces:
        with workspace_context(workspace):
            assert list(IdempotencyRecord.objects.values_list("idempotency_key", flat=True)) == ["fresh"]


def test_server_errors_are_not_kept(live, monkeypatch, tenant):
    import records.api.views

    crashing = ApiClient(tenant, live.raw_key, raise_request_exception=False)

    def boom(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(records.api.views, "record_create", boom)
    headers = key()
    failed = crashing.post(RECORDS, {"data": {"name": "A"}}, headers=headers)
    assert failed.status_code == 500 and failed["Content-Type"] == "application/problem+json"
    assert not IdempotencyRecord.objects.exists()
    monkeypatch.undo()
    assert crashing.post(RECORDS, {"data": {"name": "A"}}, headers=headers).status_code == 201


@pytest.mark.parametrize("value", ["", "x" * 256, "two words", "ключ"])
def test_malformed_keys_are_refused(live, value):
    response = live.post(RECORDS, {"data": {"name": "A"}}, headers={"Idempotency-Key": value})
    assert response.status_code == 400 and response.json()["param"] == "Idempotency-Key"
    assert not Record.objects.exists()


def test_every_post_takes_a_key(live):
    for path, body in [
        ("/api/v1/collections", {"name": "Orders", "slug": "orders"}),
        (RECORDS, {"data": {"name": "A"}}),
        (RECORDS + "/bulk", {"items": [{"data": {"name": "B"}}]}),
    ]:
        headers = key()
        first, again = live.post(path, body, headers=headers), live.post(path, body, headers=headers)
        assert first.status_code in (200, 201) and again.content == first.content, path
        assert again["Idempotent-Replayed"] == "true", path
    assert Record.objects.count() == 2


def test_deeply_nested_json_is_a_400_not_a_500(live):
    """900 levels parse but overflow the recursive walks after it (the fingerprint, the serializers);
    100,000 overflow the parser itself. Both are a client's mistake: 400 problem+json."""
    for depth in (900, 100_000):
        body = '{"data": {"name": "Ada", "x": ' + "[" * depth + "]" * depth + "}}"
        response = live.post(RECORDS, body, content_type="application/json", headers=key())
        assert response.status_code == 400, (depth, response.status_code)
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == "invalid_json" and "deeper" in response.json()["detail"]
    assert not Record.objects.exists()
