"""Rate limits: token buckets per key and per workspace plan, refilling over time; the RateLimit
headers on every API answer; 429 problem with Retry-After when a bucket is empty."""

from __future__ import annotations

import re

import pytest
from django.test import override_settings

from billing.plans import PLANS, Plan
from core.token_buckets import Limit, LocalTokenBuckets, RedisTokenBuckets
from partners.ratelimit import SESSION_LIMIT, ratelimit_take
from tenants.models import Tenant
from tests.partners.conftest import PING

pytestmark = [pytest.mark.urls("tests.partners.api_views"), pytest.mark.usefixtures("real_limits")]

# The API's limits per plan, as billing's catalogue holds them.
PLAN_LIMITS = {code: {"key": p.api_key, "workspace": p.api_workspace} for code, p in PLANS.items()}
FREE = PLAN_LIMITS[Plan.FREE]
ITEM = r'"(?P<name>[a-z]+)";(?P<params>[a-z]+=\d+(?:;[a-z]+=\d+)*)'


def parse(field: str) -> dict[str, dict[str, int]]:
    """A RateLimit / RateLimit-Policy field (a structured-field List of Items) as {name: {param: n}}."""
    items = {}
    for item in field.split(", "):
        match = re.fullmatch(ITEM, item)
        assert match, f"not a policy item: {item!r}"
        items[match["name"]] = {k: int(v) for k, v in (p.split("=") for p in match["params"].split(";"))}
    return items


def burn(client, n: int) -> list:
    return [client.get(PING) for _ in range(n)]


def set_plan(tenant, plan: str) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(plan=plan)


# --- headers -------------------------------------------------------------------------------------


def test_every_key_answer_carries_the_policy_and_what_is_left(tenant, make_key, api_for, frozen_clock):
    _, raw = make_key()
    client = api_for(tenant, raw)

    first, second = client.get(PING), client.get(PING)

    assert first.status_code == second.status_code == 200
    assert first["RateLimit-Policy"] == (
        f'"key";q={FREE["key"].burst};w={FREE["key"].window}, '
        f'"workspace";q={FREE["workspace"].burst};w={FREE["workspace"].window}'
    )
    state = parse(second["RateLimit"])
    assert state["key"]["r"] == FREE["key"].burst - 2
    assert state["workspace"]["r"] == FREE["workspace"].burst - 2
    assert state["key"]["t"] == 1  # two tokens at 10 per second are back within a second
    # The X- trio describes the tightest policy; Reset is a Unix time.
    assert second["X-RateLimit-Limit"] == str(FREE["key"].burst)
    assert second["X-RateLimit-Remaining"] == str(FREE["key"].burst - 2)
    assert int(second["X-RateLimit-Reset"]) == int(frozen_clock.now) + 1
    assert not second.has_header("Retry-After")


def test_error_answers_carry_the_headers_too(tenant, make_key, api_for, client_for):
    _, raw = make_key(scopes=["events:read"])

    forbidden = api_for(tenant, raw).get("/api/test/records")  # the key lacks records:read
    unauthenticated = client_for(tenant).get(PING)
    revoked_or_unknown = api_for(tenant, "tsk_live_" + "x" * 43).get(PING)

    assert forbidden.status_code == 403 and set(parse(forbidden["RateLimit"])) == {"key", "workspace"}
    for response in (unauthenticated, revoked_or_unknown):
        assert response.status_code == 401
        assert parse(response["RateLimit-Policy"]) == {"ip": {"q": 20, "w": 4}}
        assert response.has_header("X-RateLimit-Remaining")


def test_console_pages_are_not_rate_limited_here(admin_client):
    response = admin_client.get("/api-keys/")

    assert response.status_code == 200
    assert not response.has_header("RateLimit")


# --- exhaustion and refill -----------------------------------------------------------------------


