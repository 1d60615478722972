"""Writes of analytics: saved queries, dashboards and their tiles. Analytics only reads records
(through analytics.queries); what it writes is its own rows, each checked against the role matrix."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from analytics.errors import AnalyticsError
from analytics.models import CHARTS, Dashboard, DashboardTile, SavedQuery
from analytics.queries import query_for
from core.actors import Actor, Principal
from rbac.permissions import permission_check

GRID_COLUMNS = 4


def _name_clean(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise AnalyticsError("Give it a name.", param="name")
    if len(name) > 120 or "\x00" in name:
        raise AnalyticsError("A name is at most 120 characters.", param="name")
    return name


def _chart_clean(chart: str, *, blank: bool = False) -> str:
    if blank and not chart:
        return ""
    if chart not in CHARTS:
        raise AnalyticsError(f"Charts are {', '.join(CHARTS)}.", param="chart")
    return chart


def _principal(actor: Actor | Principal):
    return getattr(actor, "principal", actor)


def saved_query_create(
    *, actor: Actor | Principal, name: str, spec: dict[str, Any], chart: str = "bar", description: str = ""
) -> SavedQuery:
    permission_check(actor, "analytics.use")
    _collection, checked = query_for(raw=spec, livemode=True)
    owner = _principal(actor)
    return SavedQuery.objects.create(
        name=_name_clean(name),
        description=(description or "")[:2000],
        spec=checked.as_dict(),
        chart=_chart_clean(chart),
        owner=owner if getattr(owner, "pk", None) and hasattr(owner, "role") else None,
    )


def saved_query_update(
    *, actor: Actor | Principal, query: SavedQuery, name: str, spec: dict[str, Any], chart: str
) -> SavedQuery:
    permission_check(actor, "analytics.use")
    _collection, checked = query_for(raw=spec, livemode=True)
    query.name, query.spec, query.chart = _name_clean(name), checked.as_dict(), _chart_clean(chart)
    query.save()
    return query


def saved_query_delete(*, actor: Actor | Principal, query: SavedQuery) -> None:
    permission_check(actor, "analytics.use")
    query.delete()


def dashboard_create(*, actor: Actor | Principal, name: str, shared: bool = False) -> Dashboard:
    permission_check(actor, "analytics.use")
    owner = _principal(actor)
    with transaction.atomic():
        first = not Dashboard.objects.exists()
        return Dashboard.objects.create(
            name=_name_clean(name),
            shared=shared or first,
            is_home=first,  # the workspace's first dashboard is its home until another is chosen
            owner=owner if hasattr(owner, "role") else None,
        )


def dashboard_update(
    *, actor: Actor | Principal, dashboard: Dashboard, name: str, shared: bool, refresh_seconds: int = 0
) -> Dashboard:
    permission_check(actor, "analytics.use")
    if refresh_seconds not in {0, 30, 60, 300, 900}:
        raise AnalyticsError("Refresh every 30 s, 1, 5 or 15 minutes, or not at all.", param="refresh_seconds")
    dashboard.name, dashboard.shared, dashboard.refresh_seconds = _name_clean(name), shared, refresh_seconds
    dashboard.save()
    return dashboard


def dashboard_home_set(*, actor: Actor | Principal, dashboard: Dashboard) -> Dashboard:
    permission_check(actor, "analytics.use")
    with transaction.atomic():
        Dashboard.objects.filter(is_home=True).exclude(pk=dashboard.pk).update(is_home=False)
        dashboard.is_home, dashboard.shared = True, True
        dashboard.save(update_fields=["is_home", "shared", "updated_at"])
    return dashboard


def dashboard_delete(*, actor: Actor | Principal, dashboard: Dashboard) -> None:
    permission_check(actor, "analytics.use")
    dashboard.delete()


def tile_add(*, actor: Actor | Principal, dashboard: Dashboard, query: SavedQuery, width: int = 2) -> DashboardTile:
    permission_check(actor, "analytics.use")
    if dashboard.tiles.count() >= 24:
        raise AnalyticsError("A dashboard holds at most 24 tiles.", param="query")
    last = dashboard.tiles.order_by("-position").values_list("position", flat=True).first()
    return DashboardTile.objects.create(
        dashboard=dashboard, query=query, position=(last or 0) + 1, width=_width_clean(width)
    )


def _width_clean(width: int) -> int:
    if not isinstance(width, int) or not 1 <= width <= GRID_COLUMNS:
        raise AnalyticsError(f"A tile spans 1 to {GRID_COLUMNS} columns.", param="width")
    return width


def tile_update(*, actor: Actor | Principal, tile: DashboardTile, width: int, chart: str = "") -> DashboardTile:
    permission_check(actor, "analytics.use")
    tile.width, tile.chart = _width_clean(width), _chart_clean(chart, blank=True)
    tile.save(update_fields=["width", "chart"])
    return tile


def tile_move(*, actor: Actor | Principal, tile: DashboardTile, offset: int) -> None:
    """Move a tile earlier (-1) or later (+1) in its dashboard's order."""
    permission_check(actor, "analytics.use")
    with transaction.atomic():
        tiles = list(tile.dashboard.tiles.select_for_update().order_by("position", "id"))
        i = next(n for n, t in enumerate(tiles) if t.pk == tile.pk)
        j = max(0, min(len(tiles) - 1, i + offset))
        tiles.insert(j, tiles.pop(i))
        for n, t in enumerate(tiles, start=1):
            if t.position != n:
                t.position = n
                t.save(update_fields=["position"])


def tile_remove(*, actor: Actor | Principal, tile: DashboardTile) -> None:
    permission_check(actor, "analytics.use")
    tile.delete()
