"""Delivery attempts: claim due deliveries of an endpoint, sign, POST to the vetted address over a kept-alive
connection, log the attempts, and decide what comes next (done, retry on the schedule, give up, disable
the endpoint).

Rules (issue 4): 2xx is success; anything else, a redirect (never followed), a timeout or a refused
address is a failure. 410 Gone disables the endpoint. A throttling answer — 429, or 503 with
`Retry-After` — is not a failure (issue 14): it pauses the whole endpoint until `Retry-After` (the
rest of the batch, and every worker's claims, through a pause flag in the cache) and spends no step of
the retry schedule, nor counts towards disabling the endpoint; a delivery older than
TESSERA_WEBHOOK_DISABLE_AFTER is past that grace, and its throttling answers count as failures.
Other failures retry on TESSERA_WEBHOOK_RETRY_SCHEDULE with ±10 % jitter; an endpoint that has
failed continuously for TESSERA_WEBHOOK_DISABLE_AFTER is disabled and its Admins are told.

A worker claims deliveries by setting `locked_until` (a lease): a second task for the same delivery
finds it taken and does nothing, and a worker killed mid-attempt leaves a lease that runs out, after
which the sweeper hands the delivery to another worker. Delivery is therefore at-least-once.

Progress is recorded per delivery (issue 14, finding 12): each attempt's log row and the delivery's new
state commit as soon as the receiver has answered, so a worker killed mid-batch re-sends at most the
delivery it was waiting on, not the batch. The lease rolls: a claim holds its rows for one attempt's
time (TESSERA_WEBHOOK_TIMEOUT_SECONDS + LEASE_SLACK), and the worker extends it for the rows still
ahead before an attempt that could outlast it, so a killed worker's unsent rows are free again within
about one timeout, then the next sweep (TESSERA_WEBHOOK_SWEEP_SECONDS) hands them on. Receivers dedupe
on `webhook-id`: a crash duplicate arrives within lease + sweep (about 45 s by default) of the first
copy; a retry after a timed-out answer follows the retry schedule (docs/webhooks.md: keep ids 3 days).

Batches (`endpoint_deliveries_attempt`, what a worker's task runs): one task claims its delivery and up to
BATCH - 1 other due deliveries of the same endpoint (SKIP LOCKED: two workers never take the same row),
sends them one after the other over one kept-alive connection of the worker process, then writes the
attempt log and the deliveries' new state in one transaction per batch, and claims again until nothing
is due. `delivery_attempt` is the same for one delivery alone. The decrypted signing secrets are kept in
the process for SECRETS_CACHE_SECONDS and at most until the endpoint row changes (a rotation touches it).
"""

from __future__ import annotations

import email.utils
import http.client
import logging
import os
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Case, Q, Subquery, Value, When
from django.utils import timezone

from core import ssrf
from core.secrets_at_rest import SecretUndecryptable
from webhooks.catalogue import ENVELOPE_VERSION
from webhooks.models import Attempt, Delivery, Endpoint
from webhooks.outbox import event_body
from webhooks.selectors import endpoint_secrets_expiring
from webhooks.services import endpoint_disable_for_failures
from webhooks.signing import headers_signed

logger = logging.getLogger(__name__)

USER_AGENT = "Tessera-Webhooks/1.0 (+https://www.standardwebhooks.com)"
REQUEST_BODY_KEPT = 64 * 1024
RESPONSE_BODY_KEPT = 8 * 1024
RESPONSE_HEADERS_KEPT = 50
RETRY_AFTER_MAX = 24 * 3600
JITTER = 0.10
CLAIM_SLACK = timedelta(seconds=1)  # a task may run a moment before its countdown's end
LEASE_SLACK = 5.0  # seconds a claim holds a row beyond one attempt's timeout
BATCH = 50  # deliveries of one endpoint claimed, sent and written together
SECRETS_CACHE_SECONDS = 60.0
KEEP_ALIVE_IDLE_SECONDS = 20.0  # an idle kept-alive connection older than this is closed, not reused
KEEP_ALIVE_MAX = 32  # kept-alive connections per worker process
THROTTLE_DEFAULT_SECONDS = 30.0  # a 429 without Retry-After pauses the endpoint this long


@dataclass
class Response:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    error: str = ""


