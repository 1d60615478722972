"""The per-request facts (request id, client IP, user agent) that logs and audit events carry."""

import contextvars
import re
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip: str | None = None
    user_agent: str = ""


_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar("tessera_request", default=RequestContext())  # noqa: B039 (frozen)
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def request_id_new(incoming: str | None = None) -> str:
    """Reuse a well-formed id from a trusted proxy (X-Request-Id), otherwise mint one."""
    if incoming and _INCOMING_ID.match(incoming):
        return incoming
    return "req_" + uuid.uuid4().hex


def request_context_get() -> RequestContext:
    return _current.get()


def request_context_set(ctx: RequestContext) -> contextvars.Token:
    return _current.set(ctx)


def request_context_reset(token: contextvars.Token) -> None:
    _current.reset(token)
