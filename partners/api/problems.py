"""RFC 9457 problem details for every API error: one mapping from exceptions to responses."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response

from records.errors import RecordError

PROBLEM_CONTENT_TYPE = "application/problem+json"

TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    402: "Plan limit reached",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    412: "Precondition failed",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Validation failed",
    428: "Precondition required",
    429: "Too many requests",
    500: "Internal server error",
}
DRF_CODES = {
    exceptions.ParseError: "invalid_json",
    exceptions.AuthenticationFailed: "unauthenticated",
    exceptions.NotAuthenticated: "unauthenticated",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
    exceptions.ValidationError: "invalid_request",
}


class ApiProblem(exceptions.APIException):
    """Raise from a view for any problem that is not a service error."""

    def __init__(self, status: int, code: str, detail: str, *, param: str | None = None, **extra):
        super().__init__(detail=detail, code=code)
        self.status_code, self.problem_code, self.param, self.extra = status, code, param, extra


def doc_url(request, code: str) -> str:
    path = f"/api/v1/docs/errors/#{code}"
    return request.build_absolute_uri(path) if request is not None else path


def problem_response(
    request, status: int, code: str, detail: str, *, param: str | None = None, headers=None, **extra
) -> Response:
    url = doc_url(request, code)
    body = {
        "type": url,
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
        "param": param,
        "request_id": getattr(request, "id", "") or getattr(getattr(request, "_request", None), "id", ""),
        "doc_url": url,
        **extra,
    }
    response = Response(body, status=status, headers=headers, content_type=PROBLEM_CONTENT_TYPE)
    return response


def _first_param(detail, prefix: str = "") -> tuple[str | None, str]:
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = key if key != "non_field_errors" else None
            param, message = _first_param(value, f"{prefix}{name}." if name else prefix)
            return (param or (prefix + name if name else None)), message
    if isinstance(detail, list) and detail:
        return _first_param(detail[0], prefix)
    return (prefix.rstrip(".") or None), str(detail)


def exception_handler(exc, context):
    request = context.get("request")
    if isinstance(exc, RecordError):
        return problem_response(request, exc.status, exc.code, exc.message, param=exc.param, **exc.extra)
    if isinstance(exc, ApiProblem):
        return problem_response(
            request, exc.status_code, exc.problem_code, str(exc.detail), param=exc.param, **exc.extra
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    if not isinstance(exc, exceptions.APIException):
        return None  # a real bug: Django's 500 handling (and the problem middleware) takes it
    code = next((c for cls, c in DRF_CODES.items() if isinstance(exc, cls)), "error")
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(int(exc.wait) + 1)
    if isinstance(exc, exceptions.ValidationError):
        param, message = _first_param(exc.detail)
        return problem_response(request, 400, code, message, param=param, errors=exc.detail, headers=headers)
    if isinstance(exc, exceptions.NotAuthenticated):
        headers.setdefault("WWW-Authenticate", 'Bearer realm="api"')
        return problem_response(
            request, 401, code, "Authenticate with `Authorization: Bearer <api key>`.", headers=headers
        )
    status = exc.status_code
    return problem_response(request, status, code, str(exc.detail), headers=headers)
