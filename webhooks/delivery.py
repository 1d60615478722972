"""One delivery attempt: claim the delivery, sign, POST to the vetted address, log the attempt, and
decide what comes next (done, retry on the schedule, give up, disable the endpoint).

Rules (issue 4): 2xx is success; anything else, a redirect (never followed), a timeout or a refused
address is a failure. 410 Gone disables the endpoint. 429 and 503 retry after their `Retry-After`.
Other failures retry on TESSERA_WEBHOOK_RETRY_SCHEDULE with ±10 % jitter; an endpoint that has
failed continuously for TESSERA_WEBHOOK_DISABLE_AFTER is disabled and its Admins are told.

A worker claims a delivery by setting `locked_until` (a lease): a second task for the same delivery
finds it taken and does nothing, and a worker killed mid-attempt leaves a lease that runs out, after
which the sweeper hands the delivery to another worker. Delivery is therefore at-least-once.
"""

from __future__ import annotations

import email.utils
import http.client
import logging
import random
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from webhooks import ssrf
from webhooks.catalogue import ENVELOPE_VERSION
from webhooks.crypto import SecretUndecryptable
from webhooks.models import Attempt, Delivery, Endpoint
from webhooks.services import endpoint_disable_for_failures, endpoint_secrets_valid, event_body
from webhooks.signing import headers_signed

logger = logging.getLogger(__name__)

USER_AGENT = "Tessera-Webhooks/1.0 (+https://www.standardwebhooks.com)"
REQUEST_BODY_KEPT = 64 * 1024
RESPONSE_BODY_KEPT = 8 * 1024
RESPONSE_HEADERS_KEPT = 50
RETRY_AFTER_MAX = 24 * 3600
JITTER = 0.10
CLAIM_SLACK = timedelta(seconds=1)  # a task may run a moment before its countdown's end


@dataclass
class Response:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    error: str = ""


@dataclass(frozen=True)
class Outcome:
    """What the attempt led to. `retry_in`: seconds until the next attempt (None: no further one)."""

    result: str  # succeeded | retrying | failed | deferred | skipped
    retry_in: float | None = None
    status_code: int | None = None