@dataclass(frozen=True)
class Outcome:
    """What the attempt led to. `retry_in`: seconds until the next attempt (None: no further one)."""

    result: str  # succeeded | retrying | failed | deferred | skipped | released | busy
    retry_in: float | None = None
    status_code: int | None = None
    delivery_id: int | None = None


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


def _claimable(now: datetime) -> Q:
    return Q(status=Delivery.Status.PENDING, next_attempt_at__lte=now + CLAIM_SLACK) & (
        Q(locked_until__isnull=True) | Q(locked_until__lte=now)
    )


def deliveries_claim(*, now: datetime, delivery_id: int, endpoint_id: str | None = None, limit: int = 1) -> list:
    """Take deliveries for one attempt each: with limit 1 the delivery `delivery_id` alone if it is pending,
    due and not held by a live worker; with a larger limit up to `limit` such deliveries of its endpoint
    (`endpoint_id`, or the one of `delivery_id`), `delivery_id` first. Rows another worker is claiming at
    the same moment are skipped, not waited for."""
    lease = now + _lease_length()
    due = Delivery.objects.filter(_claimable(now))
    if limit <= 1:
        due = due.filter(pk=delivery_id)
    else:
        if endpoint_id is None:
            endpoint_id = Subquery(Delivery.objects.filter(pk=delivery_id).values("endpoint_id")[:1])
        due = due.filter(endpoint_id=endpoint_id).order_by(
            Case(When(pk=delivery_id, then=Value(0)), default=Value(1)), "next_attempt_at", "pk"
        )
    with transaction.atomic():
        rows = list(due.select_related("event", "endpoint").select_for_update(skip_locked=True, of=("self",))[:limit])
        if rows:
            Delivery.objects.filter(pk__in=[d.pk for d in rows]).update(locked_until=lease)
    for d in rows:
        d.locked_until = lease
    return rows


def _lease_length() -> timedelta:
    """How long a claim holds its rows: one attempt (the timeout) and some slack, and never longer than
    TESSERA_WEBHOOK_LOCK_SECONDS. The worker extends it for the rows still ahead (`_lease_extend`)."""
    one = float(settings.TESSERA_WEBHOOK_TIMEOUT_SECONDS) + LEASE_SLACK
    return timedelta(seconds=min(one, float(settings.TESSERA_WEBHOOK_LOCK_SECONDS)))


def _lease_extend(rows: list[Delivery], *, now: datetime) -> None:
    """Before an attempt that could outlast the lease: hold the rows still ahead for another lease."""
    lease = now + _lease_length()
    Delivery.objects.filter(pk__in=[d.pk for d in rows]).update(locked_until=lease)
    for d in rows:
        d.locked_until = lease


def endpoint_busy(endpoint_id: str, *, now: datetime) -> bool:
    """Whether a live worker holds deliveries of the endpoint (leases not yet run out)."""
    return Delivery.objects.filter(
        endpoint_id=endpoint_id, locked_until__gt=now, status=Delivery.Status.PENDING
    ).exists()


def delivery_claim(delivery_id: int, *, now: datetime) -> Delivery | None:
    """Take the delivery for one attempt if it is pending, due and not held by a live worker."""
    rows = deliveries_claim(now=now, delivery_id=delivery_id)
    return rows[0] if rows else None


def _pause_key(endpoint_id: str) -> str:
    return f"{settings.TESSERA_COUNTERS_NAMESPACE}:webhooks:pause:{endpoint_id}"


def endpoint_pause(endpoint_id: str, *, until: datetime) -> None:
    """Hold every delivery of the endpoint until `until` (it answered with a throttling status)."""
    seconds = (until - timezone.now()).total_seconds()
    try:
        cache.set(_pause_key(endpoint_id), until.timestamp(), timeout=max(int(seconds) + 2, 1))
    except Exception:  # the cache is down: each delivery is still deferred on its own
        logger.warning("webhooks: could not pause %s (cache unavailable)", endpoint_id)


def _paused(endpoint: Endpoint, now: datetime) -> float | None:
    try:
        until = cache.get(_pause_key(endpoint.pk))
    except Exception:
        return None
    return until - now.timestamp() if until and until > now.timestamp() else None


