"""The analyst's path in a real browser against the real server: build "revenue by month" without
SQL, see it charted (Chart.js drew it) and tabled, export it, save it, pin it to a dashboard, narrow
the dashboard's date range, drill down from a row to the records behind it, and schedule it: the
e-mail arrives with the same numbers. Numbers are checked against a sum computed here over the same
data. (The background export and its exports page: test_analytics_exports.py.)"""

from __future__ import annotations

import csv
import io
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import SAAS

pytestmark = pytest.mark.browser

PASSWORD = "Analyst-browser-31"
SALES = [  # (closed_on, region, amount)
    *[(f"2025-{m:02d}-10", "EU", 100 * m) for m in range(1, 13)],
    *[(f"2026-{m:02d}-{d:02d}", r, 10 * m + d) for m in range(1, 7) for d, r in ((3, "EU"), (17, "US"), (28, "EU"))],
]


def url_of(server, path: str) -> str:
    return server.tenant_url("alpha", path) if SAAS else server.url(path)


@pytest.fixture
def analyst(tessera_server, tenants_provisioned, db_commit):
    """A committed Analyst of alpha and a `sales` collection (its slug unique to this run); removed after."""
    email = f"analyst-{uuid.uuid4().hex[:10]}@example.com"
    slug = f"sales-{uuid.uuid4().hex[:6]}"
    tenant = tenants_provisioned["alpha"]

    def create():
        from django.contrib.auth.hashers import Argon2PasswordHasher

        from accounts.models import User
        from accounts.services import user_create
        from rbac.roles import Role
        from records.services import collection_create, record_bulk_upsert
        from tenants.runtime import workspace_context

        with workspace_context(tenant):
            user = user_create(email=email, password=None, full_name="Ana Lyst", role=Role.ANALYST)
            hasher = Argon2PasswordHasher()
            user.password = hasher.encode(PASSWORD, hasher.salt())
            user.save(update_fields=["password"])
            admin = User.objects.filter(role=Role.ADMIN).order_by("pk").first()
            collection = collection_create(
                actor=admin,
                name="Sales " + slug,
                slug=slug,
                fields=[
                    {"key": "closed_on", "type": "date"},
                    {"key": "region", "type": "text"},
                    {"key": "amount", "type": "number"},
                ],
            )
            items = [{"data": {"closed_on": d, "region": r, "amount": a}} for d, r, a in SALES]
            record_bulk_upsert(actor=admin, collection=collection, items=items)

    db_commit(create)
    yield email, slug

    def remove():
        from accounts.models import User
        from analytics.models import Dashboard, SavedQuery
        from records.models import Collection, Record
        from tenants.runtime import workspace_context

        with workspace_context(tenant):
            user = User.objects.get(email=email)
            Dashboard.objects.filter(owner=user).delete()
            SavedQuery.objects.filter(owner=user).delete()
            Record.objects.filter(collection__slug=slug).delete()
            Collection.objects.filter(slug=slug).delete()
            user.delete()

    db_commit(remove)


def chart_drawn(page, within: str = "body") -> bool:
    return page.evaluate(
        f"""() => {{ const c = document.querySelector({within!r} + ' canvas[data-chart]');
        return !!(c && c.dataset.drawn === '1' && window.Chart && Chart.getChart(c)); }}"""
    )


def run_due_reports(tenant) -> list:
    """What beat's task does in the worker, run here (the test's mail backend is locmem): every due report."""
    from django.core import mail

    from analytics.models import ReportSchedule
    from analytics.reports import reports_due_run
    from tenants.runtime import workspace_context

    with workspace_context(tenant):
        due = ReportSchedule.objects.order_by("-next_run_at").first().next_run_at
        reports_due_run(now=due)
    return list(mail.outbox)


