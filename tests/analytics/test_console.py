"""The console's analytics screens through Django's client: the builder, saving, pinning, dashboards
and who sees them. (The browser path, charts drawn, is tests/browser/test_analytics.py.)"""

from __future__ import annotations

import json
import re

import pytest

from analytics.models import Dashboard, SavedQuery
from analytics.services import dashboard_create, saved_query_create, tile_add
from rbac.roles import Role

BUILDER = "/analytics/queries/new/"


def chart_json(html: str, prefix: str) -> dict:
    match = re.search(rf'<script id="{prefix}-chart-data" type="application/json">(.*?)</script>', html, re.S)
    assert match, html[:2000]
    return json.loads(match.group(1))


def test_build_run_save_and_pin(orders, client_for, tenant, make_user):
    analyst = client_for(tenant, make_user(Role.ANALYST))
    params = {
        "run": "1",
        "collection": "orders",
        "g1": "closed_on",
        "g1_bucket": "year",
        "a_fn": ["count", "sum"],
        "a_field": ["", "qty"],
        "chart": "bar",
    }
    page = analyst.get(BUILDER, params)
    assert page.status_code == 200
    html = page.content.decode()
    data = chart_json(html, "q")
    assert data["labels"][:2] == ["2025", "2026"] and data["series"][0]["label"] == "Count"
    _collection, stored = orders
    in_2025 = [s for s in stored if str(s["data"].get("closed_on", "")).startswith("2025")]
    assert data["series"][0]["data"][0] == len(in_2025)
    assert data["links"][0] == "/records/orders/?closed_on__gte=2025-01-01&closed_on__lt=2026-01-01"
    assert 'data-testid="result-table"' in html

    saved = analyst.post(BUILDER, {**params, "name": "Orders per year"})
    assert saved.status_code == 302
    query = SavedQuery.objects.get(name="Orders per year")
    assert query.spec["group_by"] == [{"field": "closed_on", "bucket": "year"}] and query.owner.role == Role.ANALYST

    board = analyst.post("/analytics/dashboards/", {"name": "Sales", "shared": "on"})
    dashboard = Dashboard.objects.get(name="Sales")
    assert board.status_code == 302 and dashboard.is_home  # the first dashboard is home
    pinned = analyst.post("/analytics/tiles/", {"query": query.pk, "dashboard": dashboard.pk})
    assert pinned.status_code == 302
    shown = analyst.get("/analytics/").content.decode()
    assert "Orders per year" in shown and chart_json(shown, f"t{dashboard.tiles.get().pk}")["labels"][0] == "2025"
    # the date-range bar narrows every tile
    narrowed = analyst.get(
        f"/analytics/dashboards/{dashboard.pk}/", {"date_from": "2026-01-01", "date_to": "2026-12-31"}
    )
    assert chart_json(narrowed.content.decode(), f"t{dashboard.tiles.get().pk}")["labels"] == ["2026"]


def test_a_query_that_does_not_fit_is_a_form_error(orders, admin_client):
    page = admin_client.get(BUILDER, {"run": "1", "collection": "orders", "a_fn": "sum", "a_field": "customer"})
    assert page.status_code == 400 and b"does not apply to" in page.content


@pytest.mark.parametrize("role", [Role.MANAGER, Role.VIEWER])
def test_managers_and_viewers_see_shared_dashboards_only(orders, admin_user, client_for, tenant, make_user, role):
    query = saved_query_create(actor=admin_user, name="Count", spec={"collection": "orders"}, chart="number")
    shared = dashboard_create(actor=admin_user, name="Everyone", shared=True)
    private = dashboard_create(actor=admin_user, name="Draft", shared=False)
    tile_add(actor=admin_user, dashboard=shared, query=query)
    client = client_for(tenant, make_user(role))
    page = client.get(f"/analytics/dashboards/{shared.pk}/")
    assert page.status_code == 200 and b"big-number" in page.content and b"88" in page.content
    assert client.get(f"/analytics/dashboards/{private.pk}/").status_code == 404
    assert b"Draft" not in client.get("/analytics/dashboards/").content
    assert client.get(BUILDER).status_code == 403
    assert client.post("/analytics/dashboards/", {"name": "Mine"}).status_code == 403


@pytest.mark.saas_only
def test_another_workspace_session_sees_nothing(orders, admin_user, tenant, tenant_b, client_for):
    """Alpha's Admin session on beta's host is no session there: the dashboard is not reachable."""
    shared = dashboard_create(actor=admin_user, name="Alpha only", shared=True)
    on_b = client_for(tenant_b)
    on_b.cookies = client_for(tenant, admin_user).cookies
    response = on_b.get(f"/analytics/dashboards/{shared.pk}/")
    assert response.status_code == 302 and "/login" in response["Location"]