def _rate_limited(endpoint: Endpoint, now: datetime) -> float | None:
    """Seconds to wait if the endpoint is paused (it throttled us) or its per-second limit is used up
    (a one-second window in the cache)."""
    paused = _paused(endpoint, now)
    if paused is not None:
        return paused
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


_secrets: dict[str, tuple[object, float, list[tuple[str, datetime | None]]]] = {}


def _secrets_signing(endpoint: Endpoint, *, now: datetime) -> list[str]:
    """The secrets to sign with now, newest first (webhooks.selectors.endpoint_secrets_expiring), decrypted
    once and kept in the process for SECRETS_CACHE_SECONDS while the endpoint row is unchanged (a
    rotation touches its `updated_at`); each one's expiry is checked on every use."""
    cached = _secrets.get(endpoint.pk)
    clock = time.monotonic()
    if cached is None or cached[0] != endpoint.updated_at or cached[1] < clock:
        kept = endpoint_secrets_expiring(endpoint, now=now)
        if len(_secrets) > 1000:
            _secrets.clear()
        _secrets[endpoint.pk] = cached = (endpoint.updated_at, clock + SECRETS_CACHE_SECONDS, kept)
    return [secret for secret, expires_at in cached[2] if expires_at is None or expires_at > now]


# --- the request ------------------------------------------------------------------------------------------


def _masked(headers: dict[str, str], secret_names: set[str]) -> dict[str, str]:
    return {k: ("••••••" if k in secret_names else v) for k, v in headers.items()}


# Kept-alive connections of this process: (scheme, host, port, timeout) → (connection, last used). A
# connection is pinned to an address the SSRF guard vetted and its peer was checked when it connected;
# it is reused only while that address is still among the host's vetted addresses.
_kept: dict[tuple, tuple[http.client.HTTPConnection, float]] = {}
_kept_pid = os.getpid()


def _kept_take(target: ssrf.Target, timeout: float) -> http.client.HTTPConnection | None:
    global _kept_pid
    if _kept_pid != os.getpid():  # a forked child: the parent's sockets are not ours
        _kept.clear()
        _kept_pid = os.getpid()
    entry = _kept.pop((target.scheme, target.host, target.port, timeout), None)
    if entry is None:
        return None
    conn, used = entry
    if conn.sock is None or time.monotonic() - used > KEEP_ALIVE_IDLE_SECONDS or conn.address not in target.addresses:
        conn.close()
        return None
    return conn


def _kept_put(target: ssrf.Target, timeout: float, conn: http.client.HTTPConnection) -> None:
    if len(_kept) >= KEEP_ALIVE_MAX:
        oldest = min(_kept, key=lambda k: _kept[k][1])
        _kept.pop(oldest)[0].close()
    _kept[(target.scheme, target.host, target.port, timeout)] = (conn, time.monotonic())


def _exchange(conn: http.client.HTTPConnection, target: ssrf.Target, headers: dict[str, str], body: bytes):
    """One request and response; returns (Response, whether the connection can carry another)."""
    conn.request("POST", target.path, body=body, headers=headers)
    raw = conn.getresponse()
    kept = raw.read(RESPONSE_BODY_KEPT + 1)
    text = kept[:RESPONSE_BODY_KEPT].decode("utf-8", errors="replace")
    if len(kept) > RESPONSE_BODY_KEPT:
        text += "\n… (truncated)"
    response_headers = {k: v[:1000] for k, v in list(raw.getheaders())[:RESPONSE_HEADERS_KEPT]}
    reusable = raw.isclosed() and not raw.will_close  # the whole body was read and the server keeps it open
    return Response(status=raw.status, headers=response_headers, body=_clean(text)), reusable


