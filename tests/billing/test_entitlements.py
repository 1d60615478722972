"""Plans, limits and the subscription's standing, as each surface shows them: the REST API
(problem+json), the console (a page or a form error, a banner), imports, pairing, invitations and
webhook endpoints. The sync websocket's error frames are in tests/sync/test_plan_limits.py.

Plans are shrunk per test (`small_limits`) so a limit is reached with a few items; the checks and
the counting are the real ones."""

from __future__ import annotations

import json
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from rbac.roles import Role
from records.selectors import records_live_count
from records.services import collection_create, record_create
from tests.conftest import SAAS

PROBLEM = "application/problem+json"
RECORDS = "/api/v1/collections/customers/records"
saas_only = pytest.mark.saas_only


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["code"] == code, body
    return body


@pytest.fixture
def customers(tenant, admin_user):
    return collection_create(
        actor=admin_user, name="Customers", slug="customers", fields=[{"key": "name", "type": "text"}]
    )


@pytest.fixture
def live(api):
    return api(mode="live")


def _records(admin_user, collection, n):
    return [record_create(actor=admin_user, collection=collection, data={"name": f"r{i}"}) for i in range(n)]


# --- the catalogue ---------------------------------------------------------------------------------------


def test_catalogue_has_four_plans_each_limit_growing_and_lookup_keys_per_interval():
    from billing.plans import LIMIT_NAMES, ORDER, PLANS, metered_price_lookup_key, plan_of_lookup_key, price_lookup_key

    assert [p.value for p in ORDER] == ["free", "starter", "pro", "enterprise"]
    for name in LIMIT_NAMES:
        values = [getattr(PLANS[p], name) for p in ORDER]
        finite = [v for v in values if v is not None]
        assert finite == sorted(finite) and len(set(finite)) == len(finite), (name, values)
        assert values[-1] is None  # Enterprise: unlimited
    assert price_lookup_key("pro", "year") == "tessera_pro_yearly"
    assert metered_price_lookup_key("starter", "month") == "tessera_starter_api_calls_monthly"
    assert plan_of_lookup_key("tessera_starter_monthly") == ("starter", "month")
    assert plan_of_lookup_key("somebody_elses_price") is None


# --- records: every surface --------------------------------------------------------------------------------


@saas_only
def test_records_limit_refuses_the_next_create_on_api_with_limit_usage_and_billing_url(
    live, customers, admin_user, small_limits
):
    small_limits("free", records=2)
    _records(admin_user, customers, 2)
    body = problem(live.post(RECORDS, {"data": {"name": "third"}}), 402, "plan_limit_exceeded")
    assert (body["limit_name"], body["limit"], body["usage"]) == ("records", 2, 2)
    assert body["billing_url"].endswith(f"//{live.tenant.host()}/billing/")
    assert "Free plan allows 2 records" in body["detail"]
    # Reading, updating and deleting what exists still work at the limit; a delete frees a place.
    listed = live.get(RECORDS)
    assert listed.status_code == 200 and len(listed.json()["data"]) == 2
    first = listed.json()["data"][0]
    assert live.patch(f"{RECORDS}/{first['id']}", {"data": {"name": "renamed"}}).status_code == 200
    assert live.delete(f"{RECORDS}/{first['id']}").status_code == 200
    assert live.post(RECORDS, {"data": {"name": "third"}}).status_code == 201


@saas_only
def test_an_api_create_on_a_limited_plan_neither_counts_records_nor_reads_the_billing_account(
    api, customers, admin_user, standing_set
):
    """The records limit is checked on every create (the Starter plan limits records), against the
    count kept with the change counter's lock and the standing loaded with the workspace by the host
    lookup: no COUNT over the records, no query of its own for the billing account."""
    standing_set(plan="starter", status="active")
    record_create(actor=admin_user, collection=customers, data={"name": "first"})
    live = api(mode="live")
    with CaptureQueriesContext(connection) as queries:
        response = live.post("/api/v1/collections/customers/records", {"data": {"name": "second"}})
    assert response.status_code == 201, response.content
    statements = [q["sql"] for q in queries.captured_queries]
    assert not [s for s in statements if "COUNT(" in s.upper() and "records_record" in s], statements
    assert not [s for s in statements if s.startswith("SELECT") and 'FROM "billing_billingaccount"' in s], statements
    assert records_live_count() == 2


