"""The webhook endpoints API (/api/v1/webhook_endpoints): create (the secret shown once), list with
cursors, retrieve, merge-patch, delete, rotate the secret, read deliveries; `webhooks:manage` only;
a key's mode scopes what it sees; bad input is problem+json (400 shape, 422 meaning), never a 500;
and the OpenAPI document describes every event Tessera sends (its 3.1 `webhooks` section)."""

from __future__ import annotations

import pytest

from api.problems import PROBLEM_CODES
from audit.models import AuditEvent
from tests.conftest import ApiClient, host_of
from webhooks import catalogue, maintenance, selectors, services
from webhooks.inspector import inspector_bin_create
from webhooks.models import Delivery, Endpoint, Event

BASE = "/api/v1/webhook_endpoints"
PROBLEM = "application/problem+json"
SCOPES = ("webhooks:manage",)


def assert_problem(response, status: int, code: str, param: str | None = None) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["code"] == code and body["detail"] and body["request_id"] == response["Request-Id"]
    assert code in PROBLEM_CODES
    if param is not None:
        assert body["param"] == param, body
    return body


@pytest.fixture
def inspector_url(tenant, admin_user) -> str:
    bin = inspector_bin_create(actor=admin_user)
    return f"https://{host_of(tenant)}/webhooks/inspect/{bin.token}"


def create(client, **body):
    return client.post(BASE, {"url": "https://example.com/hook", **body})


