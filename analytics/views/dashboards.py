"""Dashboards: a grid of saved-query tiles under a date-range and filter bar that applies to every
tile; tiles reordered and resized by their builders; auto-refresh and a live mode that re-draws the
tiles when the workspace's records change (it polls the change sequence, a one-row read)."""

from __future__ import annotations

from datetime import date

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from analytics import selectors, services
from analytics.builtin import builtin_dashboards
from analytics.forms import FILTER_OPS
from analytics.models import DashboardTile
from analytics.views.running import WEEKDAYS, dashboard_or_404, query_show, saved_query_or_404
from core.errors import ServiceError
from rbac.permissions import has_permission, permission_required
from records.models import ChangeCounter, Collection


def _bar(request: HttpRequest) -> dict:
    """The dashboard's bar: a date range and one filter, both optional."""
    bar = {k: request.GET.get(k, "").strip() for k in ("date_from", "date_to", "f_field", "f_op", "f_value")}
    for name in ("date_from", "date_to"):
        try:
            if bar[name]:
                date.fromisoformat(bar[name])
        except ValueError:
            bar[name] = ""
            bar["error"] = "Dates are YYYY-MM-DD."
    if bar["f_op"] not in FILTER_OPS:
        bar["f_op"] = "eq"
    return bar


def _with_bar(spec: dict, bar: dict, collection: Collection | None) -> dict:
    """A tile's query under the bar: the range applies to its date (a bucketed grouping's date, else
    the query's own date field, else creation time); the filter to tiles whose collection has that field."""
    raw = dict(spec)
    if bar["date_from"] or bar["date_to"]:
        if not raw.get("date_field"):
            bucketed = [g["field"] for g in raw.get("group_by") or [] if g.get("bucket")]
            raw["date_field"] = bucketed[0] if bucketed else "created_at"
        raw["date_from"], raw["date_to"] = bar["date_from"] or None, bar["date_to"] or None
        if not (raw["date_from"] and raw["date_to"]):
            raw.pop("compare", None)
    if bar["f_field"] and collection is not None and collection.field(bar["f_field"]):
        name = bar["f_field"] if bar["f_op"] == "eq" else f"{bar['f_field']}__{bar['f_op']}"
        raw["filters"] = {**(raw.get("filters") or {}), name: bar["f_value"] or "true"}
    return raw


def _tile_shown(tile: DashboardTile, bar: dict, collections: dict):
    """`collections`: the ones read for this page so far, by slug (tiles mostly share one)."""
    slug = tile.query.spec.get("collection")
    if slug not in collections:
        collections[slug] = Collection.objects.filter(livemode=True, slug=slug, deleted_at=None).first()
    collection = collections[slug]
    tile.prefix = f"t{tile.pk}"
    tile.shown = query_show(_with_bar(tile.query.spec, bar, collection), chart=tile.chart_kind)
    return tile


def _bar_fields() -> list[str]:
    keys: set[str] = set()
    for c in Collection.objects.filter(livemode=True, deleted_at=None).only("fields"):
        keys |= {f["key"] for f in c.fields if f["type"] not in {"json", "long_text"}}
    return sorted(keys)


@never_cache
@permission_required("analytics.view")
def analytics_home(request: HttpRequest) -> HttpResponse:
    """The workspace's home dashboard, or the list of dashboards when there is none yet."""
    home = selectors.dashboard_home(viewer=request.user)
    if home is not None:
        return dashboard_detail(request, home.pk)
    return dashboard_list(request)


@never_cache
@permission_required("analytics.view")
def dashboard_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        if not has_permission(request.user, "analytics.use"):
            return HttpResponse(status=403)
        try:
            dashboard = services.dashboard_create(
                actor=request.user, name=request.POST.get("name", ""), shared=request.POST.get("shared") == "on"
            )
        except ServiceError as exc:
            messages.error(request, exc.message)
        else:
            return redirect("analytics:dashboard", pk=dashboard.pk)
    dashboards = selectors.dashboard_list(viewer=request.user)
    return render(
        request,
        "analytics/dashboards.html",
        {
            "dashboards": dashboards,
            "can_build": has_permission(request.user, "analytics.use"),
            "builtins": builtin_dashboards(),
        },
    )


