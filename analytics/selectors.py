"""Reads of saved queries and dashboards, with who may see which."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from analytics.models import Dashboard, DashboardTile, ReportSchedule, SavedQuery
from core.errors import NotFound
from rbac.permissions import has_permission


def report_schedules_count() -> int:
    """Scheduled reports, paused or not: what the plan's `scheduled_reports` limit counts."""
    return ReportSchedule.objects.count()


def saved_query_list() -> QuerySet[SavedQuery]:
    return SavedQuery.objects.all()


def saved_query_get(*, query_id: int) -> SavedQuery:
    query = SavedQuery.objects.filter(pk=query_id).first() if 0 < query_id < 2**62 else None
    if query is None:
        raise NotFound(f"No saved query {query_id}.", param="query_id")
    return query


def dashboard_list(*, viewer) -> QuerySet[Dashboard]:
    """Builders see every dashboard; Managers and Viewers the ones shared with the workspace."""
    qs = Dashboard.objects.all()
    return qs if has_permission(viewer, "analytics.use") else qs.filter(shared=True)


def dashboard_get(*, viewer, dashboard_id: int) -> Dashboard:
    tiles = Prefetch("tiles", queryset=DashboardTile.objects.select_related("query").order_by("position", "id"))
    dashboard = dashboard_list(viewer=viewer).prefetch_related(tiles).filter(pk=dashboard_id).first()
    if dashboard is None:
        raise NotFound("No such dashboard (or it is not shared with you).", param="dashboard")
    return dashboard


def dashboard_home(*, viewer) -> Dashboard | None:
    return dashboard_list(viewer=viewer).filter(is_home=True).first() or dashboard_list(viewer=viewer).first()
