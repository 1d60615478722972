"""Errors Django answers itself on /api/ paths (no route: 404, a bare method: 405, an unknown host, a
crash: 500) come out as problem+json like every other API error, never as an HTML page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from api.problems import PROBLEM_CONTENT_TYPE, TITLES, problem_http_response

API_PATH_PREFIX = "/api/"
CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    500: "server_error",
}
DETAILS = {
    404: "No API endpoint here. The API lives under /api/v1/ on your workspace's own host.",
    500: "Something went wrong on our side. Retry later; quote the request_id to support.",
}
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


class ApiProblemMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code < 400
            or not request.path_info.startswith(API_PATH_PREFIX)
            or response.get("Content-Type", "").startswith(PROBLEM_CONTENT_TYPE)
        ):
            return response
        status = response.status_code
        detail = DETAILS.get(status) or TITLES.get(status, "Error") + "."
        if status == 405:
            detail = f"{request.method} is not allowed here; see the Allow header."
        problem = problem_http_response(
            request,
            status,
            CODES.get(status, "server_error" if status >= 500 else "invalid_request"),
            detail,
            headers={name: response[name] for name in KEPT_HEADERS if response.has_header(name)},
        )
        for name, value in response.items():  # e.g. rate-limit headers set further in
            if name.lower().startswith(("ratelimit", "x-ratelimit", "request-id")):
                problem[name] = value
        return problem
