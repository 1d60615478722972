"""RFC 9457 problem details for every API error: one mapping from exceptions to responses, and the
one list of problem codes (PROBLEM_CODES) that the errors page documents and `doc_url` points into."""

from __future__ import annotations

import json

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpResponse
from rest_framework import exceptions
from rest_framework.response import Response

from core.errors import ServiceError

PROBLEM_CONTENT_TYPE = "application/problem+json"
ERRORS_PAGE_PATH = "/api/v1/docs/errors/"

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
    421: "Misdirected request",
    422: "Unprocessable content",
    428: "Precondition required",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}

# code -> (HTTP statuses it comes with, what it means and what to do). The errors page is built from
# this; a test checks every code the API raises is listed here.
PROBLEM_CODES: dict[str, tuple[tuple[int, ...], str]] = {
    "invalid_request": (
        (400, 422),
        "The request is malformed (400: a parameter has the wrong type or is missing) or asks for "
        "something that cannot be done (422). `param` names the parameter; fix it and retry.",
    ),
    "invalid_json": ((400,), "The body is not valid JSON. Send a JSON object with `Content-Type: application/json`."),
    "invalid_query": ((400,), "A query parameter has a value of the wrong type (`param` names it)."),
    "unknown_parameter": (
        (400,),
        "A query parameter is not known. On record lists every parameter other than `limit`, "
        "`starting_after`, `ending_before`, `order_by`, `updated_since` and `q` must name a field of the "
        "collection (`field`, `field__gt`, …).",
    ),
    "unknown_filter": ((400,), "A filter names a field the collection does not have."),
    "bulk_size": ((400,), "A bulk action names no records or more than it may change at once (`param` says which)."),
    "undo_empty": ((422,), "An undo names no records to put back, or more than it may at once."),
    "undo_stale": (
        (409,),
        "Not undone: a record changed again since (or is gone), or its change cannot be undone; nothing was put back.",
    ),
    "unauthenticated": (
        (401,),
        "No valid API key. Send `Authorization: Bearer tsk_live_…` (or `tsk_test_…`) with a key of this "
        "workspace that is not revoked or expired.",
    ),
    "forbidden": ((403,), "The key (its scopes) or your role does not allow this operation."),
    "plan_limit_exceeded": ((402,), "The workspace's plan does not allow more; upgrade the plan or remove data."),
    "not_found": ((404,), "No such object (or the URL is wrong). Test keys see only test data, live keys live data."),
    "resource_missing": ((404,), "The object named by `starting_after` / `ending_before` does not exist."),
    "method_not_allowed": (
        (405,),
        "This URL does not support the HTTP method; the `Allow` header lists those it does.",
    ),
    "not_acceptable": ((406,), "The API answers in JSON only: accept `application/json`."),
    "conflict": ((409,), "The write collides with existing data."),
    "duplicate_slug": ((409,), "A collection with this slug exists already."),
    "duplicate_id": ((409,), "A record with this id exists already."),
    "collection_not_empty": ((409,), "Delete the collection's records before the collection."),
    "unique_violation": ((409,), "Another record already has this value of a unique field (`param`)."),
    "subject_restricted": (
        (409,),
        "The record's data subject asked that its processing be restricted (GDPR art. 18): it is kept as it "
        "is and cannot be changed until the restriction is lifted (`record` names it). Do not retry.",
    ),
    "merge_conflict": (
        (409,),
        "Your change was made against an older version (`Tessera-Base-Version`) and a field you changed was "
        "changed differently since. `conflicts` lists each field with its `base`, `current` and `incoming` "
        "value; re-read the record, resolve, and retry against `current_version`.",
    ),
    "idempotency_in_flight": (
        (409,),
        "A request with this `Idempotency-Key` is still being processed. Retry after it finished.",
    ),
    "version_mismatch": (
        (412,),
        "`If-Match` names a version (ETag) the record is no longer at, or `Tessera-Base-Version` names one it "
        "never had. Re-read the record and retry.",
    ),
    "payload_too_large": ((413,), "The body is too large (at most 10 MB; bulk writes at most 1,000 items)."),
    "unsupported_media_type": (
        (415,),
        "Send JSON: `Content-Type: application/json` (PATCH also takes `application/merge-patch+json`).",
    ),
    "validation_failed": (
        (422,),
        "The record's data does not fit the collection's fields. `errors` lists every problem with its "
        "`param` (e.g. `data.email`), `code` and `message`.",
    ),
    "invalid_field": ((422,), "A field definition of the collection is invalid (`param` names it)."),
    "required_without_default": (
        (422,),
        "Making a field required needs a default for the existing records that lack it.",
    ),
    "idempotency_key_reused": (
        (422,),
        "This `Idempotency-Key` was used with a different request (method, path or body) in the last 24 hours. "
        "Use a new key for a new request.",
    ),
    "url_refused": (
        (422,),
        "The webhook endpoint URL points at an address Tessera may not call (loopback, private, link-local, "
        "reserved, …) or is not http(s). Use a URL on the public internet.",
    ),
    "endpoint_disabled": ((409,), "The webhook endpoint is disabled: enable it first (`enabled: true`)."),
    "rate_limited": ((429,), "Too many requests: wait `Retry-After` seconds. The `RateLimit` headers show the budget."),
    "workspace_elsewhere": (
        (421,),
        "The workspace lives in another cell (data center) of Tessera, or has moved there. Send this and every "
        "later request to `base_url` (the workspace's address there); your keys work there unchanged.",
    ),
    "workspace_moving": (
        (503,),
        "The workspace is being moved to another data center: reads work, writes are refused for a few "
        "seconds. Retry after `Retry-After` seconds (a 421 `workspace_elsewhere` then names its new address).",
    ),
    "server_error": ((500,), "Something went wrong on our side. Retry later; quote the `request_id` to support."),
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
    path = f"{ERRORS_PAGE_PATH}#{code}"
    return request.build_absolute_uri(path) if request is not None else path


def _request_id(request) -> str:
    return getattr(request, "id", "") or getattr(getattr(request, "_request", None), "id", "") or ""


def problem_body(request, status: int, code: str, detail: str, *, param: str | None = None, **extra) -> dict:
    url = doc_url(request, code)
    return {
        "type": url,
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
        "param": param,
        "request_id": _request_id(request),
        "doc_url": url,
        **extra,
    }


def problem_response(
    request, status: int, code: str, detail: str, *, param: str | None = None, headers=None, **extra
) -> Response:
    """A DRF Response (rendered by the view) carrying a problem."""
    body = problem_body(request, status, code, detail, param=param, **extra)
    return Response(body, status=status, headers=headers, content_type=PROBLEM_CONTENT_TYPE)


def problem_http_response(
    request, status: int, code: str, detail: str, *, param: str | None = None, headers=None, **extra
) -> HttpResponse:
    """A plain, already rendered Django response carrying a problem (for middleware)."""
    body = problem_body(request, status, code, detail, param=param, **extra)
    response = HttpResponse(
        json.dumps(body, ensure_ascii=False, default=str), status=status, content_type=PROBLEM_CONTENT_TYPE
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def service_error_body(request, exc: ServiceError) -> dict:
    """A service error as a problem body (bulk writes report one per failed item)."""
    return problem_body(request, exc.status, exc.code, exc.message, param=exc.param, **exc.extra)


def service_error_http_response(request, exc: ServiceError) -> HttpResponse:
    """A service error as a rendered problem response (for views outside DRF and for middleware)."""
    headers = {"Retry-After": str(exc.extra["retry_after"])} if "retry_after" in exc.extra else None
    return problem_http_response(
        request, exc.status, exc.code, exc.message, param=exc.param, headers=headers, **exc.extra
    )


def validation_errors(detail, prefix: str = "") -> list[dict]:
    """DRF's nested validation detail as the API's flat list of {param, code, message}."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            if key == "non_field_errors":
                name = prefix
            elif isinstance(key, int) or str(key).isdigit():
                name = f"{prefix}[{key}]"
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            out.extend(validation_errors(value, name))
        return out
    if isinstance(detail, list):
        if detail and all(isinstance(item, dict) or item in ({}, None) for item in detail):
            out = []
            for index, item in enumerate(detail):
                out.extend(validation_errors(item or {}, f"{prefix}[{index}]"))
            return out
        return [
            {"param": prefix or None, "code": getattr(item, "code", None) or "invalid", "message": str(item)}
            for item in detail
        ]
    return [{"param": prefix or None, "code": getattr(detail, "code", None) or "invalid", "message": str(detail)}]


def exception_handler(exc, context):
    request = context.get("request")
    if isinstance(exc, ServiceError):
        headers = {"Retry-After": str(exc.extra["retry_after"])} if "retry_after" in exc.extra else None
        return problem_response(
            request, exc.status, exc.code, exc.message, param=exc.param, headers=headers, **exc.extra
        )
    if isinstance(exc, ApiProblem):
        return problem_response(
            request, exc.status_code, exc.problem_code, str(exc.detail), param=exc.param, **exc.extra
        )
    if isinstance(exc, RequestDataTooBig):
        return problem_response(request, 413, "payload_too_large", "The request body is too large (at most 10 MB).")
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
        errors = validation_errors(exc.detail) or [{"param": None, "code": "invalid", "message": "Invalid request."}]
        first = errors[0]
        message = f"`{first['param']}`: {first['message']}" if first["param"] else first["message"]
        return problem_response(request, 400, code, message, param=first["param"], errors=errors, headers=headers)
    if isinstance(exc, exceptions.NotAuthenticated):
        headers.setdefault("WWW-Authenticate", 'Bearer realm="api"')
        return problem_response(
            request, 401, code, "Authenticate with `Authorization: Bearer <api key>`.", headers=headers
        )
    status = exc.status_code
    return problem_response(request, status, code, str(exc.detail), headers=headers)
