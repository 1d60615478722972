"""/api/v1/analytics as a partner or BI tool sees it: the `analytics:read` scope, problem+json errors,
test keys on sandbox data, and another workspace's data out of reach."""

from __future__ import annotations

import pytest

from rbac.roles import Role
from tests.conftest import ApiClient

QUERY = "/api/v1/analytics/query"
PROBLEM = "application/problem+json"


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["code"] == code, body
    return body


def test_query_through_the_api_equals_the_engine(orders, api):
    client = api(scopes=["analytics:read"], mode="live")
    body = {
        "collection": "orders",
        "group_by": [{"field": "region"}],
        "aggregates": [
            {"fn": "count"},
            {"fn": "sum", "field": "qty"},
            {"fn": "percentile", "field": "amount", "p": 50},
        ],
        "sort": "region",
    }
    response = client.post(QUERY, body)
    assert response.status_code == 200, response.content
    out = response.json()
    assert out["object"] == "analytics_result"
    assert [c["key"] for c in out["columns"]] == ["region", "count", "sum_qty", "p50_amount"]
    _collection, stored = orders
    regions = [s["data"].get("region") for s in stored]
    assert {row[0]: row[1] for row in out["rows"]} == {r: regions.count(r) for r in set(regions)}
    assert out["rows"][-1][0] is None  # records without a region: last


def test_buckets_come_back_as_iso_dates(orders, api):
    client = api(scopes=["analytics:read"], mode="live")
    out = client.post(QUERY, {"collection": "orders", "group_by": [{"field": "closed_on", "bucket": "quarter"}]}).json()
    assert out["rows"][0][0] == "2025-01-01" and out["time_zone"] == "UTC"


def test_scope_is_required(orders, api):
    client = api(scopes=["records:read"], mode="live")
    body = problem(client.post(QUERY, {"collection": "orders"}), 403, "forbidden")
    assert "analytics:read" in body["detail"]


def test_test_keys_aggregate_sandbox_data_only(orders, api, admin_user):
    from records.services import collection_create, record_create

    client = api(scopes=["analytics:read"], mode="test")
    problem(client.post(QUERY, {"collection": "orders"}), 404, "not_found")
    sandbox = collection_create(
        actor=admin_user, name="Orders", slug="orders", fields=[{"key": "qty", "type": "integer"}], livemode=False
    )
    record_create(actor=admin_user, collection=sandbox, data={"qty": 4})
    out = client.post(QUERY, {"collection": "orders", "aggregates": [{"fn": "sum", "field": "qty"}]}).json()
    assert out["rows"] == [[4]]


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"collection": "orders", "group_by": [{"field": "ghost"}]}, 422, "invalid_query", "group_by[0]"),
        (
            {"collection": "orders", "aggregates": [{"fn": "sum", "field": "region"}]},
            422,
            "invalid_query",
            "aggregates[0]",
        ),
        ({"collection": "orders", "filters": {"qty__gt": "x"}}, 422, "invalid_query", "filters.qty__gt"),
        ({"collection": "orders", "limit": "10"}, 400, "invalid_request", "limit"),
        ({"collection": "orders", "extra": 1}, 400, "invalid_request", "extra"),
        ({"collection": "nope"}, 404, "not_found", None),
    ],
)
def test_bad_queries_are_problems(orders_empty, api, body, status, code, param):
    client = api(scopes=["analytics:read"], mode="live")
    out = problem(client.post(QUERY, body), status, code)
    if param:
        assert param in (out.get("param"), *(e.get("param") for e in out.get("errors", [])))


def test_saved_queries_list_and_result(orders, api, admin_user):
    from analytics.services import saved_query_create

    saved = saved_query_create(
        actor=admin_user, name="By region", spec={"collection": "orders", "group_by": ["region"]}, chart="pie"
    )
    client = api(scopes=["analytics:read"], mode="live")
    listed = client.get("/api/v1/analytics/saved_queries").json()
    assert [q["id"] for q in listed["data"]] == [saved.pk] and listed["data"][0]["owner"] == admin_user.email
    result = client.get(f"/api/v1/analytics/saved_queries/{saved.pk}/result")
    assert result.status_code == 200 and len(result.json()["rows"]) == 4
    problem(client.get("/api/v1/analytics/saved_queries/999999/result"), 404, "not_found")


def test_console_roles(orders, tenant, client_for, make_user):
    """A session works too, for the roles that hold `analytics.read` (Admins, Analysts)."""
    analyst = ApiClient(tenant)
    analyst.force_login(make_user(Role.ANALYST))
    assert analyst.post(QUERY, {"collection": "orders"}).status_code == 200
    viewer = ApiClient(tenant)
    viewer.force_login(make_user(Role.VIEWER))
    problem(viewer.post(QUERY, {"collection": "orders"}), 403, "forbidden")


@pytest.mark.saas_only
def test_a_key_of_workspace_a_reads_nothing_of_workspace_b(orders, api, tenant_b):
    """Workspace beta has no `orders`: alpha's key on beta's host is not a key there at all."""
    client = api(scopes=["analytics:read"], mode="live")
    on_b = ApiClient(tenant_b, client.raw_key)
    response = on_b.post(QUERY, {"collection": "orders"})
    assert response.status_code == 401 and response["Content-Type"] == PROBLEM


@pytest.mark.saas_only
def test_workspace_b_key_sees_its_own_collection_only(orders, tenant_b):
    from accounts.models import User
    from partners.services import api_key_create
    from records.services import collection_create, record_create
    from tenants.runtime import workspace_context

    with workspace_context(tenant_b):
        admin_b = User.objects.get(email="admin@beta.test")
        mine = collection_create(
            actor=admin_b, name="Orders", slug="orders", fields=[{"key": "qty", "type": "integer"}]
        )
        record_create(actor=admin_b, collection=mine, data={"qty": 7})
        _key, raw = api_key_create(actor=admin_b, name="BI", mode="live", scopes=["analytics:read"])
    out = ApiClient(tenant_b, raw).post(QUERY, {"collection": "orders", "aggregates": [{"fn": "sum", "field": "qty"}]})
    assert out.status_code == 200 and out.json()["rows"] == [[7]]