def http_post(
    url: str, *, headers: dict[str, str], body: str, timeout: float, target: ssrf.Target | None = None
) -> Response:
    """POST through the SSRF guard; never follows redirects. Errors become Response.error. `target`: the
    URL already resolved and vetted (ssrf.target_resolve) by the caller. The connection is kept alive
    for the next request to the same host while the server allows it."""
    from webhooks.inspector import inspector_deliver

    answer = inspector_deliver(url=url, headers=headers, body=body)
    if answer is not None:
        return Response(status=answer.status, headers=dict(answer.headers), body=answer.body)
    try:
        target = target or ssrf.target_resolve(url, https_required=settings.TESSERA_WEBHOOK_HTTPS_REQUIRED)
    except ssrf.AddressRefused as exc:
        return Response(error=exc.reason)
    conn = _kept_take(target, timeout)
    reused = conn is not None
    if conn is None:
        conn = ssrf.connection_open(target, timeout=timeout)
    reusable = False
    data = body.encode()
    try:
        try:
            response, reusable = _exchange(conn, target, headers, data)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
            conn.close()  # the server closed the idle connection: once more on a new one
            conn = ssrf.connection_open(target, timeout=timeout)
            response, reusable = _exchange(conn, target, headers, data)
        return response
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
        if reusable:
            _kept_put(target, timeout, conn)
        else:
            conn.close()


# --- attempts ----------------------------------------------------------------------------------------------


def _finish(delivery: Delivery, **fields) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(locked_until=None, **fields)


def _finish_all(deliveries: list[Delivery], **fields) -> None:
    if deliveries:
        Delivery.objects.filter(pk__in=[d.pk for d in deliveries]).update(locked_until=None, **fields)


def _streak_update(endpoint: Endpoint, *, failed_since: datetime | None, at: datetime) -> None:
    """After a batch: `failed_since` is the first failure after the batch's last success (None: the
    batch ended in a success)."""
    if failed_since is None:
        if endpoint.failing_since is not None:
            Endpoint.objects.filter(pk=endpoint.pk).update(failing_since=None)
        return
    if endpoint.failing_since is None:
        Endpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=failed_since)
    since = Endpoint.objects.filter(pk=endpoint.pk).values_list("failing_since", flat=True).first()
    if since is not None and at - since >= settings.TESSERA_WEBHOOK_DISABLE_AFTER:
        days = settings.TESSERA_WEBHOOK_DISABLE_AFTER.days
        endpoint_disable_for_failures(endpoint=endpoint, reason=f"Every delivery failed for {days} days")


def _state_write(done: list[Delivery]) -> None:
    """The attempted deliveries' new state, one UPDATE per distinct state (a batch of successes is one;
    each gets the batch's last completion time: its attempt row keeps the exact one). Cheaper than
    bulk_update's CASE per row."""
    groups: dict[tuple, list[Delivery]] = {}
    for d in done:
        retry_at = d.next_attempt_at if d.status == Delivery.Status.PENDING else None  # else left as it was
        key = (d.status, d.attempts, d.schedule_start, d.last_status_code, d.last_error, retry_at)
        groups.setdefault(key, []).append(d)
    for (status, attempts, schedule_start, code, error, retry_at), rows in groups.items():
        fields = {"status": status, "attempts": attempts, "last_status_code": code, "last_error": error}
        fields["schedule_start"] = schedule_start
        if retry_at is not None:
            fields["next_attempt_at"] = retry_at
        else:
            fields["completed_at"] = max((d.completed_at for d in rows if d.completed_at), default=None)
        Delivery.objects.filter(pk__in=[d.pk for d in rows]).update(locked_until=None, **fields)


def _progress_write(attempts: list[Attempt], done: list[Delivery]) -> None:
    """Put answered deliveries on record (their log rows and new state) before the batch goes on."""
    with transaction.atomic():
        Attempt.objects.bulk_create(attempts)
        _state_write(done)


