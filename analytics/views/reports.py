"""Scheduled reports in the console: schedule a saved query or a dashboard (from its page), pause,
resume, delete, and the delivery log."""

from __future__ import annotations

from datetime import time

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from analytics import reports
from analytics.errors import AnalyticsError
from analytics.models import ReportSchedule
from analytics.views.running import dashboard_or_404, saved_query_or_404
from core.errors import ServiceError
from rbac.permissions import permission_required


def _time(raw: str) -> time | None:
    try:
        return time.fromisoformat(raw)
    except ValueError:
        return None


def _schedule_create(request: HttpRequest, *, query=None, dashboard=None) -> None:
    post = request.POST
    at = _time(post.get("at_time", ""))
    recipients = [r for chunk in post.getlist("recipients") for r in chunk.replace(";", ",").split(",")]
    name = (query or dashboard).name
    try:
        if at is None:
            raise AnalyticsError("Enter a time (HH:MM).", param="at_time")
        reports.report_schedule_create(
            actor=request.user,
            query=query,
            dashboard=dashboard,
            frequency=post.get("frequency", ""),
            at_time=at,
            recipients=recipients,
            weekday=int(post.get("weekday") or 0) if (post.get("weekday") or "0").isdigit() else -1,
            day_of_month=int(post.get("day_of_month") or 1) if (post.get("day_of_month") or "1").isdigit() else 0,
            attachment=post.get("attachment", "csv"),
        )
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Scheduled “{name}”.")


@permission_required("analytics.use")
@require_POST
def schedule_add(request: HttpRequest, pk: int) -> HttpResponse:
    saved = saved_query_or_404(pk)
    _schedule_create(request, query=saved)
    return redirect("analytics:query", pk=saved.pk)


@permission_required("analytics.use")
@require_POST
def dashboard_schedule_add(request: HttpRequest, pk: int) -> HttpResponse:
    """E-mail the whole dashboard: every tile's summary in the body, every tile's data attached."""
    dashboard = dashboard_or_404(request, pk)
    _schedule_create(request, dashboard=dashboard)
    return redirect("analytics:dashboard", pk=dashboard.pk)


def _back(schedule: ReportSchedule) -> HttpResponse:
    if schedule.dashboard_id:
        return redirect("analytics:dashboard", pk=schedule.dashboard_id)
    return _back(schedule)


@permission_required("analytics.use")
@require_POST
def schedule_change(request: HttpRequest, pk: int) -> HttpResponse:
    schedule = get_object_or_404(ReportSchedule.objects.select_related("query", "dashboard"), pk=pk)
    action = request.POST.get("action", "")
    if action == "delete":
        reports.report_schedule_delete(actor=request.user, schedule=schedule)
        messages.success(request, "Schedule deleted.")
    elif action in {"pause", "resume"}:
        reports.report_schedule_pause(actor=request.user, schedule=schedule, paused=action == "pause")
        messages.success(request, "Paused." if action == "pause" else "Resumed.")
    return _back(schedule)


@permission_required("analytics.use")
def schedule_log(request: HttpRequest, pk: int) -> HttpResponse:
    schedule = get_object_or_404(ReportSchedule.objects.select_related("query", "dashboard"), pk=pk)
    deliveries = schedule.deliveries.all()[:200]
    return render(request, "analytics/schedule_log.html", {"schedule": schedule, "deliveries": deliveries})
