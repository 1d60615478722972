"""Cross-cutting HTTP middleware: request ids, the request context for audit/logs, and CSP."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from core.request_context import (
    RequestContext,
    client_ip,
    request_context_reset,
    request_context_set,
    request_id_new,
)


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
        response.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response
