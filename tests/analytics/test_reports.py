"""Scheduled reports: when they run (the workspace's time zone, DST), the e-mail and its attachment
(numbers equal to the query's), the delivery log with retries and failures, pause/resume, and the
Celery beat entry that fans out to every workspace. Mail goes to Django's locmem backend.

The model leaves out: a real SMTP server and a real beat process (the beat entry and the task it
sends are checked; the task runs in this process)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.core import mail

from analytics.errors import AnalyticsError
from analytics.models import ReportDelivery, ReportSchedule, SavedQuery
from analytics.reports import next_run, report_schedule_create, report_schedule_pause, reports_due_run
from analytics.services import saved_query_create

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def by_region(orders, admin_user):
    return saved_query_create(
        actor=admin_user,
        name="Orders by region",
        spec={
            "collection": "orders",
            "group_by": ["region"],
            "aggregates": [{"fn": "count"}, {"fn": "sum", "field": "qty"}],
        },
    )


def test_weekly_runs_at_local_time_across_dst():
    schedule = ReportSchedule(frequency="weekly", weekday=0, at_time=time(8, 0))
    before = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)  # a Friday; clocks go forward on Sunday 29 March
    first = next_run(schedule, after=before, tz=BERLIN)
    second = next_run(schedule, after=first, tz=BERLIN)
    third = next_run(schedule, after=second, tz=BERLIN)
    assert first == datetime(2026, 3, 23, 7, 0, tzinfo=UTC)  # 08:00 CET
    assert second == datetime(2026, 3, 30, 6, 0, tzinfo=UTC)  # 08:00 CEST
    assert third - second == timedelta(days=7)
    monthly = ReportSchedule(frequency="monthly", day_of_month=28, at_time=time(23, 30))
    assert next_run(monthly, after=before, tz=BERLIN) == datetime(2026, 3, 28, 22, 30, tzinfo=UTC)


def test_a_due_report_is_mailed_with_the_query_numbers(by_region, admin_user, orders):
    schedule = report_schedule_create(
        actor=admin_user, query=by_region, frequency="daily", at_time=time(7, 0), recipients=["Boss@Example.com"]
    )
    assert schedule.recipients == ["boss@example.com"]
    now = schedule.next_run_at + timedelta(seconds=5)
    assert reports_due_run(now=now) == 1
    assert reports_due_run(now=now) == 0  # sent once
    (message,) = mail.outbox
    assert message.to == ["boss@example.com"] and message.subject == "[Tessera] Orders by region"
    _collection, stored = orders
    regions = [s["data"].get("region") for s in stored]
    assert f"{len(stored):,} records" in message.body and f"EU | {regions.count('EU')} |" in message.body
    name, content, kind = message.attachments[0]
    assert name.endswith(".csv") and kind == "text/csv"
    text = content.decode("utf-8-sig") if isinstance(content, bytes) else content.lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["region", "count", "sum_qty"]
    assert {r[0]: int(r[1]) for r in rows[1:]} == {(k or ""): regions.count(k) for k in set(regions)}
    delivery = ReportDelivery.objects.get()
    assert delivery.status == "sent" and delivery.rows == 4 and delivery.attempts == 1
    schedule.refresh_from_db()
    assert schedule.next_run_at - delivery.scheduled_for == timedelta(days=1)


def test_failures_are_retried_then_logged_and_the_schedule_goes_on(by_region, admin_user):
    schedule = report_schedule_create(
        actor=admin_user, query=by_region, frequency="weekly", weekday=2, at_time=time(9, 0), recipients=["a@x.test"]
    )
    SavedQuery.objects.filter(pk=by_region.pk).update(spec={"collection": "gone"})  # its collection was deleted
    due = schedule.next_run_at
    now = due
    for _attempt in range(3):
        now += timedelta(minutes=6)
        assert reports_due_run(now=now) == 1
    statuses = list(ReportDelivery.objects.order_by("id").values_list("status", "attempts", "scheduled_for"))
    assert statuses == [("retrying", 1, due), ("retrying", 2, due), ("failed", 3, due)]
    assert "gone" in ReportDelivery.objects.last().error and not mail.outbox
    schedule.refresh_from_db()
    assert schedule.retrying_run is None and schedule.next_run_at == due + timedelta(days=7)


def test_paused_reports_are_not_sent_and_resume_from_now(by_region, admin_user):
    schedule = report_schedule_create(
        actor=admin_user, query=by_region, frequency="daily", at_time=time(6, 0), recipients=["a@x.test"]
    )
    report_schedule_pause(actor=admin_user, schedule=schedule, paused=True)
    assert reports_due_run(now=schedule.next_run_at + timedelta(days=3)) == 0 and not mail.outbox
    report_schedule_pause(actor=admin_user, schedule=schedule, paused=False)
    assert schedule.next_run_at > datetime.now(UTC)


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"recipients": []}, "recipients"),
        ({"recipients": ["not-an-address"]}, "recipients"),
        ({"frequency": "hourly"}, "frequency"),
        ({"day_of_month": 31, "frequency": "monthly"}, "day_of_month"),
        ({"attachment": "pdf"}, "attachment"),
    ],
)
def test_bad_schedules_say_what_is_wrong(by_region, admin_user, changes, param):
    kwargs = {"frequency": "daily", "at_time": time(6, 0), "recipients": ["a@x.test"], **changes}
    with pytest.raises(AnalyticsError) as caught:
        report_schedule_create(actor=admin_user, query=by_region, **kwargs)
    assert caught.value.param == param


def test_beat_sends_one_task_that_fans_out_to_each_workspace(by_region, admin_user, monkeypatch):
    from analytics import tasks

    entry = settings.CELERY_BEAT_SCHEDULE["analytics-reports-due"]
    assert entry["task"] == "analytics.reports_due_all_workspaces" and entry["schedule"] == 60.0
    sent = []
    monkeypatch.setattr(tasks.reports_due_task, "delay", lambda: sent.append(tasks.reports_due_task.run()))
    assert tasks.reports_due_all_workspaces.run() >= 1 and sent  # each workspace's task ran


def _attachment_rows(content) -> list[list[str]]:
    text = content.decode("utf-8-sig") if isinstance(content, bytes) else content.lstrip("\ufeff")
    return list(csv.reader(io.StringIO(text)))


def test_a_dashboard_is_mailed_with_every_tiles_summary_and_data(by_region, admin_user, orders, admin_client):
    """Scheduled from the dashboard's page (the console's form); the run mails each tile's numbers."""
    from analytics.services import dashboard_create, tile_add

    total = saved_query_create(
        actor=admin_user,
        name="Quantity sold",
        spec={"collection": "orders", "aggregates": [{"fn": "sum", "field": "qty"}]},
    )
    board = dashboard_create(actor=admin_user, name="Monday board")
    tile_add(actor=admin_user, dashboard=board, query=total)
    tile_add(actor=admin_user, dashboard=board, query=by_region)
    posted = admin_client.post(
        f"/analytics/dashboards/{board.pk}/schedules/",
        {
            "frequency": "weekly",
            "weekday": "0",
            "at_time": "08:00",
            "recipients": "boss@example.com",
            "attachment": "csv",
        },
    )
    assert posted.status_code == 302 and posted["Location"].endswith(f"/analytics/dashboards/{board.pk}/")
    page = admin_client.get(f"/analytics/dashboards/{board.pk}/").content.decode()
    assert "Weekly on Monday at 08:00" in page and "boss@example.com" in page
    schedule = ReportSchedule.objects.get(dashboard=board)
    assert schedule.query is None

    assert reports_due_run(now=schedule.next_run_at) == 1
    (message,) = mail.outbox
    assert message.subject == "[Tessera] Monday board" and message.to == ["boss@example.com"]
    _collection, stored = orders
    regions = [s["data"].get("region") for s in stored]
    qty = sum(
        s["data"]["qty"]
        for s in stored
        if isinstance(s["data"].get("qty"), int) and not isinstance(s["data"]["qty"], bool)
    )
    assert message.body.index("1. Quantity sold") < message.body.index("2. Orders by region")
    assert f"\n{qty:,}\n" in message.body and f"EU | {regions.count('EU')} |" in message.body
    (first, first_data, _), (second, second_data, _) = message.attachments
    assert first.startswith("01 Quantity sold") and second.startswith("02 Orders by region")
    assert _attachment_rows(first_data) == [["sum_qty"], [str(qty)]]
    assert {r[0]: int(r[1]) for r in _attachment_rows(second_data)[1:]} == {
        (k or ""): regions.count(k) for k in set(regions)
    }
    delivery = ReportDelivery.objects.get(schedule=schedule)
    assert delivery.status == "sent" and delivery.rows == 1 + 4
    log = admin_client.get(f"/analytics/schedules/{schedule.pk}/log/").content.decode()
    assert "Delivery log: Monday board" in log and f"/analytics/dashboards/{board.pk}/" in log


def test_a_dashboard_schedule_needs_tiles_and_one_subject(by_region, admin_user, admin_client):
    from analytics.services import dashboard_create

    empty = dashboard_create(actor=admin_user, name="Empty")
    with pytest.raises(AnalyticsError) as caught:
        report_schedule_create(
            actor=admin_user, dashboard=empty, frequency="daily", at_time=time(6), recipients=["a@x.test"]
        )
    assert caught.value.param == "dashboard"
    with pytest.raises(AnalyticsError):
        report_schedule_create(
            actor=admin_user,
            query=by_region,
            dashboard=empty,
            frequency="daily",
            at_time=time(6),
            recipients=["a@x.test"],
        )
    posted = admin_client.post(
        f"/analytics/dashboards/{empty.pk}/schedules/",
        {"frequency": "daily", "at_time": "06:00", "recipients": "a@x.test"},
    )
    assert posted.status_code == 302
    assert "no tiles yet" in admin_client.get(f"/analytics/dashboards/{empty.pk}/").content.decode()
    assert not ReportSchedule.objects.exists()
