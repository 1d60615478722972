"""Throttles of the anonymous account pages, where each request costs the server or a mailbox:
log-in guesses per e-mail from every address together (the lockout per e-mail + address alone let
guesses spread over many addresses run unlimited), password-reset requests per address and per
e-mail (mail and audit flooding), and sign-ups per address and for the whole public site (each
one clones a schema: 1–2 s of server time). Budgets are token buckets (core.token_buckets)."""

from __future__ import annotations

import logging

from django.conf import settings

from core.errors import Throttled
from core.token_buckets import Limit, bucket_name, buckets_take

logger = logging.getLogger(__name__)

LIMITS = {
    # 20 wrong passwords for one e-mail at once, then one a minute, from all addresses together
    ("login", "email"): Limit(rate=1 / 60, burst=20),
    ("reset", "ip"): Limit(rate=1 / 60, burst=5),
    ("reset", "email"): Limit(rate=1 / 600, burst=5),
    ("signup", "ip"): Limit(rate=1 / 600, burst=10),
    ("signup", "site"): Limit(rate=1 / 6, burst=30),
}


def _buckets(scope: str, what: str, keys: dict[str, str | None]) -> list:
    scale = settings.TESSERA_RATE_LIMIT_SCALE  # like every limit (tests and load tests turn it up)
    return [
        (bucket_name(f"{{{scope}}}", what, kind, (value or "unknown").lower()), LIMITS[(what, kind)].scaled(scale))
        for kind, value in keys.items()
    ]


def throttle_check(*, scope: str, what: str, keys: dict[str, str | None], cost: int = 1, message: str) -> None:
    """Take `cost` from each bucket (0: only look), or raise Throttled with the seconds to wait. A
    limiter that is down lets the request through (logged): the lockout by e-mail + address remains."""
    buckets = _buckets(scope, what, keys)
    try:
        allowed, levels = buckets_take(buckets, cost=max(cost, 0))
    except Exception:
        logger.exception("account throttles unavailable; request let through")
        return
    short = [(1 - level) / limit.rate for (_, limit), level in zip(buckets, levels, strict=True) if level < 1]
    if not allowed or (cost == 0 and short):
        wait = int(max(short, default=1)) + 1
        raise Throttled(f"{message} Try again in {wait} s.", retry_after=wait)


def throttle_spend(*, scope: str, what: str, keys: dict[str, str | None]) -> None:
    """Count one failure against the buckets (never refused)."""
    try:
        buckets_take(_buckets(scope, what, keys), cost=1)
    except Exception:
        logger.exception("account throttles unavailable")