def _header(headers: dict[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def _clean(text: str) -> str:
    return text.replace("\x00", "\ufffd")


def retry_delay(n: int, *, rng: random.Random | None = None) -> float | None:
    """Seconds before attempt n+1 of a schedule (n attempts made so far), jittered; None when the
    schedule is exhausted."""
    schedule = settings.TESSERA_WEBHOOK_RETRY_SCHEDULE
    if n >= len(schedule):
        return None
    base = float(schedule[n])
    return base * (1 + (rng or random).uniform(-JITTER, JITTER)) if base else 0.0


def retry_after_seconds(value: str | None, *, now: datetime) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from now, clamped to 1 s – 24 h."""
    if not value:
        return None
    value = value.strip()
    seconds: float | None = None
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=now.tzinfo)
        seconds = (when - now).total_seconds()
    return min(max(seconds, 1.0), RETRY_AFTER_MAX)


# --- claim ----------------------------------------------------------------------------------------------


def delivery_claim(delivery_id: int, *, now: datetime) -> Delivery | None:
    """Take the delivery for one attempt if it is pending, due and not held by a live worker."""
    lease = now + timedelta(seconds=settings.TESSERA_WEBHOOK_LOCK_SECONDS)
    taken = (
        Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.PENDING, next_attempt_at__lte=now + CLAIM_SLACK)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lte=now))
        .update(locked_until=lease)
    )
    if not taken:
        return None
    return Delivery.objects.select_related("event", "endpoint").get(pk=delivery_id)


def _rate_limited(endpoint: Endpoint, now: datetime) -> float | None:
    """Seconds to wait if the endpoint's per-second limit is used up (a one-second window in the cache)."""
    limit = endpoint.rate_limit_per_second
    if not limit:
        return None
    second = int(now.timestamp())
    key = f"{settings.TESSERA_COUNTERS_NAMESPACE}:webhooks:rate:{endpoint.pk}:{second}"
    try:
        cache.add(key, 0, timeout=5)
        used = cache.incr(key)
    except Exception:  # the cache is down: deliver rather than stall
        logger.warning("webhooks: rate-limit cache unavailable; delivering to %s unthrottled", endpoint.pk)
        return None
    if used <= limit:
        return None
    return (second + 1 - now.timestamp()) + random.uniform(0, 1.0)


# --- the request ------------------------------------------------------------------------------------------


def _masked(headers: dict[str, str], secret_names: set[str]) -> dict[str, str]:
    return {k: ("••••••" if k in secret_names else v) for k, v in headers.items()}


def http_post(url: str, *, headers: dict[str, str], body: str, timeout: float) -> Response:
    """POST through the SSRF guard; never follows redirects. Errors become Response.error."""
    from webhooks.inspector import inspector_deliver

    answer = inspector_deliver(url=url, headers=headers, body=body)
    if answer is not None:
        return Response(status=answer.status, headers=dict(answer.headers), body=answer.body)
    try:
        target = ssrf.target_resolve(url)
    except ssrf.AddressRefused as exc:
        return Response(error=exc.reason)
    conn = ssrf.connection_open(target, timeout=timeout)
    try:
        conn.request("POST", target.path, body=body.encode(), headers=headers)
        raw = conn.getresponse()
        kept = raw.read(RESPONSE_BODY_KEPT + 1)
        text = kept[:RESPONSE_BODY_KEPT].decode("utf-8", errors="replace")
        if len(kept) > RESPONSE_BODY_KEPT:
            text += "\n… (truncated)"
        response_headers = {k: v[:1000] for k, v in list(raw.getheaders())[:RESPONSE_HEADERS_KEPT]}
        return Response(status=raw.status, headers=response_headers, body=_clean(text))
    except ssrf.AddressRefused as exc:
        return Response(error=exc.reason)
    except TimeoutError:
        return Response(error=f"Timed out after {timeout:g} s")
    except ssl.SSLError as exc:
        return Response(error=f"TLS error: {exc.reason or exc}"[:500])
    except ConnectionRefusedError:
        return Response(error="Connection refused")
    except (OSError, http.client.HTTPException, ValueError) as exc:  # ValueError: a header http.client refuses
        return Response(error=f"{type(exc).__name__}: {exc}"[:500])
    finally:
        conn.close()


# --- one attempt -----------------------------------------------------------------------------------------


def _finish(delivery: Delivery, **fields) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(locked_until=None, **fields)


def _streak_update(endpoint: Endpoint, *, failed: bool, at: datetime) -> None:
    if not failed:
        if endpoint.failing_since is not None:
            Endpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
        return
    Endpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=at)
    since = Endpoint.objects.filter(pk=endpoint.pk).values_list("failing_since", flat=True).first()
    if since is not None and at - since >= settings.TESSERA_WEBHOOK_DISABLE_AFTER:
        days = settings.TESSERA_WEBHOOK_DISABLE_AFTER.days
        endpoint_disable_for_failures(endpoint=endpoint, reason=f"Every delivery failed for {days} days")


def delivery_attempt(delivery_id: int, *, now: datetime | None = None) -> Outcome:
    """Make the next attempt of one delivery (in the current workspace), if it is still due."""
    now = now or timezone.now()
    delivery = delivery_claim(delivery_id, now=now)
    if delivery is None:
        return Outcome("skipped")
    endpoint, event = delivery.endpoint, delivery.event
    if not endpoint.enabled:  # paused by an Admin: waits, unscheduled, until the endpoint is enabled again
        _finish(delivery, next_attempt_at=None)
        return Outcome("skipped")
    if not event.payload:
        _finish(delivery, status=Delivery.Status.FAILED, last_error="Payload past retention", completed_at=now)
        return Outcome("failed")
    wait = _rate_limited(endpoint, now)
    if wait is not None:
        _finish(delivery, next_attempt_at=now + timedelta(seconds=wait))
        return Outcome("deferred", retry_in=wait)

    body = event_body(event)
    try:
        signed = headers_signed(
            secrets_valid=endpoint_secrets_valid(endpoint, now=now), msg_id=event.pk, timestamp=now, body=body
        )
    except (SecretUndecryptable, ValueError) as exc:  # never send unsigned; say why in the log
        error = f"Cannot sign: {exc}"[:500]
        _finish(delivery, status=Delivery.Status.FAILED, last_error=error, completed_at=now)
        logger.error("webhooks: delivery %s not sent: %s", delivery.pk, error)
        return Outcome("failed")

    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Tessera-Event-Version": ENVELOPE_VERSION,
        **endpoint.headers,
        **signed,
    }
    number = delivery.attempts + 1
    timeout = float(settings.TESSERA_WEBHOOK_TIMEOUT_SECONDS)
    started = timezone.now()
    clock = time.monotonic()
    response = http_post(endpoint.url, headers=headers, body=body, timeout=timeout)
    duration_ms = int((time.monotonic() - clock) * 1000)
    status = response.status
    ok = status is not None and 200 <= status < 300
    error = response.error
    if status is not None and 300 <= status < 400:
        error = f"Redirect to {_header(response.headers, 'Location') or '?'} not followed"
    elif status is not None and not ok:
        error = f"HTTP {status}"
    request_body = body if len(body) <= REQUEST_BODY_KEPT else body[:REQUEST_BODY_KEPT] + "\n… (truncated)"
    finished = timezone.now()
    with transaction.atomic():
        Attempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=started,
            duration_ms=duration_ms,
            request_url=endpoint.url,
            request_headers=_masked(headers, set(endpoint.headers)),
            request_body=_clean(request_body),
            response_status=status,
            response_headers=response.headers,
            response_body=response.body,
            error=error[:500],
        )
        common = {"attempts": number, "last_status_code": status, "last_error": error[:500]}
        if ok:
            _finish(delivery, status=Delivery.Status.SUCCEEDED, completed_at=finished, **common)
            _streak_update(endpoint, failed=False, at=finished)
            return Outcome("succeeded", status_code=status)
        if status == 410:
            _finish(delivery, status=Delivery.Status.FAILED, completed_at=finished, **common)
            endpoint_disable_for_failures(endpoint=endpoint, reason="The endpoint answered 410 Gone")
            return Outcome("failed", status_code=status)
        delay = retry_delay(number - delivery.schedule_start)
        if delay is not None and status in (429, 503):
            delay = retry_after_seconds(_header(response.headers, "Retry-After"), now=finished) or delay
        if delay is None:
            _finish(delivery, status=Delivery.Status.FAILED, completed_at=finished, **common)
            outcome = Outcome("failed", status_code=status)
        else:
            _finish(delivery, next_attempt_at=finished + timedelta(seconds=delay), **common)
            outcome = Outcome("retrying", retry_in=delay, status_code=status)
        _streak_update(endpoint, failed=True, at=finished)
    return outcome