def test_create_shows_the_secret_once_and_retrieve_never(api, inspector_url):
    client = api(scopes=SCOPES, mode="test")
    response = create(
        client, url=inspector_url, description="ERP", event_types=["record.*"], headers={"X-Token": "abc"}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["object"] == "webhook_endpoint" and body["id"].startswith("ep_")
    assert body["secret"].startswith("whsec_") and body["livemode"] is False and body["enabled"] is True
    assert body["event_types"] == ["record.*"] and body["headers"] == {"X-Token": "abc"}
    assert response["Location"] == f"{BASE}/{body['id']}"
    endpoint = Endpoint.objects.get(pk=body["id"])
    assert selectors.endpoint_secrets_valid(endpoint) == [body["secret"]]

    again = client.get(response["Location"])
    assert again.status_code == 200 and "secret" not in again.json()
    assert again.json()["url"] == inspector_url
    assert AuditEvent.objects.filter(action="webhook_endpoint.created", target_id=body["id"]).exists()


def test_an_idempotency_key_creates_once(api):
    client = api(scopes=SCOPES)
    first = client.post(BASE, {"url": "https://example.com/a"}, HTTP_IDEMPOTENCY_KEY="k-1")
    second = client.post(BASE, {"url": "https://example.com/a"}, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == second.status_code == 201
    assert second["Idempotent-Replayed"] == "true" and first.json() == second.json()
    assert Endpoint.objects.count() == 1


def test_a_key_sees_and_manages_only_its_modes_endpoints(api):
    live, test = api(scopes=SCOPES, mode="live"), api(scopes=SCOPES, mode="test")
    live_id = create(live, url="https://example.com/live").json()["id"]
    test_id = create(test, url="https://example.com/test").json()["id"]

    assert [e["id"] for e in live.get(BASE).json()["data"]] == [live_id]
    assert [e["id"] for e in test.get(BASE).json()["data"]] == [test_id]
    for method in ("get", "delete"):
        assert_problem(getattr(test, method)(f"{BASE}/{live_id}"), 404, "not_found")
    assert_problem(test.patch(f"{BASE}/{live_id}", {"description": "x"}), 404, "not_found")
    assert_problem(test.post(f"{BASE}/{live_id}/rotate_secret", {}), 404, "not_found")
    assert_problem(test.get(f"{BASE}/{live_id}/deliveries"), 404, "not_found")
    assert Endpoint.objects.get(pk=live_id).description == ""


def test_list_pages_with_cursors(api):
    client = api(scopes=SCOPES)
    ids = [create(client, url=f"https://example.com/{n}").json()["id"] for n in range(5)]
    newest_first = ids[::-1]
    page = client.get(BASE, {"limit": 2}).json()
    assert [e["id"] for e in page["data"]] == newest_first[:2] and page["has_more"] is True
    page = client.get(BASE, {"limit": 2, "starting_after": newest_first[1]}).json()
    assert [e["id"] for e in page["data"]] == newest_first[2:4]
    page = client.get(BASE, {"limit": 10, "starting_after": newest_first[3]}).json()
    assert [e["id"] for e in page["data"]] == newest_first[4:] and page["has_more"] is False
    page = client.get(BASE, {"ending_before": newest_first[2]}).json()
    assert [e["id"] for e in page["data"]] == newest_first[:2]
    assert_problem(client.get(BASE, {"starting_after": "nope"}), 400, "invalid_request", "starting_after")
    assert_problem(client.get(BASE, {"limit": "0"}), 400, "invalid_request", "limit")
    assert_problem(client.get(BASE, {"colour": "red"}), 400, "unknown_parameter", "colour")


def test_update_with_a_merge_patch_and_delete(api):
    client = api(scopes=SCOPES)
    endpoint_id = create(client, description="old", rate_limit_per_second=5).json()["id"]
    response = client.patch(
        f"{BASE}/{endpoint_id}", {"description": "new", "enabled": False, "rate_limit_per_second": None}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["description"], body["enabled"], body["rate_limit_per_second"]) == ("new", False, None)
    assert body["url"] == "https://example.com/hook"  # left out: unchanged
    assert client.patch(f"{BASE}/{endpoint_id}", {"enabled": True}).json()["enabled"] is True
    # JSON (and the OpenAPI 3.1 schema) does not tell 7 from 7.0; a fraction is still refused.
    assert client.patch(f"{BASE}/{endpoint_id}", {"rate_limit_per_second": 7.0}).json()["rate_limit_per_second"] == 7
    assert_problem(client.patch(f"{BASE}/{endpoint_id}", {"rate_limit_per_second": 7.5}), 400, "invalid_request")

    gone = client.delete(f"{BASE}/{endpoint_id}")
    assert gone.json() == {"object": "webhook_endpoint", "id": endpoint_id, "deleted": True}
    assert_problem(client.get(f"{BASE}/{endpoint_id}"), 404, "not_found")
    assert AuditEvent.objects.filter(action="webhook_endpoint.deleted", target_id=endpoint_id).exists()


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"url": "http://127.0.0.1/hook"}, 422, "url_refused", "url"),
        ({"url": "http://[::ffff:169.254.169.254]/"}, 422, "url_refused", "url"),
        ({"url": "http://192.168.1.10/hook"}, 422, "url_refused", "url"),
        ({"url": "gopher://example.com/"}, 422, "invalid_request", "url"),
        ({"url": "no url at all"}, 422, "invalid_request", "url"),
        ({"headers": {"webhook-signature": "v1,forged"}}, 422, "invalid_request", "headers"),
        ({"headers": {"Content-Length": "1"}}, 422, "invalid_request", "headers"),
        ({"headers": {"bad name": "x"}}, 400, "invalid_request", "headers"),
        ({"headers": {"X-Ok": "line\r\nbreak"}}, 400, "invalid_request", "headers"),
        ({"headers": ["X-Ok: 1"]}, 400, "invalid_request", "headers"),
        ({"event_types": ["record.exploded"]}, 400, "invalid_request", "event_types[0]"),
        ({"rate_limit_per_second": 0}, 400, "invalid_request", "rate_limit_per_second"),
        ({"rate_limit_per_second": "5"}, 400, "invalid_request", "rate_limit_per_second"),
        ({"url": 42}, 400, "invalid_request", "url"),
        ({"description": "nul \x00"}, 400, "invalid_request", "description"),
        ({"colour": "red"}, 400, "invalid_request", "colour"),
    ],
)
def test_bad_input_is_a_problem_not_a_500(api, body, status, code, param):
    client = api(scopes=SCOPES)
    assert_problem(create(client, **body), status, code, param)
    endpoint_id = create(client).json()["id"]
    assert_problem(client.patch(f"{BASE}/{endpoint_id}", body), status, code, param)
    assert Endpoint.objects.count() == 1