@never_cache
@permission_required("analytics.view")
def dashboard_detail(request: HttpRequest, pk: int) -> HttpResponse:
    dashboard = dashboard_or_404(request, pk)
    bar = _bar(request)
    collections: dict = {}
    tiles = [_tile_shown(t, bar, collections) for t in dashboard.tiles.select_related("query")]
    context = {
        "dashboard": dashboard,
        "tiles": tiles,
        "bar": bar,
        "bar_fields": _bar_fields(),
        "filter_ops": FILTER_OPS,
        "can_build": has_permission(request.user, "analytics.use"),
        "live": request.GET.get("live") == "1",
        "seq": ChangeCounter.objects.filter(pk=1).values_list("value", flat=True).first() or 0,
        "bar_query": request.GET.urlencode(),
        "refresh_choices": [(0, "Off"), (30, "30 s"), (60, "1 min"), (300, "5 min"), (900, "15 min")],
        "schedules": list(dashboard.schedules.all()),
        "weekdays": WEEKDAYS,
    }
    return render(request, "analytics/dashboard.html", context)


@never_cache
@permission_required("analytics.view")
def dashboard_tiles(request: HttpRequest, pk: int) -> HttpResponse:
    """The grid alone, re-drawn by auto-refresh and live mode."""
    dashboard = dashboard_or_404(request, pk)
    bar = _bar(request)
    collections: dict = {}
    tiles = [_tile_shown(t, bar, collections) for t in dashboard.tiles.select_related("query")]
    return render(
        request,
        "analytics/_tiles.html",
        {"dashboard": dashboard, "tiles": tiles, "can_build": has_permission(request.user, "analytics.use")},
    )


@never_cache
@permission_required("analytics.view")
def changes_head(request: HttpRequest) -> JsonResponse:
    """The workspace's latest change sequence: live dashboards re-draw when it moves."""
    counter = ChangeCounter.objects.filter(pk=1).values_list("value", flat=True).first()
    return JsonResponse({"seq": counter or 0})


@permission_required("analytics.use")
@require_POST
def dashboard_settings(request: HttpRequest, pk: int) -> HttpResponse:
    dashboard = dashboard_or_404(request, pk)
    try:
        if request.POST.get("home") == "1":
            services.dashboard_home_set(actor=request.user, dashboard=dashboard)
        elif request.POST.get("delete") == "1":
            services.dashboard_delete(actor=request.user, dashboard=dashboard)
            messages.success(request, f"Deleted “{dashboard.name}”.")
            return redirect("analytics:dashboards")
        else:
            refresh = request.POST.get("refresh_seconds", "0")
            services.dashboard_update(
                actor=request.user,
                dashboard=dashboard,
                name=request.POST.get("name", dashboard.name),
                shared=request.POST.get("shared") == "on",
                refresh_seconds=int(refresh) if refresh.isdigit() else -1,
            )
    except ServiceError as exc:
        messages.error(request, exc.message)
    return redirect("analytics:dashboard", pk=dashboard.pk)


@permission_required("analytics.use")
@require_POST
def tile_add(request: HttpRequest) -> HttpResponse:
    """Pin a saved query to a dashboard (from the query's page)."""
    query_id, dashboard_id = request.POST.get("query", ""), request.POST.get("dashboard", "")
    if not (query_id.isdigit() and dashboard_id.isdigit()):
        messages.error(request, "Choose a dashboard to pin to.")
        return redirect(request.META.get("HTTP_REFERER") or "analytics:dashboards")
    saved = saved_query_or_404(int(query_id))
    dashboard = dashboard_or_404(request, int(dashboard_id))
    try:
        services.tile_add(actor=request.user, dashboard=dashboard, query=saved)
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("analytics:query", pk=saved.pk)
    messages.success(request, f"Pinned “{saved.name}” to {dashboard.name}.")
    return redirect("analytics:dashboard", pk=dashboard.pk)


@permission_required("analytics.use")
@require_POST
def tile_change(request: HttpRequest, pk: int) -> HttpResponse:
    """Move (earlier/later), resize (narrower/wider) or remove a tile."""
    tile = get_object_or_404(DashboardTile.objects.select_related("dashboard", "query"), pk=pk)
    action = request.POST.get("action", "")
    try:
        if action in {"earlier", "later"}:
            services.tile_move(actor=request.user, tile=tile, offset=-1 if action == "earlier" else 1)
        elif action in {"narrower", "wider"}:
            width = tile.width + (1 if action == "wider" else -1)
            services.tile_update(actor=request.user, tile=tile, width=max(1, min(4, width)), chart=tile.chart)
        elif action == "remove":
            services.tile_remove(actor=request.user, tile=tile)
    except ServiceError as exc:
        messages.error(request, exc.message)
    return redirect("analytics:dashboard", pk=tile.dashboard_id)
