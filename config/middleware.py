"""Cross-cutting HTTP middleware: request ids, the request context for audit/logs, CSP, and the
routing of requests for workspaces of other cells."""

import logging

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render

from accounts.sso import sso_form_action_origins
from api.middleware import API_PATH_PREFIX
from api.problems import problem_http_response, service_error_http_response
from core.errors import ServiceError
from core.request_context import (
    RequestContext,
    client_ip,
    request_context_reset,
    request_context_set,
    request_id_new,
)
from tenants.middleware import HOST_INDEPENDENT_PATHS
from tenants.runtime import WorkspaceMoving, workspace_current_or_none
from tenants.topology import cell_named

if settings.TESSERA_DIRECTORY_ENABLED:  # SaaS cells; the desktop has no directory
    from directory.selectors import workspace_location_of

logger = logging.getLogger(__name__)


class RequestIdMiddleware:
    """First in the stack: every response (404s and errors included) carries a Request-Id header."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.id = request_id_new(request.headers.get("X-Request-Id"))
        token = request_context_set(
            RequestContext(
                request_id=request.id,
                ip=client_ip(request),
                user_agent=request.headers.get("User-Agent", "")[:512],
            )
        )
        try:
            response = self.get_response(request)
        finally:
            request_context_reset(token)
        response["Request-Id"] = request.id
        return response


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = _policy_for(request, response)
        return response


def _policy_for(request: HttpRequest, response: HttpResponse) -> str:
    """The console's policy; a page of a workspace with single sign-on also lets its forms go on to
    the workspace's identity provider (log-in by e-mail, log-out there)."""
    policy = settings.CONTENT_SECURITY_POLICY
    if not response.get("Content-Type", "").startswith("text/html") or workspace_current_or_none() is None:
        return policy
    try:
        origins = sso_form_action_origins(request)
    except DatabaseError:  # a page answering a failed transaction: the console's own policy
        return policy
    return policy.replace("form-action 'self'", " ".join(["form-action 'self'", *origins]), 1) if origins else policy


class ConsoleRefusalMiddleware:
    """A service's refusal that a console view did not turn into a form error — the workspace is
    read-only, a plan limit is reached — is shown as a page that says why (with the service's status
    and a link to billing), never as a 500. The API maps the same errors itself (api.problems)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, ServiceError) or request.path_info.startswith("/api/"):
            return None
        context = {"error": exception, "billing_url": exception.extra.get("billing_url", "")}
        return render(request, "console/refused.html", context, status=exception.status)


class WorkspaceCellMiddleware:
    """SaaS cells: a workspace this cell does not hold is looked up in the directory, and the request
    sent to its cell — the console by a redirect, the API with a 421 problem naming the workspace's
    base URL there (API keys must not follow redirects to another host blindly; README "Cells").
    Wraps tenants.middleware.TenantHostMiddleware, which marks the requests it could not place."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if getattr(request, "workspace_moving", False) and request.path_info.startswith(API_PATH_PREFIX):
            return service_error_http_response(request, WorkspaceMoving())
        hostname = getattr(request, "workspace_host_unknown", None)
        if hostname is None or request.path.rstrip("/") in HOST_INDEPENDENT_PATHS:
            return response
        suffix = "." + settings.TESSERA_BASE_DOMAIN
        slug = hostname[: -len(suffix)] if hostname.endswith(suffix) else ""
        if not slug or "." in slug:
            return response
        try:
            location = workspace_location_of(slug)
        except DatabaseError:
            logger.exception("the cells' directory is unreachable")
            return response  # the unknown-host page: better than an error
        if location is None or location.cell == settings.TESSERA_CELL:
            return response
        cell = cell_named(location.cell)
        if cell is None:
            logger.error("the directory names cell %r, which TESSERA_CELLS does not", location.cell)
            return response
        url = cell.workspace_url(slug, request.get_full_path())
        if request.path_info.startswith(API_PATH_PREFIX):
            return problem_http_response(
                request,
                421,
                "workspace_elsewhere",
                f"This workspace is served at {cell.workspace_url(slug, '')}: send your requests there.",
                base_url=cell.workspace_url(slug, "/api/v1"),
                location=url,
                region=location.region,
                headers={"Location": url},
            )
        return HttpResponseRedirect(url, status=302 if request.method in ("GET", "HEAD") else 307)
