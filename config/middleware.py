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
    console_livemode_reset,
    console_livemode_set,
    request_context_reset,
    request_context_set,
    request_id_new,
)
from tenants.middleware import HOST_INDEPENDENT_PATHS
from tenants.runtime import WorkspaceMoving, workspace_current_or_none
from tenants.topology import workspace_elsewhere_for_host

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


# The session key of the console's test-mode switch (config.views.console_mode). Sessions live in the
# workspace's schema: test mode is one person's choice in one workspace.
TEST_MODE_SESSION_KEY = "console_test_mode"


class ConsoleModeMiddleware:
    """Console pages of a signed-in person in test mode read and write the sandbox (the rows test-mode
    API keys use: core.request_context.console_livemode); everyone else, and the API (whose key says
    its mode), live data."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        test = (
            not request.path_info.startswith(API_PATH_PREFIX)
            and user is not None
            and user.is_authenticated
            and bool(request.session.get(TEST_MODE_SESSION_KEY))
        )
        token = console_livemode_set(not test)
        try:
            return self.get_response(request)
        finally:
            console_livemode_reset(token)


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
        elsewhere = workspace_elsewhere_for_host(hostname)
        if elsewhere is None:
            return response
        cell, slug = elsewhere.cell, elsewhere.slug
        url = cell.workspace_url(slug, request.get_full_path())
        if request.path_info.startswith(API_PATH_PREFIX):
            return problem_http_response(
                request,
                421,
                "workspace_elsewhere",
                f"This workspace is served at {cell.workspace_url(slug, '')}: send your requests there.",
                base_url=cell.workspace_url(slug, "/api/v1"),
                location=url,
                region=elsewhere.region,
                headers={"Location": url},
            )
        return HttpResponseRedirect(url, status=302 if request.method in ("GET", "HEAD") else 307)
