"""Log-record filter that stamps every line with the request id and tenant."""

import logging

from core.request_context import request_context_get


def _tenant_label(record: logging.LogRecord) -> str:
    # Django logs 4xx/5xx responses with the request attached; under ASGI it does so on the event
    # loop's thread, whose database connection (per thread) never entered the workspace: the
    # request's own tenant says which it was. Otherwise read straight off the connection: this runs
    # for records logged before the app registry is ready, so it must not import models.
    from django.db import connection

    tenant = getattr(getattr(record, "request", None), "tenant", None) or getattr(connection, "tenant", None)
    return getattr(tenant, "schema_name", "-") if tenant is not None else "-"


class RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ctx = request_context_get()
        if not hasattr(record, "request_id"):
            # Django logs 4xx/5xx responses after the middleware has returned (the context is gone),
            # but hands over the request itself.
            record.request_id = ctx.request_id or getattr(getattr(record, "request", None), "id", None) or "-"
        if not hasattr(record, "tenant"):
            try:
                record.tenant = _tenant_label(record)
            except Exception:
                record.tenant = "-"
        return True
