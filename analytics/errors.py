"""Typed errors of analytics: ServiceErrors the API, console and reports each map once."""

from __future__ import annotations

from core.errors import ServiceError


class AnalyticsError(ServiceError):
    """A saved query, dashboard, export or report the service refuses (HTTP 422)."""


class QueryInvalid(AnalyticsError):
    """A query that does not fit its collection: an unknown field, an aggregate its type has not, a
    bad range. 422: the request was well-formed JSON, its meaning is what is wrong."""

    code = "invalid_query"
