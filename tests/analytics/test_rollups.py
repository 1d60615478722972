"""analytics.rollups: the rollup answers exactly what the engine computes from the records (same groups,
same values, same int/float types), before and after every kind of change through the write spine, and
steps aside when the collection's fields change. Both runtimes; the awkward values of test_queries too.

The model leaves out: concurrent writers (the spine's change lock serializes a workspace's writes, and
the subscriber runs inside them), and the Celery round trip of a rebuild (the task calls rollup_build,
which the tests call directly)."""

from __future__ import annotations

import pytest

from analytics import queries
from analytics.queries import query_for, query_run
from analytics.rollups import rollup_build, rollup_usable
from tests.analytics.test_queries import awkward_orders  # noqa: F401 - the fixture, shared

TZ = "Europe/Berlin"

# Every shape the rollup answers: choice and boolean groups, every bucket of a date and a datetime
# (DST in Berlin), choice filters, date ranges, count / sum / avg / count distinct.
SPECS = [
    {"group_by": ["region"], "aggregates": [{"fn": "count"}, {"fn": "sum", "field": "amount"}]},
    {"group_by": ["region"], "aggregates": [{"fn": "sum", "field": "qty"}, {"fn": "avg", "field": "amount"}]},
    {"aggregates": [{"fn": "count"}, {"fn": "sum", "field": "qty"}, {"fn": "count_distinct", "field": "region"}]},
    *[
        {
            "group_by": [{"field": f, "bucket": b}],
            "aggregates": [{"fn": "count"}, {"fn": "sum", "field": "amount"}, {"fn": "sum", "field": "qty"}],
        }
        for f in ("closed_on", "closed_at")
        for b in ("day", "week", "month", "quarter", "year")
    ],
    {
        "filters": {"region": "EU"},
        "group_by": [{"field": "closed_at", "bucket": "month"}],
        "aggregates": [{"fn": "count"}, {"fn": "sum", "field": "amount"}],
    },
    {
        "filters": {"region__in": "EU,US"},
        "group_by": [{"field": "closed_on", "bucket": "week"}, {"field": "region"}],
        "aggregates": [{"fn": "count"}, {"fn": "avg", "field": "qty"}],
    },
    {
        "group_by": [{"field": "closed_at", "bucket": "quarter"}],
        "date_from": "2026-01-01",
        "date_to": "2026-06-30",
        "aggregates": [{"fn": "count"}, {"fn": "sum", "field": "amount"}],
    },
    {"date_field": "closed_on", "date_from": "2026-02-01", "date_to": "2026-03-31", "compare": "previous_year"},
]


