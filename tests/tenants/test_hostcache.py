"""A server process remembers which workspace an API request's host names (tenants.hostcache): the
API then reads no public-schema row per request, and a change made anywhere still reaches it at once."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.token_buckets import token_buckets
from tenants.models import Tenant
from tenants.services import tenant_status_set
from tests.conftest import TenantClient

# Hosts exist in the SaaS runtime only (the desktop serves its one workspace on any address).
pytestmark = pytest.mark.saas_only

RECORDS = "/api/v1/collections"


@pytest.fixture
def client(tenant, api_key_for, settings):
    settings.TESSERA_RATE_LIMIT_SCALE = 1  # the plans' own limits (the RateLimit-Policy header shows them)
    _, raw = api_key_for()
    return TenantClient(tenant, HTTP_AUTHORIZATION=f"Bearer {raw}")


def warm(client) -> None:
    # The first request learns whose workspace the host is, the second remembers it.
    for _ in range(2):
        assert client.get(RECORDS).status_code == 200


def test_a_remembered_host_costs_no_public_schema_query(client):
    warm(client)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(RECORDS).status_code == 200
    assert not [q for q in queries if "tenants_domain" in q["sql"] or "tenants_tenant" in q["sql"]]


def test_a_workspace_suspended_by_another_process_is_refused_at_its_next_api_request(client, tenant):
    warm(client)
    # What another server process's suspension leaves: the row changed and the workspace's generation
    # bumped once it committed; nothing in this process was told.
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    token_buckets().key_generation_bump(tenant.pk)

    response = client.get(RECORDS)
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "forbidden"


def test_a_workspace_suspended_in_this_process_is_refused_at_once(client, tenant):
    warm(client)
    tenant_status_set(tenant=tenant, status=Tenant.Status.SUSPENDED)
    assert client.get(RECORDS).status_code == 403


def test_a_plan_changed_by_another_process_sets_the_next_requests_limits(client, tenant):
    warm(client)
    before = client.get(RECORDS)["RateLimit-Policy"]
    Tenant.objects.filter(pk=tenant.pk).update(plan="enterprise" if tenant.plan != "enterprise" else "free")
    token_buckets().key_generation_bump(tenant.pk)
    # The request that notices the change was already counted (in the round trip that read the
    # generation) under the limits it came in with; the workspace is read again for it, and every
    # request after it is limited by the new plan.
    client.get(RECORDS)
    assert client.get(RECORDS)["RateLimit-Policy"] != before


def test_a_host_moved_to_another_workspace_by_another_process_is_not_served_as_the_old_one(client, tenant, tenant_b):
    warm(client)
    tenant.domains.update(tenant=tenant_b)
    token_buckets().key_generation_bump(tenant.pk)
    response = client.get(RECORDS)
    assert response.status_code == 404  # never alpha's data on a host that is no longer alpha's
    assert response["Content-Type"] == "application/problem+json"
    assert client.get(RECORDS).status_code == 401  # then beta's workspace, where alpha's key means nothing
