"""Rate limits of the API: token buckets per key and per workspace (sized by the workspace's plan),
per console user and per client address; the RateLimit headers; the 429 answer.

A token bucket holds up to `burst` requests and refills at `rate` per second, so a client may send a
burst at once and then keep to the rate. An API-key request takes one token from its key's bucket and
one from its workspace's (all its keys together); it is served only if both have one.

Headers (on every answer of an /api/ view, 429s included), after the IETF draft
draft-ietf-httpapi-ratelimit-headers-10 (structured fields; `q` quota, `w` window in seconds, `r`
remaining, `t` seconds until the quota is whole again) plus the de-facto `X-RateLimit-*` trio of the
tightest policy (`X-RateLimit-Reset` in Unix seconds, as GitHub and most clients read it):

    RateLimit-Policy: "key";q=20;w=2, "workspace";q=40;w=2
    RateLimit: "key";r=19;t=1, "workspace";r=39;t=1
    X-RateLimit-Limit: 20   X-RateLimit-Remaining: 19   X-RateLimit-Reset: 1767225601

A refused request gets 429 `rate_limited` (problem+json) with `Retry-After`: the seconds until one
request fits; the exhausted policy's `t` then names the same moment, as the draft asks.

Where buckets live is a setting (TESSERA_RATE_LIMIT_BACKEND): Redis in SaaS (one Lua script checks
and takes from both buckets atomically, one round trip), this process's memory on the desktop.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from tenants.models import Tenant

logger = logging.getLogger(__name__)

API_PATH_PREFIX = "/api/"
# Refills are float arithmetic on clock readings: a token 1e-9 short is a whole token.
EPSILON = 1e-6


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens added per second: the sustained requests per second
    burst: int  # bucket size: requests that may arrive at once

    @property
    def window(self) -> int:
        """Seconds an empty bucket takes to fill: the policy's window `w`."""
        return max(1, math.ceil(self.burst / self.rate))

    def scaled(self, factor: float) -> Limit:
        return self if factor == 1 else Limit(self.rate * factor, max(1, round(self.burst * factor)))


# The one table of API rate limits, per plan: each key, and the workspace (all its keys together).
PLAN_LIMITS: dict[str, dict[str, Limit]] = {
    Tenant.Plan.FREE: {"key": Limit(rate=10, burst=20), "workspace": Limit(rate=20, burst=40)},
    Tenant.Plan.TEAM: {"key": Limit(rate=25, burst=50), "workspace": Limit(rate=50, burst=100)},
    Tenant.Plan.BUSINESS: {"key": Limit(rate=100, burst=200), "workspace": Limit(rate=200, burst=400)},
    Tenant.Plan.ENTERPRISE: {"key": Limit(rate=500, burst=1000), "workspace": Limit(rate=1000, burst=2000)},
}
# The console's own calls (session + CSRF), per user, on any plan: generous, only against runaways.
SESSION_LIMIT = Limit(rate=50, burst=100)
# Requests without valid credentials, per client address (they end in 401 anyway).
ANONYMOUS_LIMIT = Limit(rate=5, burst=20)


def plan_limits(plan: str) -> dict[str, Limit]:
    factor = getattr(settings, "TESSERA_RATE_LIMIT_SCALE", 1)
    return {name: limit.scaled(factor) for name, limit in PLAN_LIMITS.get(plan, PLAN_LIMITS[Tenant.Plan.FREE]).items()}


def _scaled(limit: Limit) -> Limit:
    return limit.scaled(getattr(settings, "TESSERA_RATE_LIMIT_SCALE", 1))


# --- where the buckets live ---------------------------------------------------------------------


@dataclass(frozen=True)
class Taken:
    allowed: bool
    levels: list[float]
    key_generation: str | None = None  # the workspace's API-key generation, when asked for and kept
    counted: bool = False  # the call was counted in the usage counters on the way