def test_an_exhausted_key_gets_429_with_retry_after_and_refills_over_time(tenant, make_key, api_for, frozen_clock):
    _, raw = make_key()
    client = api_for(tenant, raw)
    burst = FREE["key"].burst

    answers = burn(client, burst)
    assert [r.status_code for r in answers] == [200] * burst
    assert answers[-1]["X-RateLimit-Remaining"] == "0"

    refused = client.get(PING)

    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/problem+json"
    body = refused.json()
    assert body["code"] == "rate_limited" and body["status"] == 429 and body["policy"] == "key"
    assert body["request_id"] == refused["Request-Id"]
    assert refused["Retry-After"] == "1"  # one token at 10 per second: within a second
    assert parse(refused["RateLimit"])["key"] == {"r": 0, "t": 1}  # the same moment as Retry-After
    assert refused["X-RateLimit-Remaining"] == "0"

    frozen_clock.advance(0.1)  # one token back (10 per second)
    assert client.get(PING).status_code == 200
    assert client.get(PING).status_code == 429

    frozen_clock.advance(FREE["key"].window)  # the whole burst back
    assert [r.status_code for r in burn(client, burst)] == [200] * burst
    assert client.get(PING).status_code == 429


def test_refused_requests_take_no_tokens(tenant, make_key, api_for, frozen_clock):
    _, raw = make_key()
    client = api_for(tenant, raw)
    burn(client, FREE["key"].burst)

    assert [r.status_code for r in burn(client, 30)] == [429] * 30  # hammering does not dig a hole

    frozen_clock.advance(0.1)
    assert client.get(PING).status_code == 200


def test_the_workspace_limit_binds_all_its_keys_together(tenant, make_key, api_for, frozen_clock):
    clients = [api_for(tenant, make_key(name=f"k{i}")[1]) for i in range(3)]
    key_burst, workspace_burst = FREE["key"].burst, FREE["workspace"].burst
    assert workspace_burst == 2 * key_burst  # what the arithmetic below relies on

    assert [r.status_code for r in burn(clients[0], key_burst)] == [200] * key_burst
    assert [r.status_code for r in burn(clients[1], key_burst)] == [200] * key_burst

    refused = clients[2].get(PING)  # its own bucket is full, the workspace's empty
    assert refused.status_code == 429
    assert refused.json()["policy"] == "workspace"
    state = parse(refused["RateLimit"])
    assert state["workspace"]["r"] == 0 and state["key"]["r"] == key_burst
    assert refused["X-RateLimit-Limit"] == str(workspace_burst)


@pytest.mark.parametrize("plan", [Plan.STARTER, Plan.PRO])
def test_limits_follow_the_workspace_plan(tenant, make_key, api_for, frozen_clock, plan):
    set_plan(tenant, plan)
    _, raw = make_key()
    client = api_for(tenant, raw)
    limits = PLAN_LIMITS[plan]
    assert limits["key"].burst > FREE["key"].burst

    answers = burn(client, limits["key"].burst)

    assert {r.status_code for r in answers} == {200}
    assert parse(answers[0]["RateLimit-Policy"])["key"] == {"q": limits["key"].burst, "w": limits["key"].window}
    assert client.get(PING).status_code == 429


def test_every_plan_has_limits_and_bigger_plans_have_more():
    order = [Plan.FREE, Plan.STARTER, Plan.PRO, Plan.ENTERPRISE]
    assert set(PLAN_LIMITS) == set(Plan.values)
    for name in ("key", "workspace"):
        rates = [PLAN_LIMITS[p][name].rate for p in order]
        bursts = [PLAN_LIMITS[p][name].burst for p in order]
        assert rates == sorted(rates) and bursts == sorted(bursts)
    for limits in PLAN_LIMITS.values():
        assert limits["key"].burst <= limits["workspace"].burst


def test_console_session_calls_have_their_own_generous_limit(tenant, admin_client, frozen_clock):
    answers = burn(admin_client, SESSION_LIMIT.burst)

    assert {r.status_code for r in answers} == {200}
    assert parse(answers[0]["RateLimit-Policy"]) == {"user": {"q": SESSION_LIMIT.burst, "w": SESSION_LIMIT.window}}
    assert admin_client.get(PING).status_code == 429


