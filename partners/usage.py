"""API usage metering: calls and errors per key per UTC day, kept in partners.ApiUsage for billing
and the console's chart.

Counting must cost next to nothing per request, so a request only bumps a counter — in SaaS inside
the rate limiter's Redis round trip (one more HINCRBY only for an error answer), a dict under a lock
in this process on the desktop (the setting TESSERA_USAGE_BACKEND picks) — and `usage_flush()` moves
the counts into ApiUsage: a Celery beat task every minute for every workspace (partners.tasks), the
console before it draws the chart, and on the desktop also the request path itself every
TESSERA_USAGE_FLUSH_SECONDS (its counters live in the web process, which the worker cannot see).

A flush reads the counts, adds them to ApiUsage in one transaction and, once that has committed,
subtracts exactly what it wrote, so calls counted meanwhile stay for the next flush and a failed
write loses nothing. One flush per workspace at a time (a lock); a crash between the commit and the
subtraction would count that batch twice — the one imprecision, chosen over losing calls.

`calls` counts every request made with a key (refused ones included); `errors` those answered 4xx
or 5xx. A key that was deleted before its counts were flushed is skipped.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum
from django.utils.module_loading import import_string

from billing.ledger import usage_ledger_add
from core.redis_client import redis_client
from partners.models import ApiKey, ApiUsage
from tenants.runtime import workspace_current

logger = logging.getLogger(__name__)

# (day, key id) -> [calls, errors]
Counts = dict[tuple[date, int], list[int]]


class LocalUsageCounters:
    """Counters in this process's memory (the desktop). Flushed from the request path every
    TESSERA_USAGE_FLUSH_SECONDS, since no other process can reach them."""

    def __init__(self):
        self._lock = threading.Lock()
        self._flushing: dict[tuple, threading.Lock] = {}
        self._counts: dict[tuple, Counts] = {}  # (namespace, tenant id) -> counts
        self._last_flush = time.monotonic()

    @staticmethod
    def _scope(tenant_id) -> tuple:
        return (settings.TESSERA_COUNTERS_NAMESPACE, tenant_id)

    def add(self, *, tenant_id, key_id: int, day: date, error: bool, calls: int = 1) -> None:
        with self._lock:
            row = self._counts.setdefault(self._scope(tenant_id), {}).setdefault((day, key_id), [0, 0])
            row[0] += calls
            row[1] += int(error)

    def call_counter(self, *, tenant_id, key_id: int, day: date) -> None:
        return None  # the rate limiter cannot count for us: add() does, after the answer

    def wants_flush(self) -> bool:
        return time.monotonic() - self._last_flush >= getattr(settings, "TESSERA_USAGE_FLUSH_SECONDS", 30)

    @contextlib.contextmanager
    def flush_lock(self, tenant_id) -> Iterator[bool]:
        with self._lock:
            lock = self._flushing.setdefault(self._scope(tenant_id), threading.Lock())
        held = lock.acquire(blocking=False)
        try:
            yield held
        finally:
            if held:
                self._last_flush = time.monotonic()
                lock.release()

    def pending(self, tenant_id) -> Counts:
        with self._lock:
            return {k: list(v) for k, v in self._counts.get(self._scope(tenant_id), {}).items()}

    def settle(self, tenant_id, written: Counts) -> None:
        with self._lock:
            counts = self._counts.get(self._scope(tenant_id), {})
            for k, (calls, errors) in written.items():
                row = counts.get(k)
                if row is None:
                    continue
                row[0] -= calls
                row[1] -= errors
                if row[0] <= 0 and row[1] <= 0:
                    del counts[k]


# Subtract what a flush wrote; drop fields that reach zero so the hash stays small.
SETTLE_SCRIPT = """
for i = 1, #ARGV, 2 do
  if redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return 1
