"""Console pages of devices and pairing, and the HTTP side of /sync/v1/ (the pairing exchange)."""

from __future__ import annotations

import io
import ipaddress
import tarfile
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseNotFound, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.module_loading import import_string
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from api.problems import problem_http_response, service_error_http_response
from core.bounded_json import json_loads_bounded
from core.errors import ServiceError
from core.forms import form_error_add
from core.request_context import client_ip
from rbac.permissions import permission_check, permission_required
from records.selectors import collection_list
from sync.forms import PairingStartForm
from sync.models import Device, PairingCode
from sync.selectors import device_list
from sync.services import device_can_revoke, device_revoke, pairing_exchange, pairing_start
from tenants.runtime import workspace_current

MAX_PAIR_BODY = 4096


def _ws_url(request: HttpRequest) -> str:
    return f"{'wss' if request.is_secure() else 'ws'}://{request.get_host()}/sync/v1/"


@csrf_exempt
@never_cache
def pair(request: HttpRequest) -> HttpResponse:
    """POST /sync/v1/pair {code | pin, name, client_version} → 201 {token, device, websocket_url}."""
    if request.method != "POST":
        response = problem_http_response(request, 405, "method_not_allowed", "Pair with POST.")
        response["Allow"] = "POST"
        return response
    if len(request.body) > MAX_PAIR_BODY:
        return problem_http_response(request, 413, "payload_too_large", "The pairing request is at most 4 KB.")
    try:
        body = json_loads_bounded(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return problem_http_response(request, 400, "invalid_json", "The body is not valid JSON.")
    if not isinstance(body, dict):
        return problem_http_response(
            request, 400, "invalid_request", "Send a JSON object {code | pin, name, client_version}."
        )
    strings = {k: body.get(k) for k in ("code", "pin", "name", "client_version")}
    for key, value in strings.items():
        if value is not None and not isinstance(value, str):
            return problem_http_response(request, 400, "invalid_request", f"`{key}` must be a string.", param=key)
    try:
        device, token = pairing_exchange(
            tenant=workspace_current(),
            code=strings["code"] or None,
            pin=strings["pin"] or None,
            name=strings["name"] or "",
            client_version=strings["client_version"] or "",
            ip=client_ip(request),
        )
    except ServiceError as exc:
        return service_error_http_response(request, exc)
    collections = [c.slug for c in collection_list(livemode=True)]
    body = {
        "token": token,
        "device": {"id": device.pk, "name": device.name, "role": device.role, "user": device.user.email},
        "websocket_url": _ws_url(request),
        "collections": collections,
    }
    response = JsonResponse(body, status=201)
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@permission_required("devices.pair")
@require_http_methods(["GET", "POST"])
def devices(request: HttpRequest) -> HttpResponse:
    form = PairingStartForm(request.POST if request.method == "POST" else None, actor=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            started = pairing_start(actor=request.user, user=form.cleaned_data["user"], role=form.cleaned_data["role"])
        except ServiceError as exc:
            form_error_add(form, exc)
        else:
            return _pairing_page(request, started)
    rows = device_list()
    for device in rows:
        device.can_revoke = device_can_revoke(request.user, device)
    context = {"devices": rows, "form": form, "websocket_url": _ws_url(request)}
    return render(request, "sync/devices.html", context, status=400 if form.errors else 200)


def _pairing_base(request: HttpRequest) -> tuple[str, str, bool]:
    """The base URL a phone pairs at, its sync address, and whether only this computer can reach them
    (loopback: the desktop's console on 127.0.0.1 while its LAN hub is off)."""
    provider = settings.TESSERA_PAIRING_BASE_URL
    base = import_string(provider)() if provider else None
    if base is None:
        base, websocket_url = request.build_absolute_uri("/").rstrip("/"), _ws_url(request)
    else:
        websocket_url = "ws" + base.removeprefix("http") + "/sync/v1/"
    host = (urlsplit(base).hostname or "").strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host.endswith(".localhost")
    return base, websocket_url, loopback


def _pairing_page(request: HttpRequest, started) -> HttpResponse:
    """The one page that ever shows the code and PIN; nothing may cache it."""
    base, websocket_url, loopback = _pairing_base(request)
    pair_url = base + "/sync/v1/pair?code=" + started.code
    import segno  # the QR code maker loads with the first pairing, not with the app

    qr = segno.make(pair_url, error="m").svg_inline(scale=5, dark="#111", light="#fff", title="Pairing QR code")
    pin = started.pin
    context = {
        "pairing": started.pairing,
        "qr_svg": qr,
        "pin": pin,
        "pin_display": f"{pin[:4]} {pin[4:]}",
        "pair_url": pair_url,
        "websocket_url": websocket_url,
        "loopback": loopback,
        "setup_url": settings.TESSERA_PAIRING_SETUP_URL,
    }
    response = render(request, "sync/pairing.html", context, status=201)
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@permission_required("devices.pair")
@require_http_methods(["GET"])
def pairing_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The pairing page's live line (htmx polls it): waiting for the phone, paired (with which device),
    or expired. Only whoever started the pairing sees it."""
    pairing = get_object_or_404(PairingCode.objects.select_related("device"), pk=pk, created_by=request.user)
    return render(request, "sync/_pairing_status.html", {"pairing": pairing})


@permission_required("devices.pair")
@require_http_methods(["GET", "POST"])
def device_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    device = get_object_or_404(Device.objects.select_related("user"), pk=pk)
    if not device_can_revoke(request.user, device):
        permission_check(request.user, "devices.manage")
    if request.method == "POST":
        device_revoke(actor=request.user, device=device)
        messages.success(request, f"“{device.name}” is revoked: it was disconnected and can no longer sync.")
        return redirect("sync:devices")
    return render(request, "sync/device_revoke.html", {"device": device})


SDK_DIR = "clients/js"
SDK_FILES = ("package.json", "README.md", "src/index.js", "src/index.d.ts")


@permission_required("devices.pair")
@require_http_methods(["GET"])
def sdk_download(request: HttpRequest) -> HttpResponse:
    """The phone SDK (clients/js) as the npm package tarball `npm install ./tessera-sync.tgz` takes:
    the files `npm pack` puts in it, under `package/`, built from the installation's own copy."""
    root = settings.BASE_DIR / SDK_DIR
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in SDK_FILES:
            path = root / name
            if not path.is_file():
                raise Http404("The SDK is not part of this installation.")
            data = path.read_bytes()
            info = tarfile.TarInfo(f"package/{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, int(path.stat().st_mtime)
            tar.addfile(info, io.BytesIO(data))
    response = HttpResponse(buffer.getvalue(), content_type="application/gzip")
    response["Content-Disposition"] = 'attachment; filename="tessera-sync.tgz"'
    return response


EXAMPLE_DIR = "clients/js/example/dist"
EXAMPLE_FILES = {
    "": ("index.html", "text/html; charset=utf-8"),
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "app.css": ("app.css", "text/css; charset=utf-8"),
    "app.js.map": ("app.js.map", "application/json"),
}


@require_http_methods(["GET", "HEAD"])
def example_app(request: HttpRequest, name: str = "") -> HttpResponse:
    """The SDK's example app (clients/js/example, bundled there by `npm run build`): a plain HTML page on
    @tessera/sync that pairs with a PIN as a phone would. Open to anyone who reaches the workspace: it
    is code and holds no data (what it syncs needs a PIN from the console)."""
    if name not in EXAMPLE_FILES:
        raise Http404("No such file in the example app.")
    filename, content_type = EXAMPLE_FILES[name]
    path = settings.BASE_DIR / EXAMPLE_DIR / filename
    if not path.is_file():  # said as is (the 404 page says only "not found"): whoever runs the server can act
        return HttpResponseNotFound(
            "The example app is not built in this installation: run `npm ci && npm run build` in clients/js/example.",
            content_type="text/plain; charset=utf-8",
        )
    response = FileResponse(path.open("rb"), content_type=content_type)
    response["Cache-Control"] = "no-cache"
    return response
