"""The built-in inspector: a tenant-scoped test receiver URL (`/webhooks/inspect/<token>`) that records
what it received, for sandbox work on webhooks without a server of one's own.

Deliveries from this workspace to its own inspector URL never go over HTTP: the delivery worker asks
`inspector_deliver` first, which records the request exactly as the receiver view would and answers
as it would. That keeps the SSRF guard strict (the inspector lives on our own hosts, which it must
refuse) and works wherever the worker runs, whatever the public host resolves to. Requests from
anywhere else arrive through the view (`webhooks.views.inspector_receive`), rate-limited per bin.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction

from core.actors import Actor, Principal
from core.token_buckets import Limit, buckets_take
from tenants.runtime import workspace_current, workspace_for_host
from webhooks.models import InspectorBin, InspectorRequest

BODY_CAP = 64 * 1024  # bytes kept of each body; the rest is dropped (the size received is noted)
HEADER_VALUE_CAP = 2000
HEADERS_MAX = 100
REQUESTS_KEPT = 200  # per bin: older requests are dropped as new ones arrive
BINS_MAX = 20
LIMIT = Limit(rate=20, burst=100)  # requests per second per bin (scaled like every rate limit)
PATH_RE = re.compile(r"^/webhooks/inspect/(?P<token>[A-Za-z0-9_-]{16,64})/?$")
# Never stored: the console session of whoever opens the URL in a browser, and proxy credentials.
HEADERS_DROPPED = frozenset({"cookie", "authorization", "proxy-authorization"})


class InspectorError(ValueError):
    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message, self.field = message, field


@dataclass(frozen=True)
class InspectorAnswer:
    """What the inspector answered (the delivery log records it like any receiver's answer)."""

    status: int
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    body: str = '{"received": true}'


RECEIVED = InspectorAnswer(200)


def inspector_bin_create(*, actor: Actor | Principal, name: str = "") -> InspectorBin:
    if InspectorBin.objects.count() >= BINS_MAX:
        raise InspectorError(f"A workspace has at most {BINS_MAX} inspector URLs; delete one first.")
    return InspectorBin.objects.create(token=secrets.token_urlsafe(24), name=name.strip()[:100], created_by=actor)


def inspector_bin_delete(*, bin: InspectorBin) -> None:
    bin.delete()


def inspector_bin_clear(*, bin: InspectorBin) -> int:
    deleted, _ = bin.requests.all().delete()
    return deleted


def _clean(text: str) -> str:
    return text.replace("\x00", "\ufffd")  # PostgreSQL text cannot hold NUL


def inspector_request_record(
    *, bin: InspectorBin, method: str, headers: dict[str, str], body: bytes, size: int | None = None
) -> InspectorRequest:
    """Keep one received request: method, headers (at most HEADERS_MAX, no cookies or credentials)
    and the body's first BODY_CAP bytes as text (undecodable bytes replaced)."""
    size = len(body) if size is None else size
    kept: dict[str, str] = {}
    for name, value in list(headers.items())[:HEADERS_MAX]:
        if name.lower() in HEADERS_DROPPED:
            continue
        kept[_clean(str(name))[:200]] = _clean(str(value))[:HEADER_VALUE_CAP]
    text = _clean(body[:BODY_CAP].decode("utf-8", errors="replace"))
    if size > BODY_CAP:
        text += f"\n… (truncated: {size} bytes received, the first {BODY_CAP} kept)"
    with transaction.atomic():
        request = InspectorRequest.objects.create(bin=bin, method=_clean(method.upper())[:10], headers=kept, body=text)
        stale = bin.requests.order_by("-received_at", "-pk").values_list("pk", flat=True)[REQUESTS_KEPT:]
        stale = list(stale[:1000])
        if stale:
            InspectorRequest.objects.filter(pk__in=stale).delete()
    return request


def inspector_rate_allows(bin: InspectorBin) -> bool:
    limit = LIMIT.scaled(getattr(settings, "TESSERA_RATE_LIMIT_SCALE", 1))
    name = ":".join([settings.TESSERA_COUNTERS_NAMESPACE, "inspector", str(workspace_current().pk), str(bin.pk)])
    try:
        allowed, _ = buckets_take([(name, limit)])
    except Exception:  # the limiter's store is down: a test receiver may fail open
        return True
    return allowed


def inspector_bin_for_url(url: str) -> InspectorBin | None:
    """The current workspace's inspector bin that `url` points at, or None (another workspace's
    host, another path, an unknown token)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return None
    match = PATH_RE.match(parts.path)
    if parts.scheme not in ("http", "https") or match is None or not host:
        return None
    tenant = workspace_for_host(host)
    if tenant is None or tenant.pk != workspace_current().pk:
        return None
    return InspectorBin.objects.filter(token=match["token"]).first()


def inspector_url_is_own(url: str) -> bool:
    """For the SSRF guard: True if `url` is this workspace's own inspector (delivered in-process)."""
    return inspector_bin_for_url(url) is not None


def inspector_deliver(*, url: str, headers: dict[str, str], body: bytes | str) -> InspectorAnswer | None:
    """For the delivery worker: if `url` is this workspace's inspector, record the delivery as received
    (no HTTP) and return the inspector's answer; None means "not an inspector URL: use HTTP"."""
    bin = inspector_bin_for_url(url)
    if bin is None:
        return None
    raw = body.encode() if isinstance(body, str) else body
    inspector_request_record(bin=bin, method="POST", headers=dict(headers), body=raw)
    return RECEIVED