class LocalTokenBuckets:
    """Buckets in this process's memory: the desktop, where one process serves the one business."""

    MAX_BUCKETS = 10_000

    def __init__(self):
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float, float]] = {}  # name -> (tokens, stamp, full at)

    def take(self, buckets: Sequence[tuple[str, Limit]], *, now: float, cost: int = 1) -> tuple[bool, list[float]]:
        with self._lock:
            levels = []
            for name, limit in buckets:
                tokens, stamp, _ = self._buckets.get(name, (limit.burst, now, now))
                if now > stamp:  # a clock that stepped back never refills
                    tokens, stamp = min(limit.burst, tokens + (now - stamp) * limit.rate), now
                levels.append((tokens, stamp))
            allowed = all(tokens >= cost - EPSILON for tokens, _ in levels)
            if allowed:
                levels = [(tokens - cost, stamp) for tokens, stamp in levels]
            for (name, limit), (tokens, stamp) in zip(buckets, levels, strict=True):
                self._buckets[name] = (tokens, stamp, stamp + (limit.burst - tokens) / limit.rate)
            if len(self._buckets) > self.MAX_BUCKETS:
                self._prune(now)
        return allowed, [tokens for tokens, _ in levels]

    def take_counted(self, buckets, *, now: float, cost: int = 1, generation_of=None, count=None) -> Taken:
        """`take`; in-process buckets neither keep key generations nor count usage (see Redis's)."""
        allowed, levels = self.take(buckets, now=now, cost=cost)
        return Taken(allowed, levels)

    def key_generation(self, tenant_id) -> str | None:
        return None  # no key caching on the desktop: one process, one business, a cheap SQLite read

    def key_generation_bump(self, tenant_id) -> None:
        pass

    def _prune(self, now: float) -> None:
        # A full bucket is the same as no bucket.
        for name in [n for n, (_, _, full_at) in self._buckets.items() if full_at <= now]:
            del self._buckets[name]


# KEYS: the buckets, then optionally (ARGV[3] says which) a workspace's API-key generation to read
# and a usage hash to count the call in (field ARGV[4]); ARGV: now, cost, the flags, the usage field,
# then rate and burst of each bucket. Takes `cost` from every bucket or from none. Returns allowed, the
# levels, then the generation ('' if not asked). Numbers go back as strings: Redis would truncate Lua
# numbers to integers.
TAKE_SCRIPT = """
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local flags = ARGV[3]
local n = #KEYS
local generation = ''
if flags == 'gu' or flags == 'u' then
  redis.call('HINCRBY', KEYS[n], ARGV[4], 1)
  n = n - 1
end
if flags == 'gu' or flags == 'g' then
  generation = redis.call('GET', KEYS[n]) or '0'
  n = n - 1
end
local levels, stamps = {}, {}
local allowed = 1
for i = 1, n do
  local rate, burst = tonumber(ARGV[2 * i + 3]), tonumber(ARGV[2 * i + 4])
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'stamp')
  local tokens = tonumber(state[1]) or burst
  local stamp = tonumber(state[2]) or now
  if now > stamp then
    tokens = math.min(burst, tokens + (now - stamp) * rate)
    stamp = now
  end
  levels[i], stamps[i] = tokens, stamp
  if tokens < cost - 1e-6 then allowed = 0 end
end
local out = {allowed}
for i = 1, n do
  local rate, burst = tonumber(ARGV[2 * i + 3]), tonumber(ARGV[2 * i + 4])
  if allowed == 1 then levels[i] = levels[i] - cost end
  redis.call('HSET', KEYS[i], 'tokens', string.format('%.17g', levels[i]), 'stamp', string.format('%.17g', stamps[i]))
  -- once full again the bucket is the same as no bucket: let Redis forget it
  redis.call('PEXPIRE', KEYS[i], math.ceil((burst - levels[i]) / rate * 1000) + 1000)
  out[i + 1] = string.format('%.17g', levels[i])
end
out[n + 2] = generation
return out
"""


