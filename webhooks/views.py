"""Console pages of webhooks (Admins: `webhooks.manage`): endpoints with their health, signing
secrets, the delivery log, resend and recover, test events, payload retention, the partner docs page
and the inspector. Writes go through webhooks.services (and webhooks.inspector for the inspector's
bins); the inspector's receiver URL (`inspector_receive`) is the one page here anyone may call."""

from __future__ import annotations

import json
import re

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from core.forms import form_error_add
from rbac.permissions import permission_required
from webhooks import catalogue, maintenance, selectors, services
from webhooks.forms import (
    DeliveryFilterForm,
    EndpointForm,
    InspectorBinForm,
    RecoverForm,
    RetentionForm,
    SecretRotateForm,
)
from webhooks.inspector import (
    BODY_CAP,
    InspectorError,
    inspector_bin_clear,
    inspector_bin_create,
    inspector_bin_delete,
    inspector_rate_allows,
    inspector_request_record,
)
from webhooks.models import Delivery, Endpoint, InspectorBin

PERMISSION = "webhooks.manage"
ENDPOINT_ID_RE = re.compile(r"ep_[0-9a-z]{26}")
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
LOG_PAGE = 50


def _endpoint_or_404(endpoint_id: str) -> Endpoint:
    endpoint = selectors.endpoint_get(endpoint_id=endpoint_id) if ENDPOINT_ID_RE.fullmatch(endpoint_id) else None
    if endpoint is None:
        raise Http404("No such endpoint.")
    return endpoint


def _delivery_or_404(delivery_id: int) -> Delivery:
    delivery = selectors.delivery_get(delivery_id=delivery_id)
    if delivery is None:
        raise Http404("No such delivery.")
    return delivery


def _inspector_url(request: HttpRequest, bin: InspectorBin) -> str:
    return request.build_absolute_uri(reverse("webhooks:inspector_receive", args=[bin.token]))


# --- endpoints ---------------------------------------------------------------------------------------


@never_cache
@permission_required(PERMISSION)
def endpoints(request: HttpRequest) -> HttpResponse:
    rows = list(selectors.endpoint_list())
    health = selectors.endpoint_health(rows)
    for endpoint in rows:
        endpoint.health = health[endpoint.pk]
    disabled = [e for e in rows if not e.enabled and e.disabled_at]
    return render(request, "webhooks/endpoints.html", {"endpoints": rows, "disabled": disabled})