@saas_only
def test_bulk_upsert_over_the_limit_fails_only_the_items_beyond_it(live, customers, admin_user, small_limits):
    small_limits("free", records=3)
    _records(admin_user, customers, 1)
    response = live.post(f"{RECORDS}/bulk", {"items": [{"data": {"name": f"b{i}"}} for i in range(4)]})
    assert response.status_code == 200, response.content
    statuses = [item["status"] for item in response.json()["results"]]
    assert statuses == ["created", "created", "error", "error"]
    assert response.json()["results"][2]["error"]["code"] == "plan_limit_exceeded"


@saas_only
def test_downgrade_keeps_records_over_the_limit_and_refuses_only_new_ones(
    live, customers, admin_user, small_limits, standing_set
):
    standing_set(plan="pro", status="active")
    _records(admin_user, customers, 4)
    small_limits("starter", records=2)
    standing_set(plan="starter", status="active")  # the downgrade
    listed = live.get(RECORDS)
    assert len(listed.json()["data"]) == 4  # nothing deleted
    rid = listed.json()["data"][0]["id"]
    assert live.patch(f"{RECORDS}/{rid}", {"data": {"name": "still editable"}}).status_code == 200
    body = problem(live.post(RECORDS, {"data": {"name": "new"}}), 402, "plan_limit_exceeded")
    assert (body["limit"], body["usage"]) == (2, 4)
    # An upgrade lifts the limit at once.
    standing_set(plan="pro", status="active")
    assert live.post(RECORDS, {"data": {"name": "new"}}).status_code == 201


@saas_only
def test_console_record_create_over_the_limit_is_a_page_saying_why_not_a_500(
    admin_client, customers, admin_user, small_limits
):
    small_limits("free", records=1)
    _records(admin_user, customers, 1)
    response = admin_client.post("/records/customers/new/", {"f-name": "Second"})
    assert response.status_code == 402
    page = response.content.decode()
    assert 'data-code="plan_limit_exceeded"' in page and "Free plan allows 1 records" in page
    assert 'href="/billing/"' in page


@saas_only
def test_import_over_the_limit_reports_the_rows_beyond_it(admin_user, customers, small_limits):
    from records.services import record_bulk_upsert

    small_limits("free", records=2)
    results = record_bulk_upsert(
        actor=admin_user, collection=customers, items=[{"data": {"name": n}} for n in ("a", "b", "c")]
    )
    assert [r.status for r in results] == ["created", "created", "error"]
    assert results[2].error.code == "plan_limit_exceeded"


# --- the other limits --------------------------------------------------------------------------------------


@saas_only
def test_members_limit_counts_pending_invitations_and_refuses_on_the_members_page(
    admin_client, make_user, small_limits
):
    small_limits("free", members=3)
    make_user(Role.VIEWER)
    ok = admin_client.post("/members/", {"email": "new@alpha.test", "role": Role.VIEWER})
    assert ok.status_code == 200
    refused = admin_client.post("/members/", {"email": "more@alpha.test", "role": Role.VIEWER})
    assert refused.status_code in (400, 402)
    assert "Free plan allows 3 members" in refused.content.decode()


@saas_only
def test_devices_limit_refuses_a_new_pairing_and_an_exchange_after_a_downgrade(
    tenant, admin_user, client_for, small_limits
):
    from sync.services import pairing_exchange, pairing_start

    small_limits("free", devices=1)
    started = pairing_start(actor=admin_user)
    pending = pairing_start(actor=admin_user)  # started while there was room
    pairing_exchange(tenant=tenant, code=started.code, name="Phone 1")
    page = client_for(tenant, admin_user).post("/devices/", {"user": admin_user.pk, "role": Role.VIEWER})
    assert "Free plan allows 1 devices" in page.content.decode()
    anon = client_for(tenant)
    response = anon.post("/sync/v1/pair", json.dumps({"code": pending.code, "name": "Phone 2"}), "application/json")
    body = problem(response, 402, "plan_limit_exceeded")
    assert body["limit_name"] == "devices"


