"""Console pages for partners' access (Admin only): API keys, their usage, and a first API call."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from billing.entitlements import api_rate_limits, api_rate_limits_by_plan, plan_label
from partners.charts import usage_chart
from partners.forms import ApiKeyCreateForm, ApiKeyRotateForm
from partners.models import SCOPES, ApiKey
from partners.selectors import USAGE_DAYS, api_key_list, api_usage_by_day, api_usage_by_key
from partners.services import ApiKeyError, api_key_create, api_key_revoke, api_key_rotate
from partners.usage import usage_flush
from rbac.permissions import permission_required
from tenants.runtime import workspace_current


def _form_error(form, exc: ApiKeyError) -> None:
    field = {"expires_at": "expires_on"}.get(exc.field, exc.field)
    form.add_error(field if field in form.fields else None, exc.message)


def _scope_items(key: ApiKey) -> list[tuple[str, str]]:
    return [(scope, SCOPES.get(scope, scope)) for scope in key.scopes]


def _issued(request: HttpRequest, key: ApiKey, raw: str, *, rotated_from: ApiKey | None = None) -> HttpResponse:
    """The one page that ever shows the raw key; nothing may cache it."""
    key.scope_items = _scope_items(key)
    response = render(
        request, "partners/api_key_issued.html", {"key": key, "raw_key": raw, "rotated_from": rotated_from}, status=201
    )
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@permission_required("api_keys.manage")
@require_http_methods(["GET", "POST"])
def api_keys(request: HttpRequest) -> HttpResponse:
    form = ApiKeyCreateForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            key, raw = api_key_create(
                actor=request.user,
                name=form.cleaned_data["name"],
                mode=form.cleaned_data["mode"],
                scopes=form.cleaned_data["scopes"],
                expires_at=form.expires_at(),
            )
        except ApiKeyError as exc:
            _form_error(form, exc)
        else:
            return _issued(request, key, raw)
    usage_flush()
    keys = list(api_key_list())
    usage = api_usage_by_key()
    for key in keys:
        key.usage_calls, key.usage_errors = usage.get(key.pk, (0, 0))
        key.scope_items = _scope_items(key)
    context = {
        "keys": keys,
        "form": form,
        "chart": usage_chart(api_usage_by_day()),
        "days": USAGE_DAYS,
        "limits": api_rate_limits(workspace_current()),
        "plan": plan_label(workspace_current()),
    }
    return render(request, "partners/api_keys.html", context, status=400 if form.errors else 200)


@never_cache
@permission_required("api_keys.manage")
def api_key_detail(request: HttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(api_key_list(), pk=pk)
    usage_flush()
    key.scope_items = _scope_items(key)
    context = {"key": key, "chart": usage_chart(api_usage_by_day(key=key)), "days": USAGE_DAYS}
    return render(request, "partners/api_key_detail.html", context)


@permission_required("api_keys.manage")
@require_http_methods(["GET", "POST"])
def api_key_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=pk)
    if request.method == "POST":
        api_key_revoke(actor=request.user, key=key)
        messages.success(request, f"“{key.name}” ({key.prefix}) is revoked: requests with it now get 401.")
        return redirect("partners:api_keys")
    return render(request, "partners/api_key_revoke.html", {"key": key})


@permission_required("api_keys.manage")
@require_http_methods(["GET", "POST"])
def api_key_rotate_view(request: HttpRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=pk)
    form = ApiKeyRotateForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            new, raw = api_key_rotate(actor=request.user, key=key, overlap=form.overlap_delta())
        except ApiKeyError as exc:
            _form_error(form, exc)
        else:
            return _issued(request, new, raw, rotated_from=key)
    status = 400 if form.errors else 200
    return render(request, "partners/api_key_rotate.html", {"key": key, "form": form}, status=status)


@permission_required("api_keys.manage")
def first_call(request: HttpRequest) -> HttpResponse:
    base_url = request.build_absolute_uri("/api/v1/")
    context = {
        "base_url": base_url,
        "endpoint": base_url + "collections",
        "placeholder_key": "tsk_test_your_key_here",
        "plans": api_rate_limits_by_plan(),
    }
    return render(request, "partners/first_call.html", context)