def _batch_attempt(rows: list[Delivery], *, now: datetime, budget: float) -> list[Outcome]:
    """Attempt the claimed deliveries of one endpoint in order, then write the log and their state in one
    transaction. Deliveries not reached within `budget` seconds are released (result "released")."""
    endpoint = rows[0].endpoint
    if not endpoint.enabled:  # paused by an Admin: they wait, unscheduled, until the endpoint is enabled again
        _finish_all(rows, next_attempt_at=None)
        return [Outcome("skipped", delivery_id=d.pk) for d in rows]
    outcomes: list[Outcome] = []
    sendable = []
    for d in rows:
        if d.event.payload:
            sendable.append(d)
        else:
            outcomes.append(Outcome("failed", delivery_id=d.pk))
    _finish_all(
        [d for d in rows if not d.event.payload],
        status=Delivery.Status.FAILED,
        last_error="Payload past retention",
        completed_at=now,
    )
    if not sendable:
        return outcomes
    try:
        secrets_valid = _secrets_signing(endpoint, now=now)
    except SecretUndecryptable as exc:  # never send unsigned; say why in the log
        secrets_valid, cannot_sign = [], f"Cannot sign: {exc}"[:500]
    else:
        cannot_sign = "" if secrets_valid else "Cannot sign: An endpoint needs at least one valid secret to sign with."
    if cannot_sign:
        _finish_all(sendable, status=Delivery.Status.FAILED, last_error=cannot_sign, completed_at=now)
        logger.error("webhooks: %d deliveries to %s not sent: %s", len(sendable), endpoint.pk, cannot_sign)
        return outcomes + [Outcome("failed", delivery_id=d.pk) for d in sendable]

    timeout = float(settings.TESSERA_WEBHOOK_TIMEOUT_SECONDS)
    try:
        # once per batch; every connection is pinned to it
        target = ssrf.target_resolve(endpoint.url, https_required=settings.TESSERA_WEBHOOK_HTTPS_REQUIRED)
    except ssrf.AddressRefused:
        target = None  # http_post says why, per attempt (the inspector needs no address)
    custom = set(endpoint.headers)
    attempts: list[Attempt] = []
    done: list[Delivery] = []
    disable_reason = ""
    failed_since: datetime | None = endpoint.failing_since
    any_success = False
    started_batch = time.monotonic()
    deferred_until: datetime | None = None
    written = 0  # of `done` (and `attempts`, one each), already committed
    for i, delivery in enumerate(sendable):
        if i and time.monotonic() - started_batch > budget:
            break
        event = delivery.event
        started = timezone.now()
        if written < len(done):  # the answers so far are on record before the next request goes out
            _progress_write(attempts[written:], done[written:])
            written = len(done)
        if (delivery.locked_until - started).total_seconds() < timeout + 1:  # this attempt could outlast it
            _lease_extend(sendable[i:], now=started)
        wait = _rate_limited(endpoint, started)
        if wait is not None:
            deferred_until = started + timedelta(seconds=wait)
            break
        body = event_body(event)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Tessera-Event-Version": ENVELOPE_VERSION,
            **endpoint.headers,
            **headers_signed(secrets_valid=secrets_valid, msg_id=event.pk, timestamp=started, body=body),
        }
        number = delivery.attempts + 1
        clock = time.monotonic()
        response = http_post(endpoint.url, headers=headers, body=body, timeout=timeout, target=target)
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
        attempts.append(
            Attempt(
                delivery=delivery,
                number=number,
                started_at=started,
                duration_ms=duration_ms,
                request_url=endpoint.url,
                request_headers=_masked(headers, custom),
                request_body=_clean(request_body),
                response_status=status,
                response_headers=response.headers,
                response_body=response.body,
                error=error[:500],
            )
        )
        delivery.attempts, delivery.last_status_code, delivery.last_error = number, status, error[:500]
        delivery.locked_until = None
        done.append(delivery)
        if ok:
            delivery.status, delivery.completed_at = Delivery.Status.SUCCEEDED, finished
            outcomes.append(Outcome("succeeded", status_code=status, delivery_id=delivery.pk))
            any_success, failed_since = True, None
            continue
        throttled = status == 429 or (status == 503 and _header(response.headers, "Retry-After"))
        if throttled and finished - delivery.created_at < settings.TESSERA_WEBHOOK_DISABLE_AFTER:
            # Not a failure: the receiver asks for time. Pause the endpoint, keep the schedule's place.
            wait = retry_after_seconds(_header(response.headers, "Retry-After"), now=finished)
            wait = wait or THROTTLE_DEFAULT_SECONDS
            delivery.schedule_start += 1
            delivery.next_attempt_at = deferred_until = finished + timedelta(seconds=wait)
            endpoint_pause(endpoint.pk, until=deferred_until)
            outcomes.append(Outcome("deferred", retry_in=wait, status_code=status, delivery_id=delivery.pk))
            break
        if failed_since is None:
            failed_since = finished
        if status == 410:
            delivery.status, delivery.completed_at = Delivery.Status.FAILED, finished
            outcomes.append(Outcome("failed", status_code=status, delivery_id=delivery.pk))
            disable_reason = "The endpoint answered 410 Gone"
            break
        delay = retry_delay(number - delivery.schedule_start)
        if delay is not None and status in (429, 503):  # throttling past the grace: still its Retry-After
            delay = retry_after_seconds(_header(response.headers, "Retry-After"), now=finished) or delay
        if delay is None:
            delivery.status, delivery.completed_at = Delivery.Status.FAILED, finished
            outcomes.append(Outcome("failed", status_code=status, delivery_id=delivery.pk))
        else:
            delivery.next_attempt_at = finished + timedelta(seconds=delay)
            outcomes.append(Outcome("retrying", retry_in=delay, status_code=status, delivery_id=delivery.pk))

    untouched = sendable[len(done) :]
    with transaction.atomic():
        Attempt.objects.bulk_create(attempts[written:])
        _state_write(done[written:])
        if deferred_until is not None:  # paused or over the per-second limit: later, spending no attempt
            _finish_all(untouched, next_attempt_at=deferred_until)
            wait = (deferred_until - timezone.now()).total_seconds()
            outcomes += [Outcome("deferred", retry_in=max(wait, 0.0), delivery_id=d.pk) for d in untouched]
        else:
            _finish_all(untouched)  # out of time: another task takes them at once
            outcomes += [Outcome("released", retry_in=0.0, delivery_id=d.pk) for d in untouched]
        if disable_reason:
            endpoint_disable_for_failures(endpoint=endpoint, reason=disable_reason)
        elif done:
            if any_success and failed_since is None:
                _streak_update(endpoint, failed_since=None, at=timezone.now())
            elif failed_since is not None:
                _streak_update(endpoint, failed_since=failed_since, at=done[-1].completed_at or timezone.now())
    return outcomes