@never_cache
@permission_required(PERMISSION)
@require_http_methods(["GET", "POST"])
def endpoint_new(request: HttpRequest) -> HttpResponse:
    form = EndpointForm(
        request.POST if request.method == "POST" else None, initial={"url": request.GET.get("url", "")[:2000]}
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            endpoint, _secret = services.endpoint_create(
                actor=request.user,
                url=data["url"],
                description=data["description"],
                event_types=data["event_types"],
                rate_limit_per_second=data["rate_limit_per_second"],
                headers=data["headers"],
                livemode=data["mode"] == "live",
            )
        except services.WebhookError as exc:
            form_error_add(form, exc)
        else:
            messages.success(request, "Endpoint created. Reveal its signing secret to verify deliveries.")
            return redirect("webhooks:endpoint", endpoint.pk)
    status = 400 if form.errors else 200
    return render(request, "webhooks/endpoint_form.html", {"form": form, "endpoint": None}, status=status)


@never_cache
@permission_required(PERMISSION)
def endpoint_detail(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    endpoint = _endpoint_or_404(endpoint_id)
    endpoint.health = selectors.endpoint_health([endpoint])[endpoint.pk]
    context = {
        "endpoint": endpoint,
        "deliveries": list(selectors.delivery_list(endpoint=endpoint)[:20]),
        "secrets": list(endpoint.secrets.order_by("-created_at")),
        "rotate_form": SecretRotateForm(),
        "recover_form": RecoverForm(),
    }
    return render(request, "webhooks/endpoint_detail.html", context)


@never_cache
@permission_required(PERMISSION)
@require_http_methods(["GET", "POST"])
def endpoint_edit(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    endpoint = _endpoint_or_404(endpoint_id)
    form = EndpointForm(
        request.POST if request.method == "POST" else None, initial=EndpointForm.initial_for(endpoint), editing=True
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.endpoint_update(
                actor=request.user,
                endpoint=endpoint,
                url=data["url"],
                description=data["description"],
                event_types=data["event_types"],
                enabled=data["enabled"],
                rate_limit_per_second=data["rate_limit_per_second"],
                headers=data["headers"],
            )
        except services.WebhookError as exc:
            form_error_add(form, exc)
        else:
            messages.success(request, "Endpoint saved.")
            return redirect("webhooks:endpoint", endpoint.pk)
    status = 400 if form.errors else 200
    return render(request, "webhooks/endpoint_form.html", {"form": form, "endpoint": endpoint}, status=status)


@permission_required(PERMISSION)
@require_http_methods(["GET", "POST"])
def endpoint_delete(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    endpoint = _endpoint_or_404(endpoint_id)
    if request.method == "POST":
        services.endpoint_delete(actor=request.user, endpoint=endpoint)
        messages.success(request, f"Endpoint {endpoint.url} deleted: it receives nothing more.")
        return redirect("webhooks:endpoints")
    return render(request, "webhooks/endpoint_delete.html", {"endpoint": endpoint})


@never_cache
@permission_required(PERMISSION)
@require_POST
def endpoint_secret_reveal(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    """The signing secrets in clear (POST, so a prefetch or a link never shows them; never cached)."""
    endpoint = _endpoint_or_404(endpoint_id)
    try:
        secret = services.endpoint_secret_reveal(actor=request.user, endpoint=endpoint)
    except services.WebhookError as exc:
        messages.error(request, exc.message)
        return redirect("webhooks:endpoint", endpoint.pk)
    overlap = [s for s in endpoint.secrets.all() if s.expires_at and s.is_valid]
    context = {"endpoint": endpoint, "secret": secret, "overlap": overlap}
    response = render(request, "webhooks/endpoint_secret.html", context)
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@permission_required(PERMISSION)
@require_http_methods(["GET", "POST"])
def endpoint_secret_rotate(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    endpoint = _endpoint_or_404(endpoint_id)
    form = SecretRotateForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            services.endpoint_secret_rotate(actor=request.user, endpoint=endpoint, overlap=form.overlap_delta())
        except services.WebhookError as exc:
            form_error_add(form, exc)
        else:
            messages.success(request, "Signing secret rotated. Reveal it to copy the new one.")
            return redirect("webhooks:endpoint", endpoint.pk)
    status = 400 if form.errors else 200
    return render(request, "webhooks/endpoint_rotate.html", {"endpoint": endpoint, "form": form}, status=status)


@permission_required(PERMISSION)
@require_POST
def endpoint_test(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    endpoint = _endpoint_or_404(endpoint_id)
    try:
        maintenance.test_event_send(actor=request.user, endpoint=endpoint)
    except services.WebhookError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Test event test.ping sent; it appears in the log below.")
    return redirect("webhooks:endpoint", endpoint.pk)


@never_cache
@permission_required(PERMISSION)
@require_http_methods(["GET", "POST"])
def endpoint_recover(request: HttpRequest, endpoint_id: str) -> HttpResponse:
    """Send again every failed delivery of a time window (e.g. after the receiver was down)."""
    endpoint = _endpoint_or_404(endpoint_id)
    form = RecoverForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        since, until = form.cleaned_data["since"], form.cleaned_data["until"] or timezone.now()
        try:
            count = maintenance.deliveries_recover(actor=request.user, endpoint=endpoint, since=since, until=until)
        except services.WebhookError as exc:
            form_error_add(form, exc)
        else:
            messages.success(request, f"{count} failed deliver{'y' if count == 1 else 'ies'} queued to be sent again.")
            return redirect("webhooks:endpoint", endpoint.pk)
    status = 400 if form.errors else 200
    return render(request, "webhooks/endpoint_recover.html", {"endpoint": endpoint, "form": form}, status=status)


# --- the delivery log ----------------------------------------------------------------------------------


@never_cache
@permission_required(PERMISSION)
def deliveries(request: HttpRequest) -> HttpResponse:
    endpoints_all = list(selectors.endpoint_list())
    form = DeliveryFilterForm(request.GET or None, endpoints=endpoints_all)
    filters = form.cleaned_data if form.is_valid() else {}
    endpoint = next((e for e in endpoints_all if e.pk == filters.get("endpoint")), None)
    qs = selectors.delivery_list(
        status=filters.get("status") or None, event_type=filters.get("event_type") or None, endpoint=endpoint
    )
    page = Paginator(qs, LOG_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page": page, "query": query.urlencode()}
    return render(request, "webhooks/deliveries.html", context, status=400 if form.errors else 200)


@never_cache
@permission_required(PERMISSION)
def delivery_detail(request: HttpRequest, delivery_id: int) -> HttpResponse:
    delivery = _delivery_or_404(delivery_id)
    context = {"delivery": delivery, "attempts": selectors.delivery_attempts(delivery)}
    return render(request, "webhooks/delivery_detail.html", context)


@permission_required(PERMISSION)
@require_POST
def delivery_resend(request: HttpRequest, delivery_id: int) -> HttpResponse:
    delivery = _delivery_or_404(delivery_id)
    try:
        maintenance.delivery_resend(actor=request.user, delivery=delivery)
    except services.WebhookError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Delivery queued to be sent again.")
    return redirect("webhooks:delivery", delivery.pk)


# --- settings and docs ------------------------------------------------------------------------------------


@never_cache
@permission_required(PERMISSION)
@require_http_methods(["GET", "POST"])
def webhook_settings(request: HttpRequest) -> HttpResponse:
    current = selectors.webhook_settings_get()
    form = RetentionForm(
        request.POST if request.method == "POST" else None, initial={"retention_days": current.retention_days}
    )
    if request.method == "POST" and form.is_valid():
        try:
            maintenance.webhook_settings_update(actor=request.user, retention_days=form.cleaned_data["retention_days"])
        except services.WebhookError as exc:
            form_error_add(form, exc)
        else:
            messages.success(request, f"Payloads are now kept for {form.cleaned_data['retention_days']} days.")
            return redirect("webhooks:settings")
    status = 400 if form.errors else 200
    return render(request, "webhooks/settings.html", {"form": form, "current": current}, status=status)


def _example_envelope(event) -> str:
    return json.dumps(catalogue.event_example(event), indent=2, ensure_ascii=False)


@permission_required(PERMISSION)
def docs(request: HttpRequest) -> HttpResponse:
    context = {
        "events": [(e, _example_envelope(e)) for e in catalogue.CATALOGUE.values()],
        "envelope_version": catalogue.ENVELOPE_VERSION,
        "api_base": request.build_absolute_uri("/api/v1/"),
    }
    return render(request, "webhooks/docs.html", context)


# --- the inspector --------------------------------------------------------------------------------------


@never_cache
@permission_required(PERMISSION)
@require_http_methods(["GET", "POST"])
def inspector(request: HttpRequest) -> HttpResponse:
    form = InspectorBinForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            bin = inspector_bin_create(actor=request.user, name=form.cleaned_data["name"])
        except InspectorError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Inspector URL created: point a test endpoint at it.")
            return redirect("webhooks:inspector_bin", bin.pk)
    bins = list(selectors.inspector_bin_list())
    for bin in bins:
        bin.url = _inspector_url(request, bin)
    status = 400 if form.errors else 200
    return render(request, "webhooks/inspector.html", {"form": form, "bins": bins}, status=status)


@never_cache
@permission_required(PERMISSION)
def inspector_bin(request: HttpRequest, pk: int) -> HttpResponse:
    bin = selectors.inspector_bin_get(pk=pk)
    if bin is None:
        raise Http404("No such inspector URL.")
    bin.url = _inspector_url(request, bin)
    received = selectors.inspector_requests(bin)
    for row in received:
        row.webhook_id = next((v for k, v in row.headers.items() if k.lower() == "webhook-id"), "")
    context = {"bin": bin, "received": received, "body_cap": BODY_CAP}
    return render(request, "webhooks/inspector_bin.html", context)


@permission_required(PERMISSION)
@require_POST
def inspector_bin_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    bin = selectors.inspector_bin_get(pk=pk)
    if bin is None:
        raise Http404("No such inspector URL.")
    if action == "clear":
        inspector_bin_clear(bin=bin)
        messages.success(request, "Received requests cleared.")
        return redirect("webhooks:inspector_bin", bin.pk)
    inspector_bin_delete(bin=bin)
    messages.success(request, "Inspector URL deleted: requests to it now get 404.")
    return redirect("webhooks:inspector")


@csrf_exempt
def inspector_receive(request: HttpRequest, token: str) -> HttpResponse:
    """The receiver: anyone may send to it (like a partner's server); it records and answers 200.
    Unknown token: 404. Over the rate limit: 429. Any body, any encoding: never a 500."""
    bin = InspectorBin.objects.filter(token=token).first() if TOKEN_RE.fullmatch(token) else None
    if bin is None:
        return JsonResponse({"error": "No such inspector URL in this workspace."}, status=404)
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return JsonResponse({"inspector": bin.name or "Tessera webhook inspector", "send": "POST requests here"})
    if not inspector_rate_allows(bin):
        return JsonResponse(
            {"error": "Too many requests to this inspector URL."}, status=429, headers={"Retry-After": "1"}
        )
    body = request.read(BODY_CAP + 1)
    size = len(body)
    length = request.META.get("CONTENT_LENGTH", "")
    if length.isdigit():
        size = max(size, int(length))
    headers = dict(request.headers.items())
    inspector_request_record(bin=bin, method=request.method, headers=headers, body=body, size=size)
    return JsonResponse({"received": True})
