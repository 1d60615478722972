"""The query builder (no SQL: pick a collection, filters, groupings, aggregates, a chart) and the
list of saved queries. The builder is a GET form, so the address of a result is the query itself."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_http_methods, require_POST

from analytics import exports, forms, selectors, services
from analytics.models import CHARTS
from analytics.queries import query_for, query_options, query_run
from analytics.views.running import WEEKDAYS, query_show, saved_query_or_404
from core.errors import ServiceError
from rbac.permissions import has_permission, permission_required
from records.selectors import collection_list
from tenants.runtime import workspace_current


def _builder_context(request: HttpRequest, params: QueryDict, saved=None) -> dict:
    collections = list(collection_list(livemode=True))
    slug = params.get("collection") or (collections[0].slug if collections else "")
    collection = next((c for c in collections if c.slug == slug), None)
    chart = params.get("chart") or (saved.chart if saved else "bar")
    if chart not in CHARTS:
        chart = "bar"
    shown = None
    if collection is not None and (params.get("run") or saved is not None):
        raw = forms.spec_from_params(params)
        raw["collection"] = collection.slug
        shown = query_show(raw, chart=chart)
    options = query_options(collection) if collection else {}
    exports_qs = params.copy()
    exports_qs["run"] = "1"
    exports_qs.pop("csrfmiddlewaretoken", None)
    exports_qs.pop("name", None)
    fields = [f["key"] for f in collection.fields] if collection else []
    return {
        "collections": collections,
        "collection": collection,
        "params": params,
        "chart": chart,
        "shown": shown,
        "saved": saved,
        "options": options,
        "fields": fields,
        "agg_fields": sorted({*options.get("aggregates", {})}),
        "rows": forms.builder_rows(params),
        "groups": [{"n": n, "field": params.get(f"g{n}", ""), "bucket": params.get(f"g{n}_bucket", "")} for n in "12"],
        "group_choices": list(dict.fromkeys([*options.get("group_fields", []), *options.get("date_fields", [])])),
        "filter_ops": forms.FILTER_OPS,
        "aggregate_choices": forms.AGGREGATE_CHOICES,
        "chart_choices": forms.CHART_CHOICES,
        "bucket_choices": forms.BUCKET_CHOICES,
        "compare_choices": forms.COMPARE_CHOICES,
        "dashboards": list(selectors.dashboard_list(viewer=request.user)) if saved else [],
        "schedules": list(saved.schedules.all()) if saved else [],
        "weekdays": WEEKDAYS,
        "can_build": has_permission(request.user, "analytics.use"),
        "export_query": exports_qs.urlencode(),
        "export_formats": list(exports.FORMATS),
        "records_filters": urlencode(shown.result.spec.filters) if shown and shown.result else "",
    }


@permission_required("analytics.read")
@require_http_methods(["GET", "POST"])
def query_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _save(request, None)
    context = _builder_context(request, request.GET)
    status = 400 if context["shown"] and context["shown"].error else 200
    return render(request, "analytics/query.html", context, status=status)


@permission_required("analytics.read")
@require_http_methods(["GET", "POST"])
def query_detail(request: HttpRequest, pk: int) -> HttpResponse:
    saved = saved_query_or_404(pk)
    if request.method == "POST":
        return _save(request, saved)
    params = request.GET if request.GET.get("run") else forms.params_from_spec(saved.spec, chart=saved.chart)
    context = _builder_context(request, params, saved)
    return render(request, "analytics/query.html", context)


def _save(request: HttpRequest, saved) -> HttpResponse:
    """Save the builder's query (the form posts the builder's parameters and a name)."""
    raw = forms.spec_from_params(request.POST)
    name, chart = request.POST.get("name", ""), request.POST.get("chart", "bar")
    try:
        if saved is None:
            saved = services.saved_query_create(actor=request.user, name=name, spec=raw, chart=chart)
        else:
            saved = services.saved_query_update(actor=request.user, query=saved, name=name, spec=raw, chart=chart)
    except ServiceError as exc:
        params = request.POST.copy()
        params["run"] = "1"
        context = _builder_context(request, params)
        context["save_error"] = exc
        return render(request, "analytics/query.html", context, status=400)
    messages.success(request, f"Saved “{saved.name}”.")
    return redirect("analytics:query", pk=saved.pk)


@permission_required("analytics.read")
def query_list(request: HttpRequest) -> HttpResponse:
    queries = selectors.saved_query_list().select_related("owner")
    return render(request, "analytics/queries.html", {"queries": queries})


@permission_required("analytics.use")
@require_POST
def query_delete(request: HttpRequest, pk: int) -> HttpResponse:
    saved = saved_query_or_404(pk)
    services.saved_query_delete(actor=request.user, query=saved)
    messages.success(request, f"Deleted “{saved.name}”.")
    return redirect(reverse("analytics:queries"))


def _download(chunks, fmt: str, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type=exports.FORMATS[fmt])
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response


@permission_required("analytics.use")
def query_export(request: HttpRequest, fmt: str, pk: int | None = None) -> HttpResponse:
    """The builder's (or a saved query's) result as a file."""
    if fmt not in exports.FORMATS:
        raise Http404("No such export format.")
    saved = saved_query_or_404(pk) if pk is not None else None
    raw = saved.spec if saved is not None and not request.GET.get("run") else forms.spec_from_params(request.GET)
    try:
        collection, spec = query_for(raw=raw, livemode=True)
        result = query_run(spec=spec, livemode=True, time_zone=workspace_current().timezone)
        chunks = exports.result_export(actor=request.user, result=result, fmt=fmt, name=saved.name if saved else "")
    except ServiceError as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
    return _download(chunks, fmt, slugify(saved.name) if saved else f"{collection.slug}-query")


@permission_required("analytics.use")
def records_export(request: HttpRequest, slug: str, fmt: str) -> HttpResponse:
    """Every record of a collection that matches the filters in the address (`field__op=value`)."""
    if fmt not in exports.FORMATS:
        raise Http404("No such export format.")
    collection = collection_list(livemode=True).filter(slug=slug).first()
    if collection is None:
        raise Http404("No such collection.")
    try:
        chunks = exports.records_export(
            actor=request.user, collection=collection, filters=dict(request.GET.items()), fmt=fmt
        )
    except ServiceError as exc:
        return HttpResponse(exc.message, status=400, content_type="text/plain; charset=utf-8")
    return _download(chunks, fmt, f"{collection.slug}-records")
