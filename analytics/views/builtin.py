"""The built-in dashboards of Tessera's own data (analytics.builtin): API usage, webhook deliveries,
sync status, under a date range. For those who build analytics (Admins and Analysts)."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from analytics.builtin import builtin_dashboards, builtin_panels, builtin_range, workspace_zone
from core.errors import NotFound, ServiceError
from rbac.permissions import permission_required


@never_cache
@permission_required("analytics.use")
def builtin_dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    tz = workspace_zone()
    raw_from, raw_to = request.GET.get("date_from", "").strip(), request.GET.get("date_to", "").strip()
    error, status = "", 200
    try:
        date_from, date_to = builtin_range(raw_from, raw_to, tz=tz)
    except ServiceError as exc:
        error, status = exc.message, 400
        date_from, date_to = builtin_range("", "", tz=tz)
    try:
        title, panels = builtin_panels(slug=slug, date_from=date_from, date_to=date_to, tz=tz)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    context = {
        "slug": slug,
        "title": title,
        "panels": panels,
        "date_from": date_from,
        "date_to": date_to,
        "error": error,
        "builtins": builtin_dashboards(),
        "tz": tz.key,
    }
    return render(request, "analytics/builtin.html", context, status=status)