def test_rotate_the_secret_with_an_overlap(api):
    client = api(scopes=SCOPES)
    created = create(client).json()
    response = client.post(f"{BASE}/{created['id']}/rotate_secret", {"overlap_seconds": 3600})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["secret"].startswith("whsec_") and body["secret"] != created["secret"]
    assert body["previous_secrets_expire_at"] is not None
    valid = selectors.endpoint_secrets_valid(Endpoint.objects.get(pk=created["id"]))
    assert valid == [body["secret"], created["secret"]]  # both sign during the overlap
    too_long = client.post(f"{BASE}/{created['id']}/rotate_secret", {"overlap_seconds": 8 * 86400})
    assert_problem(too_long, 400, "invalid_request", "overlap_seconds")


def _delivery(endpoint: Endpoint, type_: str, status: str) -> Delivery:
    event = Event.objects.create(type=type_, livemode=endpoint.livemode, payload={"type": type_, "data": {}})
    return Delivery.objects.create(event=event, endpoint=endpoint, livemode=endpoint.livemode, status=status)


def test_read_an_endpoints_deliveries_with_filters_and_cursors(api):
    client = api(scopes=SCOPES)
    endpoint = Endpoint.objects.get(pk=create(client).json()["id"])
    ok = _delivery(endpoint, "record.created", Delivery.Status.SUCCEEDED)
    failed = _delivery(endpoint, "record.deleted", Delivery.Status.FAILED)
    pending = _delivery(endpoint, "record.created", Delivery.Status.PENDING)
    url = f"{BASE}/{endpoint.pk}/deliveries"

    data = client.get(url).json()["data"]
    assert [d["id"] for d in data] == [f"dlv_{d.pk}" for d in (pending, failed, ok)]
    assert data[1]["event_id"] == failed.event_id and data[1]["event_type"] == "record.deleted"
    assert [d["id"] for d in client.get(url, {"status": "failed"}).json()["data"]] == [f"dlv_{failed.pk}"]
    by_type = client.get(url, {"event_type": "record.created"}).json()["data"]
    assert [d["id"] for d in by_type] == [f"dlv_{pending.pk}", f"dlv_{ok.pk}"]
    page = client.get(url, {"limit": 1, "starting_after": f"dlv_{pending.pk}"}).json()
    assert [d["id"] for d in page["data"]] == [f"dlv_{failed.pk}"] and page["has_more"] is True
    assert_problem(client.get(url, {"status": "lost"}), 400, "invalid_request", "status")
    assert_problem(client.get(f"{url}/dlv_{failed.pk + 1000}"), 404, "not_found")
    assert_problem(client.get(f"{url}/{failed.pk}"), 404, "not_found")
    assert_problem(client.get(url, {"event_type": "nope"}), 400, "invalid_request", "event_type")


def test_a_delivery_shows_each_attempts_request_and_answer(api, admin_user, inspector_url):
    from webhooks.delivery import delivery_attempt

    client = api(scopes=SCOPES, mode="test")
    endpoint_id = create(client, url=inspector_url).json()["id"]
    delivery = maintenance.test_event_send(actor=admin_user, endpoint=Endpoint.objects.get(pk=endpoint_id))
    delivery_attempt(delivery.pk)  # the worker's part: recorded by the inspector in-process

    body = client.get(f"{BASE}/{endpoint_id}/deliveries/dlv_{delivery.pk}").json()
    assert body["object"] == "webhook_delivery" and body["status"] == "succeeded" and body["attempts"] == 1
    (attempt,) = body["attempt_log"]
    assert attempt["response_status"] == 200 and attempt["request_url"] == inspector_url
    sent = {k.lower(): v for k, v in attempt["request_headers"].items()}
    assert sent["webhook-id"] == delivery.event_id and "test.ping" in attempt["request_body"]
    other = create(client, url=inspector_url).json()["id"]  # another endpoint's delivery is not here
    assert_problem(client.get(f"{BASE}/{other}/deliveries/dlv_{delivery.pk}"), 404, "not_found")


