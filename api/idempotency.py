"""`Idempotency-Key` on POST (after draft-ietf-httpapi-idempotency-key-header): a retried request gets
the first one's response again instead of doing the work twice.

- The key is scoped to the caller (the API key, or the console user) and kept 24 hours.
- The first request claims the key (a committed row, "in flight"); a concurrent one with the same key
  gets 409 `idempotency_in_flight`. The key with another method, path or body: 422
  `idempotency_key_reused`.
- The work and the stored response commit in one transaction, so a crash in between leaves neither:
  the claim stays in flight until IN_FLIGHT_TIMEOUT, then a retry does the work (once).
- A replay is the stored response byte for byte (status, body, headers) plus `Idempotent-Replayed: true`
  and `Original-Request-Id`; its own `Request-Id` is new, like every request's.
- Server errors (5xx) are not kept: retrying them is what the key is for.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from functools import wraps

from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone

from api.base import caller_of
from api.models import IdempotencyRecord
from api.problems import ApiProblem
from core.bounded_json import json_loads_bounded
from core.events import DomainEvent

HEADER = "Idempotency-Key"
KEY_MAX_LENGTH = 255
IDEMPOTENCY_TTL = timedelta(hours=24)
IN_FLIGHT_TIMEOUT = timedelta(minutes=2)
# Per-request headers are not part of the stored answer.
_REQUEST_ID = "_request_id"  # kept beside the headers: the first request's id, for Original-Request-Id
_NOT_STORED = ("request-id", "ratelimit", "x-ratelimit", "retry-after", "idempotent-replayed", "original-request-id")


def _fingerprint(request) -> str:
    """Method, full path and body; a JSON body is compared by content, not by its whitespace."""
    raw = request._request.body
    try:
        body = json.dumps(json_loads_bounded(raw), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:  # also too deep (core.bounded_json): the parser answers 400 for it later
        body = raw
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.get_full_path().encode("utf-8", "surrogateescape"), body):
        digest.update(part + b"\n")
    return digest.hexdigest()


def _scope(request) -> dict:
    actor = caller_of(request)
    return {"caller": f"{actor.type}:{actor.id}"}


def _expired(record: IdempotencyRecord, now: datetime) -> bool:
    if record.created_at <= now - IDEMPOTENCY_TTL:
        return True
    return record.status_code is None and record.created_at <= now - IN_FLIGHT_TIMEOUT


def idempotency_claim(request, idempotency_key: str) -> IdempotencyRecord | HttpResponse:
    """Claim the key for this request (a committed, in-flight row), or answer from an earlier one."""
    if not 1 <= len(idempotency_key) <= KEY_MAX_LENGTH or not all("!" <= c <= "~" for c in idempotency_key):
        raise ApiProblem(
            400,
            "invalid_request",
            f"`{HEADER}` must be 1–{KEY_MAX_LENGTH} visible ASCII characters (a UUID is good).",
            param=HEADER,
        )
    scope = _scope(request)
    fingerprint = _fingerprint(request)
    fields = {
        **scope,
        "idempotency_key": idempotency_key,
        "request_hash": fingerprint,
        "method": request.method,
        "path": request.get_full_path()[:500],
    }
    now = timezone.now()
    with transaction.atomic():
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(**fields)
        except IntegrityError:
            pass
        earlier = IdempotencyRecord.objects.select_for_update().filter(**scope, idempotency_key=idempotency_key).first()
        if earlier is None or _expired(earlier, now):
            if earlier is not None:
                earlier.delete()
            try:
                with transaction.atomic():
                    return IdempotencyRecord.objects.create(**fields)
            except IntegrityError:
                earlier = None  # another retry claimed it this very moment
        if earlier is None or earlier.status_code is None:
            if earlier is not None and earlier.request_hash != fingerprint:
                raise _reused()
            raise ApiProblem(
                409,
                "idempotency_in_flight",
                f"A request with this {HEADER} is still in progress; retry once it has finished.",
                param=HEADER,
            )
        if earlier.request_hash != fingerprint:
            raise _reused()
        return _replay(earlier)


def _reused() -> ApiProblem:
    return ApiProblem(
        422,
        "idempotency_key_reused",
        f"This {HEADER} was already used for a different request; use a new key for a new request.",
        param=HEADER,
    )


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(bytes(record.response_body or b""), status=record.status_code)
    for name, value in record.response_headers.items():
        if name != _REQUEST_ID:
            response[name] = value
    response["Idempotent-Replayed"] = "true"
    if record.response_headers.get(_REQUEST_ID):
        response["Original-Request-Id"] = record.response_headers[_REQUEST_ID]
    return response


def _store(record: IdempotencyRecord, request, response) -> None:
    headers = {name: value for name, value in response.items() if not name.lower().startswith(_NOT_STORED)}
    headers[_REQUEST_ID] = getattr(request, "id", "")
    record.status_code = response.status_code
    record.response_body = response.content
    record.response_headers = headers
    record.save(update_fields=["status_code", "response_body", "response_headers"])


def idempotent(handler):
    """Decorate a view's `post`: with an Idempotency-Key header, do the work once per key."""

    @wraps(handler)
    def wrapped(view, request, *args, **kwargs):
        idempotency_key = request.headers.get(HEADER)
        if idempotency_key is None:
            return handler(view, request, *args, **kwargs)
        claim = idempotency_claim(request, idempotency_key)
        if isinstance(claim, HttpResponse):
            return claim
        try:
            with transaction.atomic():
                try:
                    response = handler(view, request, *args, **kwargs)
                except Exception as exc:
                    response = view.handle_exception(exc)  # problems become responses; bugs re-raise
                response = view.finalize_response(request, response, *args, **kwargs)
                response.render()
                if response.status_code >= 500:
                    raise _NotKept(response)
                _store(claim, request, response)
        except _NotKept as not_kept:
            claim.delete()
            return not_kept.response
        except BaseException:
            claim.delete()
            raise
        return response

    return wrapped


class _NotKept(Exception):
    def __init__(self, response):
        super().__init__("server error: not kept")
        self.response = response


def idempotency_records_purge(*, now: datetime | None = None) -> int:
    """Delete the current tenant's keys older than 24 hours (a periodic task calls this per tenant)."""
    cutoff = (now or timezone.now()) - IDEMPOTENCY_TTL
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def erased_responses_forget(event: DomainEvent) -> None:
    """Subscriber (in the transaction): a cached answer that shows an erased record (`record.erased`)
    or an erased subject's identifier (`subject.erased`, `member.erased`) is forgotten; a replay would otherwise hand
    the values back for up to 24 hours. The cache is small (24 hours of keyed POSTs), so it is read
    through rather than indexed."""
    if event.type not in ("record.erased", "subject.erased", "member.erased"):
        return
    values = (getattr(event, "record_id", ""), *getattr(event, "erased_values", ()))
    needles = [v.lower().encode() for v in values if v]  # compared with the lower-cased body
    if not needles:
        return
    cached = IdempotencyRecord.objects.exclude(response_body=None).values_list("pk", "response_body")
    stale = [pk for pk, body in cached.iterator() if any(n in bytes(body).lower() for n in needles)]
    IdempotencyRecord.objects.filter(pk__in=stale).delete()