def delivery_attempt(delivery_id: int, *, now: datetime | None = None) -> Outcome:
    """Make the next attempt of one delivery (in the current workspace), if it is still due."""
    now = now or timezone.now()
    rows = deliveries_claim(now=now, delivery_id=delivery_id)
    if not rows:
        return Outcome("skipped", delivery_id=delivery_id)
    return _batch_attempt(rows, now=now, budget=float("inf"))[0]


def endpoint_deliveries_attempt(
    *,
    delivery_id: int,
    endpoint_id: str | None = None,
    batch: int = BATCH,
    budget: float | None = None,
    before_claim: Callable[[str], None] | None = None,
) -> tuple[list[Outcome], bool]:
    """Attempt `delivery_id` and every other due delivery of its endpoint, `batch` at a time, until none is
    due or `budget` seconds (default: half the lease) have passed. `before_claim(endpoint_id)` runs
    before every claim (webhooks.tasks clears the endpoint's wake-up flag there). Returns the outcomes
    and whether due deliveries may be left (out of time): the caller hands those on."""
    budget = settings.TESSERA_WEBHOOK_LOCK_SECONDS / 2 if budget is None else budget
    started = time.monotonic()
    outcomes: list[Outcome] = []
    if endpoint_id is None:
        endpoint_id = Delivery.objects.filter(pk=delivery_id).values_list("endpoint_id", flat=True).first()
        if endpoint_id is None:
            return outcomes, False
    while True:
        if before_claim is not None:
            before_claim(endpoint_id)
        now = timezone.now()
        if not outcomes and endpoint_busy(endpoint_id, now=now):
            # Another worker is on this endpoint; it claims what is due until nothing is, so this task
            # leaves it alone: one endpoint's backlog never holds more than one worker process while
            # other endpoints' events wait (issue 14, finding 11).
            return [Outcome("busy", delivery_id=delivery_id)], False
        rows = deliveries_claim(now=now, delivery_id=delivery_id, endpoint_id=endpoint_id, limit=batch)
        if not rows:
            return outcomes, False
        got = _batch_attempt(rows, now=now, budget=budget - (time.monotonic() - started))
        outcomes += got
        if any(o.result in ("deferred", "skipped") for o in got):  # rate-limited or paused: not now
            return outcomes, False
        if any(o.result == "released" for o in got) or time.monotonic() - started > budget:
            return outcomes, True
        # Claim again even after a short batch: a task woken meanwhile for this endpoint found it busy
        # and left its delivery to this one. The loop ends when a claim finds nothing due.