class RedisTokenBuckets:
    """Buckets in Redis, shared by every server process (SaaS)."""

    def __init__(self):
        self._scripts: dict[int, object] = {}

    def take(self, buckets: Sequence[tuple[str, Limit]], *, now: float, cost: int = 1) -> tuple[bool, list[float]]:
        taken = self.take_counted(buckets, now=now, cost=cost)
        return taken.allowed, taken.levels

    def take_counted(
        self,
        buckets: Sequence[tuple[str, Limit]],
        *,
        now: float,
        cost: int = 1,
        generation_of=None,
        count: tuple[str, str] | None = None,
    ) -> Taken:
        """`take`, and in the same round trip read the key generation of workspace `generation_of`
        (partners.keycache) and count a call in `count` = (hash, field) of the usage counters."""
        from partners.redis_connection import redis_client

        client = redis_client()
        script = self._scripts.get(id(client))
        if script is None:
            script = self._scripts[id(client)] = client.register_script(TAKE_SCRIPT)
        keys = [name for name, _ in buckets]
        flags = ""
        if generation_of is not None:
            keys.append(self._generation_name(generation_of))
            flags += "g"
        if count is not None:
            keys.append(count[0])
            flags += "u"
        args: list = [repr(now), cost, flags, count[1] if count else ""]
        for _, limit in buckets:
            args += [repr(float(limit.rate)), limit.burst]
        out = script(keys=keys, args=args)
        generation = out[-1].decode() if generation_of is not None else None
        return Taken(bool(int(out[0])), [float(level) for level in out[1:-1]], generation, count is not None)

    @staticmethod
    def _generation_name(tenant_id) -> str:
        return _bucket_name(f"{{w{tenant_id}}}", "keys-generation")

    def key_generation(self, tenant_id) -> str | None:
        from partners.redis_connection import redis_client

        value = redis_client().get(self._generation_name(tenant_id))
        return value.decode() if value is not None else "0"

    def key_generation_bump(self, tenant_id) -> None:
        from partners.redis_connection import redis_client

        redis_client().incr(self._generation_name(tenant_id))


_backend_cache: dict[str, object] = {}


def token_buckets():
    path = settings.TESSERA_RATE_LIMIT_BACKEND
    backend = _backend_cache.get(path)
    if backend is None:
        backend = _backend_cache[path] = import_string(path)()
    return backend


# --- decisions and headers ----------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyState:
    name: str
    limit: Limit
    tokens: float  # left after this request

    @property
    def remaining(self) -> int:
        return max(0, math.floor(self.tokens + EPSILON))

    @property
    def reset(self) -> int:
        """Seconds until the bucket is full again."""
        return math.ceil(max(0.0, self.limit.burst - self.tokens - EPSILON) / self.limit.rate)

    def wait(self, cost: int = 1) -> int:
        """Seconds until `cost` tokens are there (0 if they are)."""
        return 0 if self.tokens >= cost - EPSILON else max(1, math.ceil((cost - self.tokens) / self.limit.rate))


@dataclass(frozen=True)
class Decision:
    allowed: bool
    policies: tuple[PolicyState, ...]
    now: float
    key: object = None  # the ApiKey the request was counted against, if any
    key_generation: str | None = None  # its workspace's key generation (partners.keycache), if known
    usage_counted: bool = False  # the call is already in the usage counters (errors are counted later)

    @property
    def retry_after(self) -> int | None:
        return None if self.allowed else max(p.wait() for p in self.policies)

    @property
    def binding(self) -> PolicyState:
        """The policy that refused the request, or the one closest to refusing the next."""
        if not self.allowed:
            return max(self.policies, key=lambda p: p.wait())
        return min(self.policies, key=lambda p: p.remaining)

    def _reset_of(self, policy: PolicyState) -> int:
        return policy.wait() if not self.allowed and policy.wait() else policy.reset

    def headers(self) -> dict[str, str]:
        binding = self.binding
        headers = {
            "RateLimit-Policy": ", ".join(f'"{p.name}";q={p.limit.burst};w={p.limit.window}' for p in self.policies),
            "RateLimit": ", ".join(f'"{p.name}";r={p.remaining};t={self._reset_of(p)}' for p in self.policies),
            "X-RateLimit-Limit": str(binding.limit.burst),
            "X-RateLimit-Remaining": str(binding.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.now + self._reset_of(binding))),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


# The clock buckets run on; tests replace it to watch buckets refill.
clock = time.time


