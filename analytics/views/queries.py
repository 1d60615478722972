"""The query builder (no SQL: pick a collection, filters, groupings, aggregates, a chart) and the
list of saved queries. The builder is a GET form, so the address of a result is the query itself."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from analytics import forms, selectors, services
from analytics.models import CHARTS
from analytics.queries import query_options
from analytics.views.running import query_show, saved_query_or_404
from core.errors import ServiceError
from rbac.permissions import has_permission, permission_required
from records.selectors import collection_list


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
        "can_build": has_permission(request.user, "analytics.use"),
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