@saas_only
def test_webhook_endpoints_limit_per_mode_on_the_api(live, small_limits):
    small_limits("free", webhook_endpoints=1)
    first = live.post("/api/v1/webhook_endpoints", {"url": "https://example.com/hook"})
    assert first.status_code == 201, first.content
    second = live.post("/api/v1/webhook_endpoints", {"url": "https://example.com/two"})
    body = problem(second, 402, "plan_limit_exceeded")
    assert (body["limit_name"], body["limit"], body["usage"]) == ("webhook_endpoints", 1, 1)


@saas_only
def test_scheduled_reports_limit_refuses_one_more_schedule_in_the_console_and_shows_on_the_billing_page(
    admin_client, customers, admin_user, small_limits, standing_set
):
    from analytics.models import ReportSchedule
    from analytics.services import saved_query_create

    small_limits("free", scheduled_reports=1)
    saved = saved_query_create(actor=admin_user, name="Customers", spec={"collection": "customers"})
    url = f"/analytics/queries/{saved.pk}/schedules/"
    form = {"frequency": "daily", "at_time": "07:00", "recipients": "boss@example.com", "attachment": "csv"}
    first = admin_client.post(url, form, follow=True)
    assert "Scheduled “Customers”" in first.content.decode()
    second = admin_client.post(url, {**form, "at_time": "08:00"}, follow=True).content.decode()
    assert "Free plan allows 1 reports (scheduled reports)" in second and "Upgrade the plan" in second
    assert ReportSchedule.objects.count() == 1
    usage = admin_client.get("/billing/").content.decode()
    row = usage.split('data-limit="scheduled_reports"', 1)[1].split("</tr>", 1)[0]
    assert "<td>1</td>" in row and 'value="1"' in row
    # An upgrade lifts the limit at once; a read-only workspace schedules nothing new.
    standing_set(plan="starter", status="active")
    assert "Scheduled “Customers”" in admin_client.post(url, {**form, "at_time": "09:00"}, follow=True).content.decode()
    standing_set(plan="starter", status="unpaid")
    refused = admin_client.post(url, {**form, "at_time": "10:00"}, follow=True).content.decode()
    assert "read-only" in refused and ReportSchedule.objects.count() == 2


@saas_only
def test_free_plan_api_calls_stop_at_the_months_amount_and_paid_plans_keep_serving(
    live, customers, small_limits, standing_set, settings, monkeypatch
):
    from partners import ratelimit
    from partners.usage import usage_flush

    # Counters of this test's own (Redis keeps other tests' pending calls), and no cached month.
    settings.TESSERA_COUNTERS_NAMESPACE = f"billing-test-{uuid.uuid4().hex}"
    monkeypatch.setattr(ratelimit, "_month_calls", {})
    small_limits("free", api_calls_month=3)
    for _ in range(3):
        assert live.get(RECORDS).status_code == 200
    usage_flush(tenant=live.tenant)
    ratelimit._month_calls.clear()  # another process, or 10 s later
    body = problem(live.get(RECORDS), 402, "plan_limit_exceeded")
    assert (body["limit_name"], body["limit"]) == ("api_calls_month", 3)
    small_limits("starter", api_calls_month=3)
    standing_set(plan="starter", status="active")
    assert live.get(RECORDS).status_code == 200  # above the included amount: billed by the meter


# --- standing: trial, past due, read-only ------------------------------------------------------------------