def test_revenue_by_month_from_query_to_dashboard_and_records(
    tessera_server, browser_context, analyst, tenants_provisioned, db_commit
):
    email, slug = analyst
    server, page = tessera_server, browser_context().new_page()
    page.goto(url_of(server, "/analytics/queries/new/"))
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url_of(server, "/analytics/queries/new/"))

    page.get_by_test_id("collection").select_option(slug)
    page.get_by_test_id("run").click()  # the field lists follow the collection
    page.get_by_test_id("group-1").select_option("closed_on")
    page.get_by_test_id("bucket-1").select_option("month")
    page.get_by_test_id("agg-fn").first.select_option("sum")
    page.get_by_test_id("agg-field").first.select_option("amount")
    page.get_by_test_id("date-from").fill("2026-01-01")
    page.get_by_test_id("date-to").fill("2026-12-31")
    page.get_by_test_id("compare").select_option("previous_year")
    page.get_by_test_id("chart-kind").select_option("bar")
    page.get_by_test_id("run").click()

    revenue, last_year = defaultdict(int), defaultdict(int)
    for day, _region, amount in SALES:
        (revenue if day.startswith("2026") else last_year)[int(day[5:7])] += amount
    table = page.get_by_test_id("result-table")
    expect(table.locator("tbody tr")).to_have_count(12)  # every month of the range that has sales, this year or last
    january = table.locator("tbody tr").first
    expect(january).to_contain_text("Jan 2026")
    expect(january).to_contain_text(str(revenue[1]))
    expect(january).to_contain_text(str(last_year[1]))
    assert chart_drawn(page)

    # Exported as the builder shows it: the CSV's numbers are the table's.
    with page.expect_download() as download:
        page.get_by_test_id("export-csv").click()
    exported = Path(download.value.path()).read_bytes().decode("utf-8-sig")
    by_month = {r["closed_on_month"]: r for r in csv.DictReader(io.StringIO(exported))}
    assert len(by_month) == 12
    assert float(by_month["2026-01-01"]["sum_amount"]) == revenue[1]
    assert float(by_month["2026-01-01"]["sum_amount_previous"]) == last_year[1]
    assert float(by_month["2026-06-01"]["sum_amount"]) == revenue[6]

    page.get_by_test_id("query-name").fill("Revenue by month")
    page.get_by_test_id("save").click()
    expect(page.get_by_text("Saved “Revenue by month”.")).to_be_visible()
    query_url = page.url

    page.get_by_role("navigation", name="Analytics").get_by_role("link", name="Dashboards").click()
    page.get_by_test_id("dashboard-name").fill("Sales board")
    page.get_by_test_id("dashboard-create").click()
    page.goto(query_url)
    page.get_by_test_id("pin-dashboard").select_option(label="Sales board")
    page.get_by_test_id("pin").click()
    expect(page.get_by_text("Pinned “Revenue by month” to Sales board.")).to_be_visible()
    tile = page.get_by_test_id("tile").first
    expect(tile).to_contain_text("Revenue by month")
    assert chart_drawn(page, "[data-testid=tile]")

    page.get_by_test_id("bar-from").fill("2026-03-01")
    page.get_by_test_id("bar-to").fill("2026-04-30")
    page.get_by_test_id("bar-apply").click()
    rows = page.get_by_test_id("tile").first.get_by_test_id("result-table").locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Mar 2026")
    expect(rows.first).to_contain_text(str(revenue[3]))

    page.get_by_test_id("tile").first.locator("summary").click()
    rows.first.get_by_test_id("drill").click()
    page.wait_for_url(f"**/records/{slug}/**")
    assert "closed_on__gte=2026-03-01" in page.url and "closed_on__lt=2026-04-01" in page.url
    expect(page.get_by_text("2026-03-17")).to_be_visible()
    expect(page.get_by_text("2026-04-03")).to_have_count(0)

    # Scheduled: every Monday at 08:00, e-mailed with the data attached; the run arrives with the numbers.
    page.goto(query_url)
    page.get_by_test_id("schedule-frequency").select_option("weekly")
    page.get_by_test_id("schedule-weekday").select_option(label="Monday")
    page.get_by_test_id("schedule-time").fill("08:00")
    page.get_by_test_id("schedule-recipients").fill("boss@example.com")
    page.get_by_test_id("schedule-add").click()
    expect(page.get_by_text("Scheduled “Revenue by month”.")).to_be_visible()
    expect(page.get_by_test_id("schedules")).to_contain_text("Weekly on Monday at 08:00")
    outbox = db_commit(run_due_reports, tenants_provisioned["alpha"])
    message = next(m for m in outbox if m.subject == "[Tessera] Revenue by month")
    assert message.to == ["boss@example.com"]
    assert f"Jan 2026 | {revenue[1]} | {last_year[1]} |" in message.body
    attached = message.attachments[0][1]
    text = attached.decode("utf-8-sig") if isinstance(attached, bytes) else attached.lstrip("\ufeff")
    assert text.splitlines()[0] == "closed_on_month,sum_amount,sum_amount_previous,sum_amount_change"
    assert f"2026-03-01,{revenue[3]},{last_year[3]}," in text
    page.get_by_role("link", name="delivery log").click()
    expect(page.get_by_test_id("deliveries")).to_contain_text("Sent")
