"""Usage metering: API calls and errors per key per UTC day, counted cheaply per request and flushed
into ApiUsage (by the console, the periodic task and, for in-process counters, the request path)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from partners.models import ApiKey, ApiUsage
from partners.usage import LocalUsageCounters, RedisUsageCounters, usage_counters, usage_flush, usage_record
from tests.conftest import SAAS
from tests.partners.conftest import PING

pytestmark = [pytest.mark.urls("tests.partners.api_views"), pytest.mark.usefixtures("real_limits")]

TODAY = lambda: datetime.now(UTC).date()  # noqa: E731


def usage_of(key) -> dict[date, tuple[int, int]]:
    return {u.day: (u.calls, u.errors) for u in ApiUsage.objects.filter(key=key)}


@pytest.fixture
def flush(tenant, django_capture_on_commit_callbacks):
    """usage_flush() as it runs in production: its transaction commits (so the counters settle)."""

    def run() -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return usage_flush()

    return run


def test_calls_and_errors_are_counted_per_key_and_flushed(tenant, make_key, api_for, flush):
    key, raw = make_key(scopes=["events:read"])
    other, other_raw = make_key(name="other")
    client = api_for(tenant, raw)

    for _ in range(3):
        assert client.get(PING).status_code == 200
    assert client.get("/api/test/records").status_code == 403  # lacks the scope: an error
    api_for(tenant, other_raw).get(PING)
    assert not ApiUsage.objects.exists()  # nothing is written per request

    assert flush() == 2

    assert usage_of(key) == {TODAY(): (4, 1)}
    assert usage_of(other) == {TODAY(): (1, 0)}


def test_a_second_flush_adds_only_what_is_new(tenant, make_key, api_for, flush):
    key, raw = make_key()
    client = api_for(tenant, raw)
    client.get(PING)
    flush()

    assert flush() == 0
    client.get(PING)
    client.get(PING)
    flush()

    assert usage_of(key) == {TODAY(): (3, 0)}


def test_requests_without_a_key_are_not_metered(tenant, admin_client, client_for, flush):
    admin_client.get(PING)
    client_for(tenant).get(PING)

    assert flush() == 0
    assert not ApiUsage.objects.exists()


def test_days_are_utc_days(tenant, make_key, flush):
    key, _ = make_key()
    usage_record(tenant=tenant, key=key, error=False, now=datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC))
    usage_record(tenant=tenant, key=key, error=True, now=datetime(2026, 3, 2, 0, 0, 1, tzinfo=UTC))

    flush()

    assert usage_of(key) == {date(2026, 3, 1): (1, 0), date(2026, 3, 2): (1, 1)}


def test_counts_of_a_deleted_key_are_dropped_quietly(tenant, make_key, flush):
    gone, _ = make_key()
    kept, _ = make_key()
    usage_record(tenant=tenant, key=gone, error=False)
    usage_record(tenant=tenant, key=kept, error=False)
    ApiKey.objects.filter(pk=gone.pk).delete()

    flush()

    assert usage_of(kept) == {TODAY(): (1, 0)}
    assert flush() == 0  # and they are gone from the counters


def counter_backends():
    return [LocalUsageCounters, *([RedisUsageCounters] if SAAS else [])]


@pytest.mark.parametrize("backend", counter_backends())
def test_calls_counted_during_a_flush_wait_for_the_next(tenant, backend):
    counters = backend()
    day = date(2026, 5, 4)
    for error in (False, False, True):
        counters.add(tenant_id=tenant.pk, key_id=7, day=day, error=error)

    with counters.flush_lock(tenant.pk) as held:
        assert held
        with counters.flush_lock(tenant.pk) as second:
            assert not second  # one flush per workspace at a time
        pending = counters.pending(tenant.pk)
        counters.add(tenant_id=tenant.pk, key_id=7, day=day, error=False)  # arrives mid-flush
        counters.settle(tenant.pk, pending)

    assert pending == {(day, 7): [3, 1]}
    assert counters.pending(tenant.pk) == {(day, 7): [1, 0]}
    counters.settle(tenant.pk, {(day, 7): [1, 0]})
    assert counters.pending(tenant.pk) == {}


@pytest.mark.parametrize("backend", counter_backends())
def test_a_failed_write_loses_nothing(tenant, make_key, settings, monkeypatch, backend):
    import partners.usage

    key, _ = make_key()
    settings.TESSERA_USAGE_BACKEND = f"{backend.__module__}.{backend.__name__}"
    monkeypatch.setattr(partners.usage, "_backend_cache", {})
    usage_record(tenant=tenant, key=key, error=False)

    def broken(counts):
        raise RuntimeError("database went away")

    monkeypatch.setattr(partners.usage, "_usage_write", broken)
    with pytest.raises(RuntimeError):
        usage_flush()

    assert usage_counters().pending(tenant.pk) == {(TODAY(), key.pk): [1, 0]}


def test_in_process_counters_flush_themselves_from_the_request_path(tenant, make_key, api_for, settings, monkeypatch):
    import partners.usage

    settings.TESSERA_USAGE_BACKEND = "partners.usage.LocalUsageCounters"
    settings.TESSERA_USAGE_FLUSH_SECONDS = 0
    monkeypatch.setattr(partners.usage, "_backend_cache", {})
    key, raw = make_key()

    api_for(tenant, raw).get(PING)

    assert usage_of(key) == {TODAY(): (1, 0)}


def test_the_periodic_task_flushes_every_workspace(tenant, make_key, monkeypatch, django_capture_on_commit_callbacks):
    from config.celery_app import app
    from partners.tasks import usage_flush_all_workspaces

    key, _ = make_key()
    usage_record(tenant=tenant, key=key, error=False)
    usage_record(tenant=tenant, key=key, error=True)
    monkeypatch.setitem(app.conf, "task_always_eager", True)

    with django_capture_on_commit_callbacks(execute=True):
        workspaces = usage_flush_all_workspaces()

    assert workspaces == (2 if SAAS else 1)
    assert usage_of(key) == {TODAY(): (2, 1)}
