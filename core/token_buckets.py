"""Token buckets: a bucket holds up to `burst` tokens and refills at `rate` per second, so a caller may
use a burst at once and then keep to the rate. Used by the API's rate limits, PIN guessing, the webhook
inspector and anything else that must say "not so fast".

Where buckets live is a setting (TESSERA_RATE_LIMIT_BACKEND): Redis in SaaS (one Lua script checks and
takes from several buckets atomically, one round trip, and can read a generation counter and count a
call on the way), this process's memory on the desktop.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.utils.module_loading import import_string

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
        (e.g. an API-key cache's) and count a call in `count` = (hash, field) of the usage counters."""
        from core.redis_client import redis_client

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
        return bucket_name(f"{{w{tenant_id}}}", "keys-generation")

    def key_generation(self, tenant_id) -> str | None:
        from core.redis_client import redis_client

        value = redis_client().get(self._generation_name(tenant_id))
        return value.decode() if value is not None else "0"

    def key_generation_bump(self, tenant_id) -> None:
        from core.redis_client import redis_client

        redis_client().incr(self._generation_name(tenant_id))


_backend_cache: dict[str, object] = {}


def token_buckets():
    path = settings.TESSERA_RATE_LIMIT_BACKEND
    backend = _backend_cache.get(path)
    if backend is None:
        backend = _backend_cache[path] = import_string(path)()
    return backend


# The clock buckets run on; tests replace it to watch buckets refill.
clock = time.time


def bucket_name(*parts) -> str:
    """A bucket's name in the installation's counters namespace."""
    # {…} is a Redis Cluster hash tag: a workspace's buckets share a slot, so one script may take both.
    return ":".join([settings.TESSERA_COUNTERS_NAMESPACE, "rl", *map(str, parts)])


def buckets_now() -> float:
    """The buckets' clock now (tests move `clock` to watch buckets refill)."""
    return clock()


def buckets_take(buckets: Sequence[tuple[str, Limit]], *, cost: int = 1) -> tuple[bool, list[float]]:
    """Take `cost` tokens from every bucket or from none (cost 0 only reads), on the configured backend
    and clock; returns whether they were taken and what each bucket holds now."""
    return token_buckets().take(buckets, now=clock(), cost=cost)
