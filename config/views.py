"""Operational endpoints (/health, /metrics), the console's home, its test-mode switch and not-yet-built sections."""

import hmac
import time

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.module_loading import import_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from config.home import home_context
from config.middleware import TEST_MODE_SESSION_KEY
from rbac.permissions import permission_check


@never_cache
def health(request: HttpRequest) -> JsonResponse:
    checks: dict[str, dict] = {}
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        checks["database"] = {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}
    except Exception as exc:  # report, never raise: this is what a load balancer polls
        checks["database"] = {"ok": False, "error": exc.__class__.__name__}
    if getattr(settings, "TESSERA_HEALTH_CHECK_REDIS", False):
        started = time.perf_counter()
        try:
            cache.set("health:ping", "1", 5)
            ok = cache.get("health:ping") == "1"
            checks["redis"] = {"ok": ok, "ms": round((time.perf_counter() - started) * 1000, 1)}
        except Exception as exc:
            checks["redis"] = {"ok": False, "error": exc.__class__.__name__}
    for check in settings.TESSERA_HEALTH_CHECKS:
        checks.update(import_string(check)())
    healthy = all(c["ok"] for c in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks}, status=200 if healthy else 503
    )


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text for scrapers that present `Authorization: Bearer <TESSERA_METRICS_TOKEN>`.

    Request counts, latencies and database figures say a lot about every workspace on the host, so
    nobody else gets them: without a configured token /metrics is off (404), with one a wrong or
    missing token is a 401 that names the scheme."""
    token = getattr(settings, "TESSERA_METRICS_TOKEN", "")
    if not token:
        return HttpResponse("Not found.\n", status=404, content_type="text/plain")
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), token.encode()):
        response = HttpResponse("A metrics token is required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    from django_prometheus.exports import ExportToDjangoView

    return ExportToDjangoView(request)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "console/home.html", home_context(request.user))


# name -> (title, blurb, the permission the navigation shows it for)
SECTIONS: dict[str, tuple[str, str, str]] = {}


@login_required
def section(request: HttpRequest, name: str) -> HttpResponse:
    title, blurb, permission = SECTIONS[name]
    permission_check(request.user, permission)  # the same rule that hides it from the navigation
    return render(request, "console/section_pending.html", {"title": title, "blurb": blurb, "section": name})


@require_POST
@login_required
def console_mode(request: HttpRequest) -> HttpResponse:
    """The header's test-mode switch: `mode=test` shows this person the sandbox (the records test-mode
    API keys read and write) on the console's pages until they switch back (`mode=live`) or log out.
    Whoever may see records may look at and, as their role allows, change the sandbox."""
    permission_check(request.user, "records.view")
    test = request.POST.get("mode") == "test"
    request.session[TEST_MODE_SESSION_KEY] = test
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=False):
        back = ""
    if back.startswith("/records/") and back != "/records/":  # a collection is of one mode: go to the list
        back = "/records/"
    return redirect(back or "console:home")
