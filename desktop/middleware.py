"""A request that meets a storage failure (locked database, full disk, damaged file) gets a 503 with
the reason: problem+json on the API, a page in the console. Never a bare 500.

Django turns any exception, in a view or in a middleware (a session saved on the way out), into a
response before it reaches an outer middleware; `got_request_exception` is sent while the exception
is being handled, so the receiver here sees it and leaves the reason for the middleware to use.
"""

from __future__ import annotations

import contextvars
import sys
from pathlib import Path

from django.conf import settings
from django.core.signals import got_request_exception
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from desktop.storage import StorageFailure, storage_failure_note, storage_failure_of

_request_failures: contextvars.ContextVar[list[StorageFailure] | None] = contextvars.ContextVar(
    "storage_failures", default=None
)

API_PREFIX = "/api/"


@receiver(got_request_exception)
def _storage_failure_seen(sender, request=None, **kwargs) -> None:
    exc = sys.exc_info()[1]
    if exc is None:
        return
    failure = storage_failure_of(exc, Path(settings.DATA_DIR))
    if failure is None:
        return
    storage_failure_note(failure)
    seen = _request_failures.get()
    if seen is not None:
        seen.append(failure)


def storage_failure_response(request: HttpRequest, failure: StorageFailure) -> HttpResponse:
    headers = {"Retry-After": str(failure.retry_after)}
    if request.path_info.startswith(API_PREFIX) or "json" in request.headers.get("Accept", ""):
        from api.problems import problem_http_response

        return problem_http_response(request, 503, failure.code, failure.message, headers=headers)
    page = render_to_string(
        "desktop/storage_failure.html",
        {"failure": failure, "data_dir": settings.DATA_DIR, "request_id": getattr(request, "id", "")},
    )
    response = HttpResponse(page, status=503)
    for name, value in headers.items():
        response[name] = value
    return response


class StorageFailureMiddleware:
    """Near the outside of the stack (after the request id): sees the final response of everything within."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        seen: list[StorageFailure] = []
        token = _request_failures.set(seen)
        try:
            response = self.get_response(request)
        finally:
            _request_failures.reset(token)
        if response.status_code >= 500 and seen:
            response = storage_failure_response(request, seen[-1])
        return response
