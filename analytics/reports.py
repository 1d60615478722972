"""Scheduled reports: a saved query or a whole dashboard e-mailed daily, weekly or monthly at a local
time of the workspace, with a summary in the body and the data attached (CSV or XLSX; a dashboard's mail
carries one file per tile); a delivery log with failures, retries, and pause/resume.

Beat sends one task every minute (`analytics.reports_due_all_workspaces`), which fans out one task per
workspace (tenants.runtime.task_in_each_workspace) — never one beat entry per workspace. Each runs the
workspace's due schedules; a schedule row is claimed with SELECT … FOR UPDATE SKIP LOCKED (PostgreSQL;
SQLite has one writer anyway), so two workers never send the same report twice.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from analytics.charts import cell_label
from analytics.errors import AnalyticsError
from analytics.exports import stream
from analytics.models import Dashboard, ReportDelivery, ReportSchedule, SavedQuery
from analytics.queries import query_for, query_run
from analytics.selectors import report_schedules_count
from billing import entitlements
from core.actors import Actor, Principal
from rbac.permissions import permission_check
from tenants.runtime import workspace_current

logger = logging.getLogger(__name__)

RETRIES = 3  # attempts of one scheduled run before it is logged as failed
RETRY_AFTER = timedelta(minutes=5)
MAX_RECIPIENTS = 50
SUMMARY_ROWS = 20


def _zone() -> ZoneInfo:
    try:
        return ZoneInfo(workspace_current().timezone or "UTC")
    except Exception:
        return ZoneInfo("UTC")


def next_run(schedule: ReportSchedule, *, after: datetime, tz: ZoneInfo) -> datetime:
    """The first run strictly after `after`: the schedule's local time on its next day, weekday or day of
    month, as an instant (a local time skipped by a DST change runs at the instant it maps to)."""
    local = after.astimezone(tz)
    day = local.date()
    for _ in range(400):
        if _runs_on(schedule, day):
            moment = datetime.combine(day, schedule.at_time, tz)
            if moment > after:
                return moment.astimezone(UTC)
        day += timedelta(days=1)
    raise AnalyticsError("This schedule never runs.", param="frequency")


def _runs_on(schedule: ReportSchedule, day: date) -> bool:
    if schedule.frequency == ReportSchedule.Frequency.DAILY:
        return True
    if schedule.frequency == ReportSchedule.Frequency.WEEKLY:
        return day.weekday() == schedule.weekday
    return day.day == schedule.day_of_month


def _recipients_clean(recipients: list[str]) -> list[str]:
    cleaned = list(dict.fromkeys(r.strip().lower() for r in recipients if r and r.strip()))
    if not cleaned:
        raise AnalyticsError("Send the report to at least one address.", param="recipients")
    if len(cleaned) > MAX_RECIPIENTS:
        raise AnalyticsError(f"At most {MAX_RECIPIENTS} recipients.", param="recipients")
    for r in cleaned:
        try:
            validate_email(r)
        except ValidationError as exc:
            raise AnalyticsError(f"`{r}` is not an e-mail address.", param="recipients") from exc
    return cleaned


def report_schedule_create(
    *,
    actor: Actor | Principal,
    query: SavedQuery | None = None,
    dashboard: Dashboard | None = None,
    frequency: str,
    at_time: time,
    recipients: list[str],
    weekday: int = 0,
    day_of_month: int = 1,
    attachment: str = "csv",
) -> ReportSchedule:
    permission_check(actor, "analytics.use")
    if (query is None) == (dashboard is None):
        raise AnalyticsError("Schedule either a saved query or a dashboard.", param="query")
    if dashboard is not None and not dashboard.tiles.exists():
        raise AnalyticsError("This dashboard has no tiles yet: pin a saved query to it first.", param="dashboard")
    if frequency not in ReportSchedule.Frequency.values:
        raise AnalyticsError("Daily, weekly or monthly.", param="frequency")
    if not 0 <= weekday <= 6:
        raise AnalyticsError("A weekday is 0 (Monday) to 6 (Sunday).", param="weekday")
    if not 1 <= day_of_month <= 28:
        raise AnalyticsError("A day of the month from 1 to 28 (every month has it).", param="day_of_month")
    if attachment not in {"csv", "xlsx"}:
        raise AnalyticsError("Attach CSV or XLSX.", param="attachment")
    # The plan's scheduled reports (and a read-only workspace schedules nothing new); existing ones keep
    # running after a downgrade.
    entitlements.scheduled_reports_check(existing=report_schedules_count)
    principal = getattr(actor, "principal", actor)
    schedule = ReportSchedule(
        query=query,
        dashboard=dashboard,
        frequency=frequency,
        weekday=weekday,
        day_of_month=day_of_month,
        at_time=at_time.replace(second=0, microsecond=0),
        recipients=_recipients_clean(recipients),
        attachment=attachment,
        created_by=principal if hasattr(principal, "role") else None,
    )
    schedule.next_run_at = next_run(schedule, after=timezone.now(), tz=_zone())
    schedule.save()
    return schedule


def report_schedule_pause(*, actor: Actor | Principal, schedule: ReportSchedule, paused: bool) -> ReportSchedule:
    """Pause, or resume from now on (runs missed while paused are not sent late)."""
    permission_check(actor, "analytics.use")
    schedule.paused = paused
    if not paused:
        schedule.next_run_at = next_run(schedule, after=timezone.now(), tz=_zone())
    schedule.save(update_fields=["paused", "next_run_at"])
    return schedule


def report_schedule_delete(*, actor: Actor | Principal, schedule: ReportSchedule) -> None:
    permission_check(actor, "analytics.use")
    schedule.delete()


ATTACHMENT_TYPES = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def _section(query: SavedQuery, *, tz: ZoneInfo, fmt: str) -> tuple[list[str], bytes, int]:
    """One saved query's part of a mail: its first rows as text lines, the whole result as a file, rows."""
    _collection, spec = query_for(raw=query.spec, livemode=True)
    result = query_run(spec=spec, livemode=True, time_zone=str(tz.key))
    buckets = {g.key: g.bucket for g in spec.group_by}
    lines = [
        f"{result.records_matched:,} records of `{spec.collection}`; {len(result.rows)} row(s).",
        "",
        " | ".join(c.label for c in result.columns),
    ]
    for row in result.rows[:SUMMARY_ROWS]:
        lines.append(" | ".join(cell_label(v, buckets.get(c.key)) for c, v in zip(result.columns, row, strict=True)))
    if len(result.rows) > SUMMARY_ROWS:
        lines.append(f"… and {len(result.rows) - SUMMARY_ROWS} more rows in the attachment.")
    data = b"".join(stream(fmt, [c.key for c in result.columns], result.rows))
    return lines, data, len(result.rows)