def test_anonymous_callers_are_limited_per_address(tenant, client_for, frozen_clock):
    client = client_for(tenant)

    answers = burn(client, 20)
    refused = client.get(PING)

    assert {r.status_code for r in answers} == {401}
    assert refused.status_code == 429 and refused.json()["policy"] == "ip"


def test_usage_and_limits_survive_a_crashing_view(tenant, make_key, api_for):
    _, raw = make_key()
    client = api_for(tenant, raw)
    client.raise_request_exception = False

    response = client.get("/api/test/crash")

    assert response.status_code == 500
    assert response.has_header("RateLimit")


# --- the buckets themselves ----------------------------------------------------------------------


def backends():
    from tests.conftest import SAAS

    return [LocalTokenBuckets, *([RedisTokenBuckets] if SAAS else [])]


@pytest.mark.parametrize("backend", backends())
def test_a_request_takes_from_all_its_buckets_or_from_none(settings, backend):
    buckets = backend()
    ns = settings.TESSERA_COUNTERS_NAMESPACE
    small, big = (f"{ns}:{{t}}:small", Limit(rate=1, burst=2)), (f"{ns}:{{t}}:big", Limit(rate=1, burst=5))

    assert buckets.take([small, big], now=100.0) == (True, [1.0, 4.0])
    assert buckets.take([small, big], now=100.0) == (True, [0.0, 3.0])
    assert buckets.take([small, big], now=100.0) == (False, [0.0, 3.0])  # big keeps its tokens
    allowed, levels = buckets.take([small, big], now=100.5)
    assert not allowed and levels == pytest.approx([0.5, 3.5])
    assert buckets.take([small, big], now=101.0) == (True, [0.0, 3.0])
    assert buckets.take([big], now=1000.0) == (True, [4.0])  # never more than the burst
    # A clock that steps back refills nothing (servers' clocks differ a little).
    assert buckets.take([small], now=50.0) == (False, [0.0])


@pytest.mark.saas_only
def test_redis_buckets_forget_full_buckets(settings):
    from core.redis_client import redis_client

    name = f"{settings.TESSERA_COUNTERS_NAMESPACE}:{{t}}:ttl"
    RedisTokenBuckets().take([(name, Limit(rate=10, burst=20))], now=100.0)

    assert 0 < redis_client().pttl(name) <= 1100


@pytest.mark.saas_only
def test_an_unreachable_redis_lets_requests_through(tenant, make_key, api_for, settings):
    _, raw = make_key()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    response = api_for(tenant, raw).get(PING)

    assert response.status_code == 200


def test_scale_setting_multiplies_every_limit(tenant, make_key, frozen_clock):
    key, _ = make_key()
    with override_settings(TESSERA_RATE_LIMIT_SCALE=10):
        decision = ratelimit_take(tenant=tenant, key=key)
    assert decision.policies[0].limit == Limit(rate=FREE["key"].rate * 10, burst=FREE["key"].burst * 10)


@pytest.mark.urls("config.urls_tenant")
def test_the_real_api_is_limited_and_metered(
    tenant, make_key, api_for, frozen_clock, django_capture_on_commit_callbacks
):
    from partners.models import ApiUsage
    from partners.usage import usage_flush

    key, raw = make_key(scopes=["collections:read"])
    client = api_for(tenant, raw)

    ok = client.get("/api/v1/collections")
    missing = client.get("/api/v1/collections/no-such-collection")

    assert ok.status_code == 200 and parse(ok["RateLimit"])["key"]["r"] == FREE["key"].burst - 1
    assert missing.status_code == 404 and parse(missing["RateLimit"])["key"]["r"] == FREE["key"].burst - 2
    with django_capture_on_commit_callbacks(execute=True):
        usage_flush()
    usage = ApiUsage.objects.get(key=key)
    assert (usage.calls, usage.errors) == (2, 1)