def _bucket_name(*parts) -> str:
    # {…} is a Redis Cluster hash tag: a workspace's buckets share a slot, so one script may take both.
    return ":".join([settings.TESSERA_COUNTERS_NAMESPACE, "rl", *map(str, parts)])


def ratelimit_take(*, tenant, key=None, user=None, ip: str | None = None, now: float | None = None) -> Decision:
    """Take one request from the buckets of whoever is calling: an API key (its bucket and its
    workspace's), else a console user, else the client address."""
    now = clock() if now is None else now
    generation_of = count = None
    if key is not None:
        from partners.usage import usage_counters

        generation_of = tenant.pk
        count = usage_counters().call_counter(tenant_id=tenant.pk, key_id=key.pk, day=_utc_today())
        limits = plan_limits(tenant.plan)
        buckets = [
            ("key", _bucket_name(f"{{w{tenant.pk}}}", "key", key.pk), limits["key"]),
            ("workspace", _bucket_name(f"{{w{tenant.pk}}}", "workspace"), limits["workspace"]),
        ]
    elif user is not None:
        buckets = [("user", _bucket_name(f"{{w{tenant.pk}}}", "user", user.pk), _scaled(SESSION_LIMIT))]
    else:
        buckets = [("ip", _bucket_name("ip", ip or "unknown"), _scaled(ANONYMOUS_LIMIT))]
    try:
        taken = token_buckets().take_counted(
            [(name, limit) for _, name, limit in buckets], now=now, generation_of=generation_of, count=count
        )
    except Exception:
        # Failing open: an unreachable Redis must not take the API down with it.
        logger.exception("rate limiter unavailable; request let through")
        return Decision(True, tuple(PolicyState(p, limit, limit.burst) for p, _, limit in buckets), now, key)
    policies = tuple(PolicyState(p, limit, level) for (p, _, limit), level in zip(buckets, taken.levels, strict=True))
    return Decision(taken.allowed, policies, now, key, taken.key_generation, taken.counted)


def _utc_today():
    """The usage day (wall clock, as partners.usage counts: `clock` is the buckets' own)."""
    return datetime.now(UTC).date()


def throttled_response(request: HttpRequest, decision: Decision) -> HttpResponse:
    from partners.api.problems import problem_http_response

    policy = decision.binding
    who = {"key": "this API key", "workspace": "this workspace's API keys together", "user": "your account"}.get(
        policy.name, "requests without valid credentials from your address"
    )
    return problem_http_response(
        request,
        429,
        "rate_limited",
        f"Too many requests for {who}: at most {policy.limit.burst} at once and "
        f"{policy.limit.rate:g} per second after that. Retry in {decision.retry_after} s.",
        policy=policy.name,
        retry_after=decision.retry_after,
    )


class ApiRateLimitMiddleware:
    """For /api/ views: refuse a request over its limits with 429 before the view runs, put the
    rate-limit headers on every answer, and count API-key calls for usage (partners.usage)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        decision: Decision | None = getattr(request, "tessera_ratelimit", None)
        if decision is not None:
            for name, value in decision.headers().items():
                response[name] = value
            if decision.key is not None:
                from partners.usage import usage_record

                error = response.status_code >= 400
                if error or not decision.usage_counted:
                    calls = 0 if decision.usage_counted else 1
                    usage_record(tenant=request.tenant, key=decision.key, error=error, calls=calls)
        return response

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        # Only views that resolved: on a workspace's host, so its keys and plan are at hand.
        if not request.path_info.startswith(API_PATH_PREFIX) or getattr(request, "tenant", None) is None:
            return None
        from config.middleware import client_ip
        from partners.auth import api_key_confirm, api_key_from_request

        key = api_key_from_request(request)
        user = None
        if key is None:
            user = request.user if getattr(request, "user", None) and request.user.is_authenticated else None
        decision = ratelimit_take(tenant=request.tenant, key=key, user=user, ip=client_ip(request))
        if key is not None:
            # A key remembered from an earlier request is trusted only if its workspace's key
            # generation, which the take just read, is still the one it was read under.
            api_key_confirm(request, decision.key_generation)
        request.tessera_ratelimit = decision
        return None if decision.allowed else throttled_response(request, decision)