@saas_only
@pytest.mark.parametrize(
    ("status", "past_due_days", "read_only"),
    [
        ("trialing", 0, False),
        ("active", 0, False),
        ("past_due", 6.9, False),  # within the 7-day grace period
        ("past_due", 7.1, True),
        ("unpaid", 0, True),
        ("canceled", 0, True),
        ("paused", 0, True),
    ],
)
def test_standing_by_subscription_status(standing_set, status, past_due_days, read_only):
    from billing.entitlements import standing

    standing_set(status=status, past_due_days=past_due_days)
    now = standing()
    assert now.read_only is read_only
    assert now.in_grace is (status == "past_due" and not read_only)


@saas_only
def test_read_only_refuses_every_write_surface_but_reads_and_exports_work(
    live, admin_client, customers, admin_user, standing_set
):
    (kept,) = _records(admin_user, customers, 1)
    standing_set(status="unpaid")
    body = problem(live.post(RECORDS, {"data": {"name": "x"}}), 402, "payment_required")
    assert body["subscription_status"] == "unpaid" and body["billing_url"].endswith("/billing/")
    problem(live.patch(f"{RECORDS}/{kept.id}", {"data": {"name": "y"}}), 402, "payment_required")
    problem(live.delete(f"{RECORDS}/{kept.id}"), 402, "payment_required")
    problem(live.post(f"{RECORDS}/bulk", {"items": [{"data": {"name": "z"}}]}), 402, "payment_required")
    assert live.get(RECORDS).json()["data"][0]["id"] == kept.id
    console = admin_client.post("/records/customers/new/", {"f-name": "Nope"})
    assert console.status_code == 402 and 'data-code="payment_required"' in console.content.decode()
    export = admin_client.get("/records/customers/export.csv")
    assert export.status_code == 200
    assert b"r0" in (b"".join(export.streaming_content) if export.streaming else export.content)
    page = admin_client.get("/records/customers/").content.decode()
    assert 'data-testid="billing-banner"' in page and "read-only" in page
    # Paying again restores full service at once.
    standing_set(status="active")
    assert live.post(RECORDS, {"data": {"name": "x"}}).status_code == 201
    assert 'data-testid="billing-banner"' not in admin_client.get("/records/customers/").content.decode()


@saas_only
def test_past_due_within_grace_writes_and_shows_the_banner_with_the_date_writes_stop(
    admin_client, live, customers, standing_set
):
    standing_set(status="past_due", past_due_days=2)
    assert live.post(RECORDS, {"data": {"name": "ok"}}).status_code == 201
    page = admin_client.get("/records/").content.decode()
    assert 'data-testid="billing-banner"' in page and "Payment failed." in page and "Writes stop on" in page


@saas_only
def test_read_only_holds_for_tenant_alpha_only(tenant, tenant_b, standing_set, client_for):
    """Workspace B keeps writing while A is read-only: the standing is per workspace."""
    from accounts.models import User
    from billing.entitlements import standing
    from tenants.runtime import workspace_context

    standing_set(status="canceled")
    assert standing(tenant).read_only
    with workspace_context(tenant_b):
        assert not standing().read_only
        admin_b = User.objects.get(email="admin@beta.test")
    response = client_for(tenant_b, admin_b).post("/records/", {"name": "Beta things", "slug": "beta-things"})
    assert response.status_code in (200, 302), response.status_code


# --- the desktop -------------------------------------------------------------------------------------------


@pytest.mark.desktop_only
def test_desktop_is_unlimited_and_never_read_only(live, customers, admin_user, small_limits):
    from billing import entitlements

    small_limits("free", records=1, members=1)
    _records(admin_user, customers, 2)
    assert live.post(RECORDS, {"data": {"name": "third"}}).status_code == 201
    assert entitlements.standing().read_only is False
    assert all(line.allowed is None for line in entitlements.usage_lines())


def test_billing_page_is_the_saas_admins_only(admin_client, make_user, client_for, tenant):
    response = admin_client.get("/billing/")
    if not SAAS:
        assert response.status_code == 404
        return
    page = response.content.decode()
    assert response.status_code == 200 and 'data-testid="usage"' in page
    assert 'data-limit="records"' in page and 'data-plan="enterprise"' in page
    manager = client_for(tenant, make_user(Role.MANAGER))
    assert manager.get("/billing/").status_code == 403
