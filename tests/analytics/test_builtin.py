"""The built-in dashboards of Tessera's own data (analytics.builtin, fed by partners, webhooks and sync
through settings.TESSERA_ANALYTICS_BUILTIN_DASHBOARDS): API usage per key and day with the rate limit
drawn in, webhook deliveries (success rate, latency, failures per endpoint), sync status (devices
online, last sync, records the phones sent). Each is checked against numbers computed here from the rows
the test wrote; who may see them; bad ranges; another workspace's data never shows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from rbac.roles import Role

USAGE = "/analytics/builtin/api-usage/"
WEBHOOKS = "/analytics/builtin/webhook-deliveries/"
SYNC = "/analytics/builtin/sync-status/"


def panels(response) -> dict:
    assert response.status_code == 200, response.content[:500]
    return {p.title: p for p in response.context["panels"]}


def table(panel) -> list[dict]:
    return [dict(zip(panel.columns, row, strict=True)) for row in panel.rows]


def test_api_usage_per_key_and_day_with_the_rate_limit(
    admin_client, api_key_for, tenant, django_capture_on_commit_callbacks
):
    from billing.entitlements import api_rate_limits
    from partners.models import ApiUsage
    from partners.usage import usage_flush

    # Calls other tests of this process counted and never settled (their transaction never commits) are
    # dropped now (their keys are gone), so none lands on a new key that reuses an old id (SQLite).
    with django_capture_on_commit_callbacks(execute=True):
        usage_flush()
    bi, _ = api_key_for(name="BI tool", scopes=["analytics:read"])
    shop, _ = api_key_for(name="Shop", mode="test")
    today = datetime.now(UTC).date()
    d0, d1 = today - timedelta(days=2), today - timedelta(days=1)
    for key, day, calls, errors in [
        (bi, d0, 120, 3),
        (bi, d1, 900, 0),
        (shop, d1, 40, 40),
        (bi, d0 - timedelta(days=9), 7, 0),
    ]:
        ApiUsage.objects.create(key=key, day=day, calls=calls, errors=errors)

    response = admin_client.get(USAGE, {"date_from": d0.isoformat(), "date_to": today.isoformat()})
    got = panels(response)
    assert got["API calls"].number["text"] == "1,060"  # the day outside the range is not counted
    chart = got["Calls per key per day (UTC)"].chart
    assert chart["labels"] == [d0.isoformat(), d1.isoformat(), today.isoformat()]
    series = {s["label"]: s["data"] for s in chart["series"]}
    assert series == {f"BI tool ({bi.prefix}…)": [120, 900, 0], f"Shop ({shop.prefix}…)": [0, 40, 0]}
    per_day = round(api_rate_limits(tenant)["key"].rate * 86400)
    assert chart["reference"]["value"] == per_day and f"{per_day:,} calls a day" in chart["reference"]["label"]
    assert chart["scale"] == "logarithmic"  # the limit is far above these calls
    keys = {row["Key"]: row for row in table(got["Keys against their limit"])}
    assert keys[f"BI tool ({bi.prefix}…)"] == {
        "Key": f"BI tool ({bi.prefix}…)",
        "Mode": "live",
        "Status": "active",
        "Calls": "1,020",
        "Errors": "3",
        "Error rate": "0.3%",
        "Busiest day": d1.isoformat(),
        "Calls that day": "900",
        "Of the daily limit": f"{900 / per_day:.2%}",
    }
    assert keys[f"Shop ({shop.prefix}…)"]["Error rate"] == "100.0%"
    page = response.content.decode()
    assert 'id="builtin-1-chart-data"' in page and "Rate limit per key" in page  # drawn by analytics.js


def test_webhook_deliveries_success_rate_latency_and_failures_per_endpoint(admin_client, tenant):
    from webhooks.models import Attempt, Delivery, Endpoint, Event

    good = Endpoint.objects.create(url="https://good.example/hook")
    flaky = Endpoint.objects.create(url="https://flaky.example/hook", enabled=False, disabled_reason="410 Gone")
    now = timezone.now()
    event = Event.objects.create(type="record.created", payload={})

    def delivery(endpoint, status, attempts):
        d = Delivery.objects.create(event=event, endpoint=endpoint, status=status, attempts=len(attempts))
        for n, (code, ms, error) in enumerate(attempts, start=1):
            Attempt.objects.create(
                delivery=d, number=n, started_at=now, duration_ms=ms, request_url=endpoint.url,
                response_status=code, error=error,
            )  # fmt: skip

    for ms in (10, 20, 30, 40, 50, 60, 70, 80, 90, 100):
        delivery(good, Delivery.Status.SUCCEEDED, [(200, ms, "")])
    delivery(flaky, Delivery.Status.SUCCEEDED, [(500, 300, ""), (204, 100, "")])
    delivery(flaky, Delivery.Status.FAILED, [(None, 5000, "timed out"), (410, 200, "")])
    delivery(flaky, Delivery.Status.PENDING, [(503, 400, "")])

    got = panels(admin_client.get(WEBHOOKS))
    assert got["Success rate"].number["text"] == f"{11 / 15:.1%}"  # 11 of 15 attempts answered 2xx
    endpoints = {row["Endpoint"]: row for row in table(got["Endpoints"])}
    assert endpoints["https://good.example/hook"] == {
        "Endpoint": "https://good.example/hook",
        "State": "enabled",
        "Deliveries": "10",
        "Delivered": "10",
        "Gave up": "0",
        "Pending": "0",
        "Attempts": "10",
        "Failed attempts": "0",
        "Success rate": "100.0%",
        "p50 ms": "50",
        "p95 ms": "100",
        "Last failure": "",
    }
    flaky_row = endpoints["https://flaky.example/hook"]
    assert flaky_row["State"] == "disabled: 410 Gone"
    assert (flaky_row["Deliveries"], flaky_row["Delivered"], flaky_row["Gave up"], flaky_row["Pending"]) == (
        "3",
        "1",
        "1",
        "1",
    )
    assert (flaky_row["Attempts"], flaky_row["Failed attempts"], flaky_row["Success rate"]) == ("5", "4", "20.0%")
    assert (flaky_row["p50 ms"], flaky_row["p95 ms"]) == ("300", "5,000")
    assert flaky_row["Last failure"] in {"HTTP 503", "HTTP 410", "timed out", "HTTP 500"}
    per_day = got["Attempts per day"].chart
    assert per_day["stacked"] and sum(per_day["series"][0]["data"]) == 11 and sum(per_day["series"][1]["data"]) == 4


def test_sync_status_devices_online_last_sync_and_records_sent(admin_client, admin_user, tenant):
    from records.services import collection_create, record_create, record_update
    from sync.models import Device, DeviceCheckpoint
    from sync.services import pairing_exchange, pairing_start

    def pair(name):
        started = pairing_start(actor=admin_user, user=admin_user, role="manager")
        return pairing_exchange(tenant=tenant, code=started.code, name=name, client_version="test/1")[0]

    online, away = pair("Van 1"), pair("Van 2")
    jobs = collection_create(actor=admin_user, name="Jobs", slug="jobs", fields=[{"key": "t", "type": "text"}])
    first = record_create(actor=online, collection=jobs, data={"t": "a"})
    record_create(actor=online, collection=jobs, data={"t": "b"})
    record_update(actor=online, record=first, data={"t": "a2"}, base_version=first.version)
    record_create(actor=admin_user, collection=jobs, data={"t": "not from a phone"})
    Device.objects.filter(pk=online.pk).update(last_seen_at=timezone.now())
    Device.objects.filter(pk=away.pk).update(last_seen_at=timezone.now() - timedelta(hours=3))
    DeviceCheckpoint.objects.create(device=online, collection=jobs, seq=1)

    got = panels(admin_client.get(SYNC))
    assert got["Devices online"].number["text"] == "1" and "of 2 paired" in got["Devices online"].number["label"]
    assert sum(got["Records sent by phones per day"].chart["series"][0]["data"]) == 3
    devices = {row["Device"]: row for row in table(got["Devices"])}
    assert devices["Van 1"]["Now"] == "online" and devices["Van 2"]["Now"] == "offline"
    assert devices["Van 1"]["Records sent"] == "3" and devices["Van 2"]["Records sent"] == "0"
    assert devices["Van 1"]["Last sync"] != "never" and devices["Van 2"]["Last sync"] == "never"
    assert devices["Van 1"]["Behind"] == "3"  # the records changed after its checkpoint (seq 1)


@pytest.mark.parametrize("role", [Role.MANAGER, Role.VIEWER])
def test_only_builders_see_the_built_in_dashboards(role, client_for, make_user, tenant):
    client = client_for(tenant, make_user(role))
    assert client.get(USAGE).status_code == 403
    assert client_for(tenant, make_user(Role.ANALYST)).get(SYNC).status_code == 200


def test_bad_ranges_and_unknown_dashboards(admin_client):
    bad = admin_client.get(USAGE, {"date_from": "2026-02-30"})
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.content.decode()
    assert len(bad.context["panels"]) == 3  # the default range is shown below the error
    too_long = admin_client.get(WEBHOOKS, {"date_from": "2025-01-01", "date_to": "2026-01-01"})
    assert too_long.status_code == 400 and "at most 92 days" in too_long.content.decode()
    backwards = admin_client.get(SYNC, {"date_from": "2026-03-02", "date_to": "2026-03-01"})
    assert backwards.status_code == 400
    assert admin_client.get("/analytics/builtin/nope/").status_code == 404


def test_a_malformed_provider_panel_is_reported_not_a_500(admin_client, settings):
    settings.TESSERA_ANALYTICS_BUILTIN_DASHBOARDS = {
        **settings.TESSERA_ANALYTICS_BUILTIN_DASHBOARDS,
        "broken": ("Broken", "tests.analytics.test_builtin.broken_panels"),
    }
    got = panels(admin_client.get("/analytics/builtin/broken/"))
    assert got["Fine"].rows == [["1"]]
    assert got["Mismatched"].error == "This panel could not be drawn."


def broken_panels(*, date_from, date_to, tz) -> list:
    return [
        {"title": "Fine", "kind": "table", "columns": ["n"], "rows": [[1]]},
        {"title": "Mismatched", "kind": "bar", "labels": ["a"], "series": [{"label": "s", "data": []}],
         "columns": ["n"], "rows": [[1]]},
    ]  # fmt: skip


def test_the_dashboards_page_lists_the_built_in_ones(admin_client):
    page = admin_client.get("/analytics/dashboards/").content.decode()
    for path, title in ((USAGE, "API usage"), (WEBHOOKS, "Webhook deliveries"), (SYNC, "Sync status")):
        assert f'href="{path}"' in page and title in page


@pytest.mark.saas_only
def test_another_workspace_sees_none_of_this_workspaces_data(api_key_for, tenant, tenant_b, client_for):
    from accounts.models import User
    from partners.models import ApiUsage
    from tenants.runtime import workspace_context
    from webhooks.models import Attempt, Delivery, Endpoint, Event

    key, _ = api_key_for(name="Alpha secret integration")
    ApiUsage.objects.create(key=key, day=datetime.now(UTC).date(), calls=5)
    endpoint = Endpoint.objects.create(url="https://alpha-only.example/hook")
    delivery = Delivery.objects.create(event=Event.objects.create(type="record.created", payload={}), endpoint=endpoint)
    Attempt.objects.create(delivery=delivery, number=1, duration_ms=5, request_url=endpoint.url, response_status=200)
    with workspace_context(tenant_b):
        admin_b = User.objects.get(email="admin@beta.test")
        client = client_for(tenant_b, admin_b)
        for path in (USAGE, WEBHOOKS, SYNC):
            response = client.get(path)
            assert response.status_code == 200
            page = response.content.decode()
            assert "Alpha secret integration" not in page and "alpha-only.example" not in page
            charts = [json.loads(json.dumps(p.chart)) for p in response.context["panels"] if p.chart]
            assert all(not any(s["label"].startswith("Alpha") for s in c["series"]) for c in charts)