"""
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisUsageCounters:
    """Counters in Redis (SaaS): one hash per workspace, fields `<day>:<key id>:c|e`."""

    LOCK_SECONDS = 120

    def __init__(self):
        self._scripts: dict[tuple[int, str], object] = {}

    def _script(self, client, source: str):
        script = self._scripts.get((id(client), source))
        if script is None:
            script = self._scripts[(id(client), source)] = client.register_script(source)
        return script

    @staticmethod
    def _hash(tenant_id) -> str:
        return f"{settings.TESSERA_COUNTERS_NAMESPACE}:usage:{{w{tenant_id}}}"

    @staticmethod
    def _client():
        return redis_client()

    def add(self, *, tenant_id, key_id: int, day: date, error: bool, calls: int = 1) -> None:
        client, name, field = self._client(), self._hash(tenant_id), f"{day.isoformat()}:{key_id}"
        pipe = client.pipeline(transaction=False)  # one round trip, whatever it counts
        for kind, amount in (("c", calls), ("e", int(error))):
            if amount:
                pipe.hincrby(name, f"{field}:{kind}", amount)
        pipe.execute()

    def call_counter(self, *, tenant_id, key_id: int, day: date) -> tuple[str, str]:
        """(hash, field) the rate limiter's script bumps by one: a call counted in the round trip the
        request makes anyway (partners.ratelimit), so a successful call costs no second one."""
        return self._hash(tenant_id), f"{day.isoformat()}:{key_id}:c"

    def wants_flush(self) -> bool:
        return False  # Celery beat flushes every workspace (partners.tasks)

    @contextlib.contextmanager
    def flush_lock(self, tenant_id) -> Iterator[bool]:
        client, lock, token = self._client(), self._hash(tenant_id) + ":lock", uuid.uuid4().hex
        held = bool(client.set(lock, token, nx=True, ex=self.LOCK_SECONDS))
        try:
            yield held
        finally:
            if held:
                self._script(client, RELEASE_SCRIPT)(keys=[lock], args=[token])

    def pending(self, tenant_id) -> Counts:
        counts: Counts = {}
        for raw_field, raw_value in self._client().hgetall(self._hash(tenant_id)).items():
            try:
                day, key_id, kind = raw_field.decode().split(":")
                row = counts.setdefault((date.fromisoformat(day), int(key_id)), [0, 0])
                row[0 if kind == "c" else 1] += int(raw_value)
            except ValueError:
                logger.warning("usage counter field %r ignored", raw_field)
        return counts

    def settle(self, tenant_id, written: Counts) -> None:
        args: list = []
        for (day, key_id), amounts in written.items():
            for kind, amount in zip("ce", amounts, strict=True):
                if amount:
                    args += [f"{day.isoformat()}:{key_id}:{kind}", -amount]
        if args:
            client = self._client()
            self._script(client, SETTLE_SCRIPT)(keys=[self._hash(tenant_id)], args=args)


_backend_cache: dict[str, object] = {}


def usage_counters():
    path = settings.TESSERA_USAGE_BACKEND
    backend = _backend_cache.get(path)
    if backend is None:
        backend = _backend_cache[path] = import_string(path)()
    return backend


def usage_record(*, tenant, key: ApiKey, error: bool, calls: int = 1, now: datetime | None = None) -> None:
    """Count one API call of `key` (from the rate-limit middleware, after the answer is known);
    `calls=0` counts only the error of a call the rate limiter already counted."""
    day = (now or datetime.now(UTC)).astimezone(UTC).date()
    counters = usage_counters()
    try:
        counters.add(tenant_id=tenant.pk, key_id=key.pk, day=day, error=error, calls=calls)
        if counters.wants_flush():
            usage_flush(tenant=tenant)
    except Exception:
        logger.exception("API usage not counted")


def _usage_write(counts: Counts) -> Counts:
    """Add `counts` to ApiUsage; what was written (keys deleted meanwhile are dropped)."""
    live = set(ApiKey.objects.filter(pk__in={key_id for _, key_id in counts}).values_list("pk", flat=True))
    written: Counts = {}
    for (day, key_id), (calls, errors) in sorted(counts.items()):
        if key_id not in live or (calls <= 0 and errors <= 0):
            written[(day, key_id)] = [calls, errors]  # nothing to keep: settle it away
            continue
        updated = ApiUsage.objects.filter(key_id=key_id, day=day).update(
            calls=F("calls") + calls, errors=F("errors") + errors
        )
        if not updated:
            ApiUsage.objects.create(key_id=key_id, day=day, calls=calls, errors=errors)
        written[(day, key_id)] = [calls, errors]
    return written


def usage_flush(*, tenant=None) -> int:
    """Move the current workspace's pending counts into ApiUsage; the number of (key, day) rows."""
    tenant = tenant or workspace_current()
    counters = usage_counters()
    with counters.flush_lock(tenant.pk) as held:
        if not held:
            return 0  # another flush of this workspace is under way
        counts = counters.pending(tenant.pk)
        if not counts:
            return 0
        with transaction.atomic():
            written = _usage_write(counts)
            # The same calls into billing's ledger, in the same transaction: what is reported to the
            # Billing Meter later is exactly what was counted here (billing.ledger).
            usage_ledger_add(workspace=tenant, quantity=sum(calls for calls, _ in written.values() if calls > 0))
            transaction.on_commit(lambda: counters.settle(tenant.pk, written))
    return len(written)


def api_calls_this_month(*, tenant=None) -> int:
    """The workspace's API calls this calendar month (UTC), flushed and pending: what the plan's
    `api_calls_month` counts."""
    tenant = tenant or workspace_current()
    first = datetime.now(UTC).date().replace(day=1)
    flushed = ApiUsage.objects.filter(day__gte=first).aggregate(n=Sum("calls"))["n"] or 0
    try:
        counts = usage_counters().pending(tenant.pk)
    except Exception:  # Redis unreachable: the API keeps serving on what is flushed (as the rate limit does)
        logger.warning("usage counters unreachable: this month's calls counted without the pending ones")
        counts = {}
    pending = sum(max(0, calls) for (day, _), (calls, _) in counts.items() if day >= first)
    return flushed + pending