def test_the_scope_is_needed(api):
    client = api(scopes=("records:read",))
    body = assert_problem(client.get(BASE), 403, "forbidden")
    assert "webhooks:manage" in body["detail"]
    assert_problem(create(client), 403, "forbidden")
    assert not Endpoint.objects.exists()


@pytest.mark.saas_only
def test_another_workspaces_endpoint_is_404_and_its_key_401(api, tenant_b):
    from accounts.models import User
    from partners.services import api_key_create
    from tenants.runtime import workspace_context

    with workspace_context(tenant_b):
        b_admin = User.objects.get(email="admin@beta.test")
        theirs, _ = services.endpoint_create(actor=b_admin, url="https://example.com/beta", livemode=True)
        _, their_raw = api_key_create(actor=b_admin, name="beta", mode="live", scopes=list(SCOPES))
    client = api(scopes=SCOPES)
    for method in ("get", "delete"):
        assert_problem(getattr(client, method)(f"{BASE}/{theirs.pk}"), 404, "not_found")
    assert_problem(client.patch(f"{BASE}/{theirs.pk}", {"enabled": False}), 404, "not_found")
    assert_problem(client.post(f"{BASE}/{theirs.pk}/rotate_secret", {}), 404, "not_found")
    assert client.get(BASE).json()["data"] == []
    their_key_here = ApiClient(client.tenant, their_raw)
    assert_problem(their_key_here.get(BASE), 401, "unauthenticated")
    with workspace_context(tenant_b):
        assert Endpoint.objects.get(pk=theirs.pk).enabled is True


def test_the_openapi_document_describes_every_event_in_its_webhooks_section(anon_client):
    from drf_spectacular.validation import validate_schema

    schema = anon_client.get("/api/v1/schema?format=json").json()
    validate_schema(schema)
    assert schema["openapi"] == "3.1.0"
    assert set(schema["webhooks"]) == set(catalogue.EVENT_TYPES)
    created = schema["webhooks"]["record.created"]["post"]
    assert {p["name"] for p in created["parameters"]} >= {"webhook-id", "webhook-timestamp", "webhook-signature"}
    ref = created["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    envelope = schema["components"]["schemas"][ref]
    assert envelope["required"] == ["id", "object", "type", "created", "livemode", "data"]
    assert envelope["properties"]["type"]["enum"] == ["record.created"]
    operations = {op["operationId"] for path in schema["paths"].values() for op in path.values() if "operationId" in op}
    assert {
        "webhook_endpoints_list",
        "webhook_endpoints_create",
        "webhook_endpoints_retrieve",
        "webhook_endpoints_update",
        "webhook_endpoints_delete",
        "webhook_endpoints_rotate_secret",
        "webhook_endpoints_deliveries_list",
        "webhook_endpoints_deliveries_retrieve",
    } <= operations


def test_problem_codes_of_this_api_are_documented():
    """Every code the webhook services can answer with (error classes, and `code=` where raised) is on
    the errors page."""
    import re
    from pathlib import Path

    from webhooks import errors

    codes = {cls.code for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, Exception)}
    for module in ("services.py", "maintenance.py", "api/views.py"):
        text = (Path(errors.__file__).parent / module).read_text()
        codes |= set(re.findall(r'raise \w+\([^)]*?code="([a-z_]+)"', text, flags=re.S))
    assert {"url_refused", "endpoint_disabled", "forbidden"} <= codes
    assert codes <= set(PROBLEM_CODES)
