"""The per-request facts (request id, client address, user agent) that logs and audit events carry, the
one rule for a client's address behind proxies, and which data the console shows (live or test mode)."""

import contextvars
import re
import uuid
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip: str | None = None
    user_agent: str = ""


_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar("tessera_request", default=RequestContext())  # noqa: B039 (frozen)
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


# The console's data for this request: live (True), or the sandbox rows test-mode API keys read and
# write (False), as the person chose with the header's test-mode switch (config.middleware).
_console_livemode: contextvars.ContextVar[bool] = contextvars.ContextVar("tessera_console_livemode", default=True)


def console_livemode() -> bool:
    """Live data (True) or the sandbox (False): what console pages read and write in this request."""
    return _console_livemode.get()


def console_livemode_set(live: bool) -> contextvars.Token:
    return _console_livemode.set(live)


def console_livemode_reset(token: contextvars.Token) -> None:
    _console_livemode.reset(token)


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


def client_address(peer: str | None, forwarded_for: str) -> str | None:
    """The client's address, given the connection's peer and its X-Forwarded-For header.

    Each proxy appends the address it received the request from, so with TESSERA_TRUSTED_PROXIES = N
    the client is the N-th address from the right: anything further left was sent by the client itself
    and proves nothing (taking the first hop would let anyone pick the address its requests are
    limited, locked out and audited under). A request that came past fewer proxies gets the leftmost."""
    trusted = settings.TESSERA_TRUSTED_PROXIES
    if trusted <= 0:
        return peer or None
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    if not hops:
        return peer or None
    return hops[-trusted] if len(hops) >= trusted else hops[0]


def client_ip(request) -> str | None:
    """The client address of a Django request (see client_address)."""
    return client_address(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR", ""))