def _same(a, b) -> bool:
    """Equal, and of the same type (a sum the engine gives as 78 must not come back as 78.0)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))  # avg: division rounded once or twice
    return type(a) is type(b) and a == b


def assert_rollup_matches_records(collection) -> int:
    """Every SPEC through the rollup and through the records engine: the same groups and values."""
    rollup = rollup_usable(collection, TZ)
    assert rollup is not None, "the rollup is not ready"
    tz = queries._zone(TZ)
    answered = 0
    for raw in SPECS:
        _c, spec = query_for(raw={"collection": collection.slug, **raw}, livemode=True)
        for first, last in ((spec.date_from, spec.date_to), (None, None)):
            by_rollup = queries._aggregate_rollup(rollup, spec, first, last)
            assert by_rollup is not None, raw
            answered += 1
            groups, matched = by_rollup
            want, want_matched = queries._aggregate_sql(collection, spec, first, last, tz)
            assert matched == want_matched, raw
            assert set(groups) == set(want), (raw, set(groups) ^ set(want))
            for gid, group in want.items():
                assert groups[gid].key == group.key, raw
                assert all(_same(a, b) for a, b in zip(groups[gid].values, group.values, strict=True)), (
                    raw,
                    gid,
                    groups[gid].values,
                    group.values,
                )
    return answered


@pytest.fixture
def rolled(awkward_orders):  # noqa: F811 - the imported fixture
    """The orders (awkward values included, written around the spine as old data is) with a rollup built
    over them, as the backfill command builds it for existing collections."""
    rollup = rollup_build(collection=awkward_orders, time_zone=TZ)
    assert rollup.status == "ready" and rollup.records == 93
    return awkward_orders


def test_the_rollup_answers_what_the_records_engine_computes(rolled):
    assert assert_rollup_matches_records(rolled) == 2 * len(SPECS)
    # query_run itself goes through the rollup and gives the rows the engine gives
    _c, spec = query_for(raw={"collection": "orders", **SPECS[0]}, livemode=True)
    assert query_run(spec=spec, livemode=True, time_zone=TZ).rows == [
        [r.key[0], *r.values]
        for r in sorted(
            queries._aggregate_sql(rolled, spec, None, None, queries._zone(TZ))[0].values(),
            key=lambda g: queries._sort_key(g.key[0]),
        )
    ]


def test_the_rollup_follows_every_change_through_the_spine(rolled, admin_user):
    from records.models import Record
    from records.services import (
        record_bulk_upsert,
        record_create,
        record_delete,
        record_erase,
        record_update,
    )

    created = record_create(
        actor=admin_user,
        collection=rolled,
        data={"customer": "new", "region": "APAC", "amount": 2.5, "qty": 4, "closed_at": "2026-03-29T00:30:00+01:00"},
    )
    record_bulk_upsert(
        actor=admin_user,
        collection=rolled,
        items=[{"data": {"customer": "bulk", "region": "EU", "amount": 7, "closed_on": "2026-02-02"}}] * 3,
    )
    some = list(Record.objects.filter(collection=rolled, deleted_at=None, data__customer="c3").order_by("id")[:4])
    # moves to another cell, loses a number, changes only a field the rollup does not hold
    record_update(actor=admin_user, record=some[0], data={**some[0].data, "region": "US", "amount": 1.25})
    record_update(actor=admin_user, record=some[1], data={k: v for k, v in some[1].data.items() if k != "qty"})
    record_update(actor=admin_user, record=created, data={**created.data, "customer": "renamed"})
    record_delete(actor=admin_user, record=some[2])
    record_erase(actor=admin_user, record=some[3])  # the data is gone before the event: the feed's copy is read
    record_erase(actor=admin_user, record=some[2])  # already deleted: it was in no cell
    assert assert_rollup_matches_records(rolled) == 2 * len(SPECS)


def test_a_change_of_fields_sets_the_rollup_aside_until_it_is_rebuilt(rolled, admin_user):
    from records.services import collection_update

    fields = [dict(f) for f in rolled.fields]
    for f in fields:
        if f["key"] == "region":
            f["key"] = "area"  # a rename: the records' data moves to the new key
    collection_update(actor=admin_user, collection=rolled, fields=fields)
    rolled.refresh_from_db()
    assert rollup_usable(rolled, TZ) is None  # stale: queries read the records meanwhile
    _c, spec = query_for(raw={"collection": "orders", "group_by": ["area"]}, livemode=True)
    result = query_run(spec=spec, livemode=True, time_zone=TZ)
    assert sum(row[1] for row in result.rows) == 93
    from records.services import collection_records_migrate

    assert collection_records_migrate(collection=rolled)  # what the worker does after a field change
    rolled.refresh_from_db()
    rollup = rollup_build(collection=rolled, time_zone=TZ)
    assert rollup.status == "ready" and ["area", "choice"] in rollup.signature["dims"]
    rebuilt = query_run(spec=spec, livemode=True, time_zone=TZ)
    assert rebuilt.rows == result.rows


def test_another_time_zone_or_a_deleted_collection_is_not_answered_from_the_rollup(rolled, admin_user):
    from analytics.models import Rollup
    from records.services import collection_delete

    assert rollup_usable(rolled, "America/New_York") is None  # its days are Berlin's
    collection_delete(actor=admin_user, collection=rolled, with_records=True)
    assert not Rollup.objects.filter(collection=rolled).exists()


@pytest.mark.saas_only
def test_rollups_and_their_backfill_stay_in_their_workspace(rolled, tenant_b, admin_user):
    """Beta has a collection of the same slug: the command builds each workspace's rollup from its own
    records, and a query in beta never reads alpha's cells."""
    from django.core.management import call_command

    from analytics.models import Rollup
    from records.services import collection_create, record_create
    from tenants.runtime import workspace_context

    with workspace_context(tenant_b):
        from accounts.models import User

        beta_admin = User.objects.get(email="admin@beta.test")
        fields = [{k: v for k, v in f.items() if k != "id"} for f in rolled.fields]
        beta = collection_create(actor=beta_admin, name="Orders", slug="orders", fields=fields)
        record_create(actor=beta_admin, collection=beta, data={"region": "EU", "amount": 5})
    call_command("analytics_rollups_build", "--collection", "orders", stdout=open("/dev/null", "w"))  # noqa: SIM115
    with workspace_context(tenant_b):
        assert Rollup.objects.get(collection__slug="orders").records == 1
        _c, spec = query_for(raw={"collection": "orders", **SPECS[0]}, livemode=True)
        assert query_run(spec=spec, livemode=True, time_zone=TZ).rows == [["EU", 1, 5]]
    assert Rollup.objects.get(collection=rolled).records == 93
