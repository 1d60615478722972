"""The one family of errors services raise: a message the caller can show, a stable `code`, the input
at fault (`param`), and the HTTP status the API answers with. It is mapped once to each surface:
problem+json in `api.problems`, form errors in `core.forms`, error frames in `sync.consumers`."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A request a service refuses although it was well formed enough to be understood."""

    status: int = 422
    code: str = "invalid_request"

    def __init__(
        self, message: str, *, param: str | None = None, code: str | None = None, status: int | None = None, **extra
    ):
        super().__init__(message)
        self.message = message
        self.param = param
        if code:
            self.code = code
        if status:
            self.status = status
        self.extra: dict[str, Any] = extra

    @property
    def field(self) -> str | None:
        """The console form field at fault: the same input the API calls `param`."""
        return self.param


class NotFound(ServiceError):
    status, code = 404, "not_found"


class Forbidden(ServiceError):
    status, code = 403, "forbidden"


class Conflict(ServiceError):
    status, code = 409, "conflict"


class LimitExceeded(ServiceError):
    """The workspace's plan allows no more of something (billing's entitlements raise it)."""

    status, code = 402, "plan_limit_exceeded"


class Throttled(ServiceError):
    """Too many attempts: `retry_after` seconds until the next may be tried."""

    status, code = 429, "rate_limited"

    def __init__(self, message: str, *, retry_after: int, **kwargs):
        super().__init__(message, retry_after=retry_after, **kwargs)
        self.retry_after = retry_after
