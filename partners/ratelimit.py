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

The buckets themselves are core.token_buckets'; the limits per plan are billing's.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from api.problems import problem_http_response, service_error_http_response
from billing.entitlements import api_calls_check, api_rate_limits
from core.errors import LimitExceeded
from core.request_context import client_ip
from core.token_buckets import EPSILON, Limit, bucket_name, buckets_now, token_buckets
from core.workspace_memo import workspace_generation_clear, workspace_generation_set
from tenants.hostcache import host_entry_confirm

logger = logging.getLogger(__name__)

API_PATH_PREFIX = "/api/"


# The console's own calls (session + CSRF), per user, on any plan: generous, only against runaways.
SESSION_LIMIT = Limit(rate=50, burst=100)
# Requests without valid credentials, per client address (they end in 401 anyway).
ANONYMOUS_LIMIT = Limit(rate=5, burst=20)


def _scaled(limit: Limit) -> Limit:
    return limit.scaled(getattr(settings, "TESSERA_RATE_LIMIT_SCALE", 1))


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


def ratelimit_take(*, tenant, key=None, user=None, ip: str | None = None, now: float | None = None) -> Decision:
    """Take one request from the buckets of whoever is calling: an API key (its bucket and its
    workspace's), else a console user, else the client address."""
    now = buckets_now() if now is None else now
    generation_of = count = None
    if key is not None:
        from partners.usage import usage_counters

        generation_of = tenant.pk
        count = usage_counters().call_counter(tenant_id=tenant.pk, key_id=key.pk, day=_utc_today())
        limits = api_rate_limits(tenant)
        buckets = [
            ("key", bucket_name(f"{{w{tenant.pk}}}", "key", key.pk), limits["key"]),
            ("workspace", bucket_name(f"{{w{tenant.pk}}}", "workspace"), limits["workspace"]),
        ]
    elif user is not None:
        generation_of = tenant.pk  # confirms a workspace remembered for the host (tenants.hostcache)
        buckets = [("user", bucket_name(f"{{w{tenant.pk}}}", "user", user.pk), _scaled(SESSION_LIMIT))]
    else:
        buckets = [("ip", bucket_name("ip", ip or "unknown"), _scaled(ANONYMOUS_LIMIT))]
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


# Each process re-reads a capped workspace's calls this month at most this often: the monthly cap is
# checked on every call without a database read per call (it may be passed by a few seconds' calls).
MONTH_CALLS_SECONDS = 10.0
_month_calls: dict[object, tuple[float, int]] = {}


def _calls_this_month(tenant) -> int:
    now = time.monotonic()
    cached = _month_calls.get(tenant.pk)
    if cached is not None and cached[0] > now:
        return cached[1]
    from partners.usage import api_calls_this_month

    used = api_calls_this_month(tenant=tenant)
    _month_calls[tenant.pk] = (now + MONTH_CALLS_SECONDS, used)
    return used


def _utc_today():
    """The usage day (wall clock, as partners.usage counts: `clock` is the buckets' own)."""
    return datetime.now(UTC).date()


def throttled_response(request: HttpRequest, decision: Decision) -> HttpResponse:
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
        try:
            response = self.get_response(request)
        finally:
            workspace_generation_clear()
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
        from partners.auth import api_key_confirm, api_key_from_request

        key = api_key_from_request(request)
        user = None
        if key is None:
            user = request.user if getattr(request, "user", None) and request.user.is_authenticated else None
        decision = ratelimit_take(tenant=request.tenant, key=key, user=user, ip=client_ip(request))
        # A workspace or key remembered from an earlier request is trusted only if the workspace's
        # generation, which the take just read, is still the one it was read under.
        refused = host_entry_confirm(request, decision.key_generation)
        if refused == "unknown_host":
            return problem_http_response(request, 404, "not_found", "No workspace at this address.")
        if refused == "inactive":
            return problem_http_response(request, 403, "forbidden", "This workspace is suspended.")
        if key is not None:
            api_key_confirm(request, decision.key_generation)
        request.tessera_ratelimit = decision
        # what the view asks of core.workspace_memo is trusted under this generation
        workspace_generation_set(request.tenant.pk, decision.key_generation)
        if not decision.allowed:
            return throttled_response(request, decision)
        if key is not None:
            try:
                api_calls_check(request.tenant, used=lambda: _calls_this_month(request.tenant))
            except LimitExceeded as exc:
                return service_error_http_response(request, exc)
        return None