def report_message(schedule: ReportSchedule, *, scheduled_for: datetime, tz: ZoneInfo) -> tuple[EmailMessage, int]:
    """The e-mail of one run: the result's first rows as text, the whole result attached. A dashboard's
    mail has one such section and one attachment per tile, in the dashboard's order."""
    subject = schedule.subject
    fmt, stamp = schedule.attachment, scheduled_for.astimezone(tz).strftime("%Y-%m-%d")
    heading = f"{subject.name} — {scheduled_for.astimezone(tz):%A %-d %B %Y, %H:%M} ({tz.key})"
    message = EmailMessage(
        subject=f"[Tessera] {subject.name}", from_email=settings.DEFAULT_FROM_EMAIL, to=schedule.recipients
    )
    if schedule.query_id:
        lines, data, rows = _section(schedule.query, tz=tz, fmt=fmt)
        message.body = "\n".join([heading, *lines]) + "\n"
        message.attach(f"{subject.name[:60]} {stamp}.{fmt}", data, ATTACHMENT_TYPES[fmt])
        return message, rows
    tiles = list(schedule.dashboard.tiles.select_related("query").order_by("position", "id"))
    if not tiles:
        raise AnalyticsError("The dashboard has no tiles left to send.", param="dashboard")
    body, rows = [heading, f"{len(tiles)} tile(s); each is attached as its own file.", ""], 0
    for n, tile in enumerate(tiles, start=1):
        lines, data, count = _section(tile.query, tz=tz, fmt=fmt)
        body += [f"{n}. {tile.query.name}", *lines, ""]
        rows += count
        message.attach(f"{n:02d} {tile.query.name[:56]} {stamp}.{fmt}", data, ATTACHMENT_TYPES[fmt])
    message.body = "\n".join(body)
    return message, rows


def reports_due_run(*, now: datetime | None = None) -> int:
    """Send every due report of the current workspace; returns how many runs were attempted."""
    now = now or timezone.now()
    tz = _zone()
    done = 0
    while True:
        with transaction.atomic():
            schedule = (
                # No select_related: PostgreSQL locks no row on the nullable side of an outer join.
                ReportSchedule.objects.select_for_update(skip_locked=True)
                .filter(paused=False, next_run_at__lte=now)
                .order_by("next_run_at", "id")
                .first()
            )
            if schedule is None:
                return done
            _run_once(schedule, now=now, tz=tz)
            done += 1


def _run_once(schedule: ReportSchedule, *, now: datetime, tz: ZoneInfo) -> None:
    scheduled_for = schedule.retrying_run or schedule.next_run_at
    attempts = schedule.deliveries.filter(scheduled_for=scheduled_for).count() + 1
    delivery = ReportDelivery(
        schedule=schedule, scheduled_for=scheduled_for, attempts=attempts, recipients=schedule.recipients
    )
    try:
        message, delivery.rows = report_message(schedule, scheduled_for=scheduled_for, tz=tz)
        message.send()
    except Exception as exc:  # any failure (the query, the mail server) is logged on the delivery
        logger.warning("report %s failed (attempt %s): %s", schedule.pk, attempts, exc)
        delivery.error = (str(getattr(exc, "message", "") or exc) or exc.__class__.__name__)[:2000]
        if attempts < RETRIES:
            delivery.status = ReportDelivery.Status.RETRYING
            schedule.retrying_run, schedule.next_run_at = scheduled_for, now + RETRY_AFTER
        else:
            delivery.status = ReportDelivery.Status.FAILED
    else:
        delivery.status = ReportDelivery.Status.SENT
    if delivery.status != ReportDelivery.Status.RETRYING:
        schedule.retrying_run = None
        schedule.next_run_at = next_run(schedule, after=max(now, scheduled_for), tz=tz)
    delivery.finished_at = timezone.now()
    delivery.save()
    schedule.save(update_fields=["next_run_at", "retrying_run"])
