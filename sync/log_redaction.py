"""Keeps device tokens out of server logs.

Stock RxDB clients can send their token only in the websocket URL (`/sync/v1/?token=tsd_…`), and
uvicorn logs that URL when a socket opens, is refused or closes. This filter, put on uvicorn's loggers
when the app starts, blanks the token in those lines.
"""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(r"(token=)[^&\s\"']+")
LOGGERS = ("uvicorn.error", "uvicorn.access", "django.request", "django.channels.server")


def redact(text: str) -> str:
    return _TOKEN.sub(r"\1[redacted]", text)


class TokenRedactionFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "token=" in record.msg:
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) and "token=" in a else a for a in record.args)
        return True


def token_redaction_install() -> None:
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenRedactionFilter) for f in logger.filters):
            logger.addFilter(TokenRedactionFilter())
