"""Log-record filter that stamps every line with the request id and tenant."""

import logging

from config.request_context import request_context_get


class RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ctx = request_context_get()
        if not hasattr(record, "request_id"):
            record.request_id = ctx.request_id or "-"
        if not hasattr(record, "tenant"):
            from tenants.runtime import tenant_label_current

            record.tenant = tenant_label_current()
        return True
