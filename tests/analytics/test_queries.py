"""analytics.queries against an independent computation in plain Python over the same stored records:
every aggregate, every time bucket in the workspace's time zone (DST changes included), missing values
and a value of the wrong type; in both runtimes.

The model leaves out: concurrent writes during a query (a query reads one snapshot per statement)."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from analytics.errors import QueryInvalid
from analytics.queries import query_for, query_run

TZ = "Europe/Berlin"
NUMERIC = ("count_distinct", "sum", "avg", "min", "max", "median", "percentile")


def run(raw: dict, tz: str = TZ):
    _collection, spec = query_for(raw={"collection": "orders", **raw}, livemode=True)
    return query_run(spec=spec, livemode=True, time_zone=tz)


def local_day(value, kind: str, tz: str = TZ) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        if kind == "date":
            return date.fromisoformat(value)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(ZoneInfo(tz)).date()


def bucket_of(day: date | None, bucket: str) -> date | None:
    if day is None:
        return None
    return {
        "day": lambda d: d,
        "week": lambda d: date.fromisocalendar(*d.isocalendar()[:2], 1),
        "month": lambda d: date(d.year, d.month, 1),
        "quarter": lambda d: date(d.year, 3 * ((d.month - 1) // 3) + 1, 1),
        "year": lambda d: date(d.year, 1, 1),
    }[bucket](day)


def numbers(rows, key):
    return [r[key] for r in rows if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]


def expected_aggregate(rows: list[dict], fn: str, key: str | None, p: float | None = None):
    if fn == "count":
        return len(rows)
    if fn == "count_distinct":
        return len({r[key] for r in rows if r.get(key) is not None})
    values = numbers(rows, key)
    if fn == "sum":
        return sum(values)
    if not values:
        return None
    if fn == "avg":
        return statistics.fmean(values)
    if fn == "min":
        return min(values)
    if fn == "max":
        return max(values)
    if fn == "median":
        return statistics.median(values)
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def close(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def test_every_aggregate_over_the_whole_collection_matches_python(orders):
    _collection, stored = orders
    data = [s["data"] for s in stored]
    aggregates = [{"fn": "count"}] + [
        {"fn": fn, "field": "amount", **({"p": 90} if fn == "percentile" else {})} for fn in NUMERIC
    ]
    result = run({"aggregates": aggregates})
    assert len(result.rows) == 1
    row = dict(zip([c.key for c in result.columns], result.rows[0], strict=True))
    assert row["count"] == len(data) == 88
    for a in aggregates[1:]:
        want = expected_aggregate(data, a["fn"], "amount", a.get("p"))
        key = "p90_amount" if a["fn"] == "percentile" else f"{a['fn']}_amount"
        assert close(row[key], want), (a, row[key], want)
    # the legacy text "12.50" counts as a distinct value but never as a number
    assert row["count_distinct_amount"] == len({d["amount"] for d in data if "amount" in d})
    assert "12.50" not in [str(v) for v in numbers(data, "amount")]


def test_time_buckets_in_the_workspace_time_zone_match_python(orders):
    for date_field in ("closed_at", "closed_on"):
        for bucket in ("day", "week", "month", "quarter", "year"):
            _buckets_check(orders, date_field, bucket)


def _buckets_check(orders, date_field: str, bucket: str) -> None:
    _collection, stored = orders
    kind = "datetime" if date_field == "closed_at" else "date"
    groups = defaultdict(list)
    for s in stored:
        groups[bucket_of(local_day(s["data"].get(date_field), kind), bucket)].append(s["data"])
    result = run(
        {
            "group_by": [{"field": date_field, "bucket": bucket}],
            "aggregates": [{"fn": "count"}, {"fn": "sum", "field": "qty"}, {"fn": "avg", "field": "amount"}],
        }
    )
    got = {row[0]: row[1:] for row in result.rows}
    assert set(got) == set(groups)
    for key, rows in groups.items():
        count, qty, avg = got[key]
        assert count == len(rows)
        assert qty == expected_aggregate(rows, "sum", "qty")
        assert close(avg, expected_aggregate(rows, "avg", "amount")) or (avg is None and not numbers(rows, "amount"))
    # missing dates make a group of their own, last
    if None in groups:
        assert result.rows[-1][0] is None


def test_dst_edges_land_in_the_local_bucket(orders):
    """Hand-checked: each instant in the bucket a Berliner's calendar shows, not UTC's."""
    result = run(
        {"filters": {"customer": "edge"}, "group_by": [{"field": "closed_at", "bucket": "day"}], "aggregates": []}
    )
    days = {row[0].isoformat() for row in result.rows}
    assert days == {"2026-03-29", "2026-03-30", "2026-04-01", "2026-10-25", "2026-11-01", "2026-01-01", "2026-06-30"}
    weeks = run({"filters": {"customer": "edge"}, "group_by": [{"field": "closed_at", "bucket": "week"}]})
    assert date(2026, 3, 30) in {row[0] for row in weeks.rows}  # Monday 30 March, not the week of the 23rd
    months = run({"filters": {"customer": "edge"}, "group_by": [{"field": "closed_at", "bucket": "month"}]})
    assert {row[0]: row[1] for row in months.rows}[date(2026, 4, 1)] == 1
    utc = run({"filters": {"customer": "edge"}, "group_by": [{"field": "closed_at", "bucket": "day"}]}, tz="UTC")
    assert {row[0].isoformat() for row in utc.rows} >= {"2026-03-28", "2025-12-31", "2026-10-31"}


def test_two_groupings_filters_and_date_range(orders):
    _collection, stored = orders
    first, last = date(2026, 1, 1), date(2026, 6, 30)
    groups = defaultdict(list)
    for s in stored:
        d = s["data"]
        day = local_day(d.get("closed_at"), "datetime")
        if d.get("qty") is not None and d["qty"] >= 3 and day and first <= day <= last:
            groups[(bucket_of(day, "month"), d.get("region"))].append(d)
    result = run(
        {
            "filters": {"qty__gte": "3"},
            "group_by": [{"field": "closed_at", "bucket": "month"}, {"field": "region"}],
            "aggregates": [{"fn": "sum", "field": "amount"}, {"fn": "max", "field": "amount"}],
            "date_from": first.isoformat(),
            "date_to": last.isoformat(),
        }
    )
    got = {(r[0], r[1]): r[2:] for r in result.rows}
    assert set(got) == set(groups)
    for key, rows in groups.items():
        assert close(got[key][0], expected_aggregate(rows, "sum", "amount"))
        assert close(got[key][1], expected_aggregate(rows, "max", "amount"))
    assert result.records_matched == sum(len(v) for v in groups.values())


def test_sort_and_limit(orders):
    result = run({"group_by": ["customer"], "aggregates": [{"fn": "count"}], "sort": "-count", "limit": 3})
    counts = [r[1] for r in result.rows]
    assert len(counts) == 3 and counts == sorted(counts, reverse=True) and result.truncated


def test_same_period_last_year_aligns_months(orders):
    _collection, stored = orders
    this = defaultdict(int)
    last = defaultdict(int)
    for s in stored:
        day = local_day(s["data"].get("closed_at"), "datetime")
        if day and day.year == 2026:
            this[date(2026, day.month, 1)] += 1
        elif day and day.year == 2025:
            last[date(2026, day.month, 1)] += 1
    result = run(
        {
            "group_by": [{"field": "closed_at", "bucket": "month"}],
            "date_from": "2026-01-01",
            "date_to": "2026-12-31",
            "compare": "previous_year",
        }
    )
    assert [c.key for c in result.columns] == ["closed_at_month", "count", "count_previous", "count_change"]
    assert result.compare_range == (date(2025, 1, 1), date(2025, 12, 31))
    for month, count, previous, change in result.rows:
        assert count == this[month] and previous == last[month]
        assert close(change, (count - previous) / previous) if previous else change is None


def test_previous_period_single_number(orders):
    _collection, stored = orders

    def count_between(a, b):
        return sum(1 for s in stored if (d := local_day(s["data"].get("closed_at"), "datetime")) and a <= d <= b)

    result = run(
        {"date_field": "closed_at", "date_from": "2026-03-01", "date_to": "2026-03-31", "compare": "previous_period"}
    )
    ((count, previous, _change),) = result.rows
    assert count == count_between(date(2026, 3, 1), date(2026, 3, 31))
    assert previous == count_between(date(2026, 1, 29), date(2026, 2, 28))  # the 31 days before


def test_created_at_buckets(orders):
    _collection, stored = orders
    want = defaultdict(int)
    for s in stored:
        want[s["created_at"].astimezone(ZoneInfo(TZ)).date()] += 1
    result = run({"group_by": [{"field": "created_at", "bucket": "day"}]})
    assert {r[0]: r[1] for r in result.rows} == want


def test_other_data_sets_are_not_read(orders, admin_user):
    """A sandbox collection with the same slug is another data set: live queries never count it."""
    from records.services import collection_create, record_create

    sandbox = collection_create(
        actor=admin_user, name="Orders", slug="orders", fields=[{"key": "qty", "type": "integer"}], livemode=False
    )
    record_create(actor=admin_user, collection=sandbox, data={"qty": 1})
    _collection, spec = query_for(raw={"collection": "orders"}, livemode=False)
    assert query_run(spec=spec, livemode=False, time_zone=TZ).rows == [[1]]
    assert run({}).rows == [[88]]


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ({"group_by": ["nope"]}, "group_by[0]"),
        ({"group_by": [{"field": "customer", "bucket": "month"}]}, "group_by[0]"),
        ({"aggregates": [{"fn": "sum", "field": "customer"}]}, "aggregates[0]"),
        ({"aggregates": [{"fn": "percentile", "field": "amount", "p": 101}]}, "aggregates[0]"),
        ({"filters": {"qty__gt": "many"}}, "filters.qty__gt"),
        ({"filters": {"ghost": "1"}}, "filters.ghost"),
        ({"compare": "previous_year"}, "compare"),
        ({"date_from": "2026-02-30"}, "date_from"),
        ({"sort": "-nope"}, "sort"),
        ({"group_by": ["a", "b", "c"]}, "group_by"),
    ],
)
def test_queries_that_do_not_fit_the_collection_say_what_is_wrong(orders_empty, raw, param):
    with pytest.raises(QueryInvalid) as caught:
        run(raw)
    assert caught.value.param == param and caught.value.status == 422


def test_week_bucket_helper_matches_iso_calendar():
    from analytics.queries import bucket_start

    day = date(2026, 1, 1)
    for n in range(400):
        d = day + timedelta(days=n)
        assert bucket_start(d, "week") == bucket_of(d, "week")


AWKWARD = [
    # a day that does not exist, a local time with no offset, a number, a US-style date: no date at all
    {"customer": "odd", "closed_at": "2026-02-30T10:00:00Z", "closed_on": "2026-02-30", "qty": 3.0, "region": True},
    {"customer": "odd", "closed_at": "2026-03-01T10:00:00", "closed_on": "2026-13-01", "qty": 3, "region": 1},
    {"customer": "odd", "closed_at": 42, "closed_on": 20260301, "amount": {"v": 1}, "region": "1"},
    {"customer": "odd", "closed_at": "2026-03-01T23:30:00.123456+00:00", "closed_on": None, "amount": [1, 2]},
    {"customer": "odd", "closed_at": "yesterday", "closed_on": "2026-02-28", "amount": 1e300, "qty": False},
]


@pytest.fixture
def awkward_orders(orders, admin_user):
    """The orders plus rows no validator would let in today, stored around the spine as old data would be."""
    from records.models import Record
    from records.services import record_create

    collection, _stored = orders
    for data in AWKWARD:
        record = record_create(actor=admin_user, collection=collection, data={"customer": "odd"})
        Record.objects.filter(pk=record.pk).update(data=data)
    return collection


@pytest.mark.parametrize(
    "raw",
    [
        {"group_by": [{"field": "closed_at", "bucket": "day"}], "aggregates": [{"fn": "count"}]},
        {"group_by": [{"field": "closed_on", "bucket": "week"}, {"field": "region"}]},
        {"group_by": [{"field": "closed_at", "bucket": "quarter"}], "date_from": "2026-01-01", "date_to": "2026-03-31"},
        {
            "group_by": ["region"],
            "aggregates": [{"fn": "count_distinct", "field": "qty"}, {"fn": "sum", "field": "qty"}],
        },
        {
            "group_by": ["qty"],
            "aggregates": [
                {"fn": "count_distinct", "field": "amount"},
                {"fn": "avg", "field": "amount"},
                {"fn": "min", "field": "amount"},
                {"fn": "max", "field": "amount"},
                {"fn": "median", "field": "amount"},
                {"fn": "percentile", "field": "amount", "p": 25},
            ],
        },
        {"date_field": "closed_on", "date_from": "2026-02-01", "date_to": "2026-03-31", "compare": "previous_year"},
    ],
)
def test_the_database_computes_what_the_python_reference_does(awkward_orders, raw):
    """Aggregation runs in SQL (PostgreSQL JSONB, SQLite JSON); the Python pass it replaced is kept as the
    reference for what every awkward value means, and for the earliest/latest of a date field."""
    from analytics import queries

    _collection, spec = query_for(raw={"collection": "orders", **raw}, livemode=True)
    tz = queries._zone(TZ)
    for first, last in ((spec.date_from, spec.date_to), (None, None)):
        by_sql, n_sql = queries._aggregate_sql(awkward_orders, spec, first, last, tz)
        by_python, n_python = queries._aggregate_python(awkward_orders, spec, first, last, tz)
        assert n_sql == n_python
        assert set(by_sql) == set(by_python)
        for key, group in by_python.items():
            assert by_sql[key].key == group.key
            assert all(close(a, b) for a, b in zip(by_sql[key].values, group.values, strict=True)), (
                key,
                by_sql[key].values,
                group.values,
            )


def test_values_that_are_not_dates_are_a_group_of_their_own_not_an_error(awkward_orders):
    result = run({"filters": {"customer": "odd"}, "group_by": [{"field": "closed_at", "bucket": "day"}]})
    assert {r[0]: r[1] for r in result.rows} == {date(2026, 3, 2): 1, None: 4}  # 23:30 UTC is the 2nd in Berlin
    result = run({"filters": {"customer": "odd"}, "group_by": ["region"]})
    assert [r[:2] for r in result.rows] == [[True, 1], [1, 1], ["1", 1], [None, 2]]  # true is not 1, nor "1"
