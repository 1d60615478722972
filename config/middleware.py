"""Cross-cutting HTTP middleware: request ids, the request context for audit/logs, and CSP."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from config.request_context import RequestContext, request_context_reset, request_context_set, request_id_new


def client_address(peer: str | None, forwarded_for: str) -> str | None:
    """The client's address, given the connection's peer and its X-Forwarded-For header.

    Each proxy appends the address it received the request from, so with TESSERA_TRUSTED_PROXIES = N
    the client is the N-th address from the right: anything further left was sent by the client itself
    and proves nothing (taking the first hop would let anyone pick the address its requests are
    limited, locked out and audited under). A request that came past fewer proxies gets the leftmost."""
    trusted = settings.TESSERA_TRUSTED_PROXIES
    if trusted <= 0:
        return peer or None
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    if not hops:
        return peer or None
    return hops[-trusted] if len(hops) >= trusted else hops[0]


def client_ip(request: HttpRequest) -> str | None:
    return client_address(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR", ""))


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
