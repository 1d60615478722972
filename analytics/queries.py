"""Analytics queries: a collection's records filtered (the API's record filter grammar), grouped by
one or two fields or time buckets, and aggregated — with an optional comparison period.

A query is a plain dict (`QuerySpec`), the same from the console's builder, a saved query and the
API. Filters run through the records query engine (`records.selectors.record_filter`); grouping,
time buckets in the workspace's time zone (DST included), the date range and every aggregate run in
the database as one GROUP BY statement (analytics.expressions spells each piece for PostgreSQL JSONB
and SQLite JSON). A value of the wrong type never fails a query: a text where a number belongs is
skipped by numeric aggregates, a text that is no date falls in the "no date" group.

`_aggregate_python` is the reference those expressions follow: a pass over the matching records'
values from a server-side cursor. It still answers the one thing SQL does not say alike in both
databases, the earliest or latest value of a date field (compared as instants, shown as stored), and
the tests check that both paths agree on awkward data. Figures: bench/analytics.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Avg, Count, DecimalField, F, Max, Min, QuerySet, Sum

from analytics.errors import QueryInvalid
from analytics.expressions import DayInBucket, InRange, JsonGroupKey, JsonNumber, LocalDay, Percentile, percentile
from analytics.rollups import rollup_aggregate, rollup_usable
from records.dialect import JsonKeyText
from records.errors import InvalidQuery
from records.models import Collection, Record
from records.selectors import collection_get, record_filter, record_list
from records.services import SLUG_RE

BUCKETS = ("day", "week", "month", "quarter", "year")
BUILTIN_DATES = {"created_at": "Created", "updated_at": "Updated"}
NUMERIC_TYPES = frozenset({"number", "integer"})
DATE_TYPES = frozenset({"date", "datetime"})
GROUPABLE_TYPES = frozenset({"text", "choice", "email", "url", "boolean", "reference", "integer", "number", "date"})
# Aggregates each field type is offered (count needs no field).
AGGREGATES = ("count", "count_distinct", "sum", "avg", "min", "max", "median", "percentile")
NUMERIC_AGGREGATES = frozenset(AGGREGATES) - {"count"}
DATE_AGGREGATES = frozenset({"count_distinct", "min", "max"})
OTHER_AGGREGATES = frozenset({"count_distinct"})
AGGREGATE_LABELS = {
    "count": "Count",
    "count_distinct": "Distinct",
    "sum": "Sum",
    "avg": "Average",
    "min": "Min",
    "max": "Max",
    "median": "Median",
    "percentile": "Percentile",
}
COMPARES = {"previous_period": "Previous period", "previous_year": "Same period last year"}
LIMIT_DEFAULT, LIMIT_MAX = 1000, 10_000
STREAM_CHUNK = 5000


@dataclass(frozen=True)
class GroupBy:
    field: str
    bucket: str | None = None

    @property
    def key(self) -> str:
        return f"{self.field}_{self.bucket}" if self.bucket else self.field


@dataclass(frozen=True)
class Aggregate:
    fn: str
    field: str | None = None
    p: float | None = None  # percentile, 0–100

    @property
    def key(self) -> str:
        if self.fn == "count":
            return "count"
        if self.fn == "percentile":
            return f"p{_p_text(self.p)}_{self.field}"
        return f"{self.fn}_{self.field}"

    @property
    def label(self) -> str:
        if self.fn == "count":
            return "Count"
        if self.fn == "percentile":
            return f"P{_p_text(self.p)} of {self.field}"
        return f"{AGGREGATE_LABELS[self.fn]} of {self.field}"


def _p_text(p: float | None) -> str:
    return f"{p:g}".replace(".", "_") if p is not None else ""


@dataclass
class QuerySpec:
    collection: str
    filters: dict[str, str] = field(default_factory=dict)
    group_by: list[GroupBy] = field(default_factory=list)
    aggregates: list[Aggregate] = field(default_factory=lambda: [Aggregate("count")])
    sort: str = ""
    limit: int = LIMIT_DEFAULT
    date_field: str = ""
    date_from: date | None = None
    date_to: date | None = None
    compare: str = ""

    def as_dict(self) -> dict:
        """The JSON a saved query keeps and the API accepts (spec_parse reads it back)."""
        out: dict[str, Any] = {"collection": self.collection}
        if self.filters:
            out["filters"] = dict(self.filters)
        if self.group_by:
            out["group_by"] = [{"field": g.field, **({"bucket": g.bucket} if g.bucket else {})} for g in self.group_by]
        out["aggregates"] = [
            {"fn": a.fn, **({"field": a.field} if a.field else {}), **({"p": a.p} if a.p is not None else {})}
            for a in self.aggregates
        ]
        for name in ("sort", "date_field", "compare"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        if self.limit != LIMIT_DEFAULT:
            out["limit"] = self.limit
        if self.date_from:
            out["date_from"] = self.date_from.isoformat()
        if self.date_to:
            out["date_to"] = self.date_to.isoformat()
        return out


# --- what a collection offers -------------------------------------------------------------------------


def field_type(collection: Collection, key: str) -> str | None:
    """A field's type; created_at/updated_at are datetimes every record has."""
    if key in BUILTIN_DATES:
        return "datetime"
    spec = collection.field(key)
    return spec["type"] if spec else None


def aggregates_for(kind: str | None) -> frozenset[str]:
    if kind in NUMERIC_TYPES:
        return NUMERIC_AGGREGATES
    if kind in DATE_TYPES:
        return DATE_AGGREGATES
    if kind in {None, "json", "long_text"}:
        return frozenset()
    return OTHER_AGGREGATES


def query_options(collection: Collection) -> dict:
    """What the builder offers for this collection: typed fields decide aggregates and buckets."""
    fields = [{"key": f["key"], "type": f["type"]} for f in collection.fields]
    dates = [f["key"] for f in fields if f["type"] in DATE_TYPES] + list(BUILTIN_DATES)
    return {
        "group_fields": [f["key"] for f in fields if f["type"] in GROUPABLE_TYPES],
        "date_fields": dates,
        "aggregates": {f["key"]: sorted(aggregates_for(f["type"])) for f in fields if aggregates_for(f["type"])},
        "numeric_fields": [f["key"] for f in fields if f["type"] in NUMERIC_TYPES],
    }


# --- reading a spec --------------------------------------------------------------------------------------


def _date_parse(raw: Any, param: str) -> date | None:
    if raw in (None, ""):
        return None
    try:
        if not isinstance(raw, str) or len(raw) != 10:
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise QueryInvalid(f"`{param}` must be a date (YYYY-MM-DD).", param=param) from exc


def spec_parse(raw: Any, *, collection: Collection) -> QuerySpec:
    """Check a query dict against the collection's typed fields; InvalidQuery (with `param`) says what is wrong."""
    if not isinstance(raw, dict):
        raise QueryInvalid("A query is a JSON object.", param="query")
    known = {"collection", "filters", "group_by", "aggregates", "sort", "limit", "date_field", "date_from"}
    unknown = set(raw) - known - {"date_to", "compare"}
    if unknown:
        name = sorted(unknown)[0]
        raise QueryInvalid(f"Unknown query member `{name}`.", param=name)
    filters = raw.get("filters") or {}
    if not isinstance(filters, dict) or not all(isinstance(v, str) for v in filters.values()):
        raise QueryInvalid("`filters` maps `field` or `field__op` to a text value.", param="filters")
    records_matching(collection, filters)  # refuses unknown fields and ops now, not halfway through a run

    groups = []
    raw_groups = raw.get("group_by") or []
    if not isinstance(raw_groups, list) or len(raw_groups) > 2:
        raise QueryInvalid("Group by at most two fields.", param="group_by")
    for i, item in enumerate(raw_groups):
        param = f"group_by[{i}]"
        if isinstance(item, str):
            item = {"field": item}
        if not isinstance(item, dict) or not isinstance(item.get("field"), str):
            raise QueryInvalid("Each grouping names a `field`.", param=param)
        key, bucket = item["field"], item.get("bucket") or None
        kind = field_type(collection, key)
        if kind is None:
            raise QueryInvalid(f"No field `{key}` to group by.", param=param)
        if bucket is not None:
            if bucket not in BUCKETS:
                raise QueryInvalid(f"Buckets are {', '.join(BUCKETS)}.", param=param)
            if kind not in DATE_TYPES:
                raise QueryInvalid(f"`{key}` is not a date: it cannot be bucketed.", param=param)
        elif kind not in GROUPABLE_TYPES:
            raise QueryInvalid(f"`{key}` ({kind}) cannot be grouped by; bucket dates by day, month…", param=param)
        groups.append(GroupBy(key, bucket))

    aggregates = []
    raw_aggs = raw.get("aggregates") or [{"fn": "count"}]
    if not isinstance(raw_aggs, list) or len(raw_aggs) > 10:
        raise QueryInvalid("Ask for one to ten aggregates.", param="aggregates")
    for i, item in enumerate(raw_aggs):
        param = f"aggregates[{i}]"
        if not isinstance(item, dict) or item.get("fn") not in AGGREGATES:
            raise QueryInvalid(f"Each aggregate has an `fn`: one of {', '.join(AGGREGATES)}.", param=param)
        fn = item["fn"]
        if fn == "count":
            aggregates.append(Aggregate("count"))
            continue
        key = item.get("field")
        kind = field_type(collection, key) if isinstance(key, str) else None
        if kind is None:
            raise QueryInvalid(f"`{fn}` needs a `field` of the collection.", param=param)
        if fn not in aggregates_for(kind):
            raise QueryInvalid(f"`{fn}` does not apply to `{key}` ({kind}).", param=param)
        p = None
        if fn == "percentile":
            p = item.get("p")
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 100:
                raise QueryInvalid("A percentile's `p` is a number from 0 to 100.", param=param)
            p = float(p)
        aggregates.append(Aggregate(fn, key, p))
    if len({a.key for a in aggregates}) != len(aggregates):
        raise QueryInvalid("An aggregate is asked for twice.", param="aggregates")

    limit = raw.get("limit", LIMIT_DEFAULT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= LIMIT_MAX:
        raise QueryInvalid(f"`limit` is a whole number from 1 to {LIMIT_MAX}.", param="limit")

    date_field = raw.get("date_field") or ""
    if date_field and field_type(collection, date_field) not in DATE_TYPES:
        raise QueryInvalid(f"`{date_field}` is not a date field.", param="date_field")
    date_from, date_to = _date_parse(raw.get("date_from"), "date_from"), _date_parse(raw.get("date_to"), "date_to")
    if (date_from or date_to) and not date_field:
        date_field = next((g.field for g in groups if g.bucket), "created_at")
    if date_from and date_to and date_from > date_to:
        raise QueryInvalid("The range ends before it starts.", param="date_to")
    compare = raw.get("compare") or ""
    if compare:
        if compare not in COMPARES:
            raise QueryInvalid(f"`compare` is one of {', '.join(COMPARES)}.", param="compare")
        if not (date_from and date_to):
            raise QueryInvalid("A comparison needs a date range (`date_from` and `date_to`).", param="compare")

    spec = QuerySpec(
        collection=collection.slug,
        filters=dict(filters),
        group_by=groups,
        aggregates=aggregates,
        limit=limit,
        date_field=date_field,
        date_from=date_from,
        date_to=date_to,
        compare=compare,
    )
    sort = raw.get("sort") or ""
    if sort:
        if not isinstance(sort, str) or sort.lstrip("-") not in {c.key for c in result_columns(spec)}:
            raise QueryInvalid("Sort by one of the result's columns (`-` first for descending).", param="sort")
        spec.sort = sort
    return spec


def records_matching(collection: Collection, filters: dict[str, str]) -> QuerySet[Record]:
    """The collection's live records through the records engine's filter grammar (`field__op=value`),
    without those whose processing is restricted (GDPR art. 18): analytics, its exports and scheduled
    reports leave them out."""
    for name, value in filters.items():
        if "\x00" in name or "\x00" in value or len(value) > 500:
            raise QueryInvalid("A filter value is at most 500 characters, without NUL.", param=f"filters.{name}")
    try:
        return record_filter(record_list(collection=collection).filter(restricted_at=None), collection, filters)
    except InvalidQuery as exc:
        raise QueryInvalid(exc.message, param=f"filters.{exc.param}" if exc.param else "filters") from exc


# --- values as analytics reads them ----------------------------------------------------------------------


def number_of(value: Any) -> float | int | None:
    """A value numeric aggregates use: numbers only (booleans and numeric-looking texts are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def day_of(value: Any, kind: str, tz: ZoneInfo) -> date | None:
    """The calendar day a date or datetime value falls on in the workspace's time zone (None: not a date)."""
    if isinstance(value, datetime):
        return value.astimezone(tz).date() if value.tzinfo else None
    if not isinstance(value, str):
        return None
    try:
        if kind == "date":
            return date.fromisoformat(value) if len(value) == 10 else None
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(tz).date() if parsed.tzinfo else None


def bucket_start(day: date, bucket: str) -> date:
    if bucket == "day":
        return day
    if bucket == "week":  # ISO weeks start on Monday
        return day - timedelta(days=day.weekday())
    if bucket == "month":
        return day.replace(day=1)
    if bucket == "quarter":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    return day.replace(month=1, day=1)


def bucket_next(start: date, bucket: str) -> date:
    if bucket == "day":
        return start + timedelta(days=1)
    if bucket == "week":
        return start + timedelta(days=7)
    months = {"month": 1, "quarter": 3, "year": 12}[bucket]
    total = start.year * 12 + start.month - 1 + months
    return date(total // 12, total % 12 + 1, 1)


def buckets_between(first: date, last: date, bucket: str) -> list[date]:
    out, current = [], bucket_start(first, bucket)
    while current <= last:
        out.append(current)
        current = bucket_next(current, bucket)
    return out


def _group_value(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    if isinstance(value, float) and value.is_integer():
        return int(value)  # 3 and 3.0 are one group, in both databases
    return value


def _distinct_value(value: Any) -> Any:
    if isinstance(value, bool):
        return ("b", value)  # True is not 1
    return _group_value(value)


class _Accumulator:
    """The running aggregates of one group: per field, what its aggregates need (each value read once)."""

    __slots__ = ("count", "distinct", "maxs", "mins", "numbers", "sums")

    def __init__(self):
        self.count = 0
        self.distinct: dict[str, set] = {}
        self.numbers: dict[str, list] = {}  # for median and percentiles
        self.sums: dict[str, list] = {}  # [total, n]
        self.mins: dict[str, Any] = {}
        self.maxs: dict[str, Any] = {}


@dataclass
class Column:
    key: str
    label: str
    kind: str  # "group", "bucket" or "value"


@dataclass
class QueryResult:
    spec: QuerySpec
    columns: list[Column]
    rows: list[list]
    truncated: bool = False  # more groups than `limit`
    records_matched: int = 0
    time_zone: str = "UTC"
    compare_range: tuple[date, date] | None = None

    def as_dict(self) -> dict:
        return {
            "object": "analytics_result",
            "query": self.spec.as_dict(),
            "columns": [{"key": c.key, "label": c.label, "kind": c.kind} for c in self.columns],
            "rows": [[_json_cell(v) for v in row] for row in self.rows],
            "truncated": self.truncated,
            "records_matched": self.records_matched,
            "time_zone": self.time_zone,
            "compare_range": [d.isoformat() for d in self.compare_range] if self.compare_range else None,
        }

    def records_as_dicts(self) -> Iterator[dict]:
        keys = [c.key for c in self.columns]
        for row in self.rows:
            yield dict(zip(keys, row, strict=True))


def _json_cell(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def result_columns(spec: QuerySpec) -> list[Column]:
    cols = [
        Column(g.key, f"{g.field} ({g.bucket})" if g.bucket else g.field, "bucket" if g.bucket else "group")
        for g in spec.group_by
    ]
    for a in spec.aggregates:
        cols.append(Column(a.key, a.label, "value"))
        if spec.compare:
            cols.append(Column(f"{a.key}_previous", f"{a.label} ({COMPARES[spec.compare].lower()})", "value"))
            cols.append(Column(f"{a.key}_change", f"{a.label}: change", "value"))
    return cols


# --- running a query -------------------------------------------------------------------------------------


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _source(collection: Collection, spec: QuerySpec, keys: list[str], first: date | None, last: date | None, tz):
    """The matching records' values of `keys`, as (value, ...) tuples from a server-side cursor."""
    qs: QuerySet[Record] = records_matching(collection, spec.filters)
    kind = field_type(collection, spec.date_field) if spec.date_field else None
    if spec.date_field in BUILTIN_DATES:
        # Exact bounds in SQL: local midnights of the workspace's zone, as instants.
        if first:
            qs = qs.filter(**{f"{spec.date_field}__gte": datetime.combine(first, time(), tz)})
        if last:
            qs = qs.filter(**{f"{spec.date_field}__lt": datetime.combine(last + timedelta(days=1), time(), tz)})
    elif kind == "date":
        # ISO dates order as text; `day_of` below drops the malformed values the text range lets through.
        if first:
            qs = qs.filter(**{f"data__{spec.date_field}__gte": first.isoformat()})
        if last:
            qs = qs.filter(**{f"data__{spec.date_field}__lte": last.isoformat()})
    names = []
    annotations: dict[str, Any] = {}
    for i, key in enumerate(keys):
        name = f"_k{i}"
        annotations[name] = F(key) if key in BUILTIN_DATES else JsonKeyText(key)
        names.append(name)
    decode = [key not in BUILTIN_DATES for key in keys]
    rows = qs.order_by().annotate(**annotations).values_list(*names).iterator(chunk_size=STREAM_CHUNK)
    loads = json.loads
    for row in rows:
        yield tuple(loads(v) if d and v is not None else v for v, d in zip(row, decode, strict=True))


def _aggregate(
    collection: Collection, spec: QuerySpec, first: date | None, last: date | None, tz: ZoneInfo
) -> tuple[dict[tuple, Group], int]:
    """The groups of the records matching `spec` whose date falls between `first` and `last` (local days),
    and how many records they hold: computed by the database, or read and computed here for the one
    thing SQL does not say alike in both databases (the earliest/latest of a date field, by instant)."""
    if any(a.fn in {"min", "max"} and field_type(collection, a.field) in DATE_TYPES for a in spec.aggregates):
        return _aggregate_python(collection, spec, first, last, tz)
    rollup = rollup_usable(collection, str(tz.key))
    if rollup is not None:
        found = _aggregate_rollup(rollup, spec, first, last)
        if found is not None:
            return found
    groups, matched = _aggregate_sql(collection, spec, first, last, tz)
    if rollup is None and not spec.filters:
        rollup_usable(collection, str(tz.key), records_seen=matched)  # a big collection gets a rollup built
    return groups, matched


def _aggregate_rollup(
    rollup, spec: QuerySpec, first: date | None, last: date | None
) -> tuple[dict[tuple, Group], int] | None:
    """The groups from the collection's rollup (analytics.rollups), or None when it cannot answer exactly."""
    found = rollup_aggregate(
        rollup,
        filters=spec.filters,
        group_by=[(g.field, g.bucket) for g in spec.group_by],
        aggregates=[(a.fn, a.field) for a in spec.aggregates],
        date_field=spec.date_field,
        first=first,
        last=last,
        bucket_start=bucket_start,
    )
    if found is None:
        return None
    by_id, matched = found
    return {gid: Group(key, values) for gid, (key, values) in by_id.items()}, matched


@dataclass
class Group:
    key: tuple  # the group values as shown
    values: list  # one finished value per aggregate of the spec


def _group_id(key: tuple) -> tuple:
    """A group's identity: True is not 1 (Python's == would make them one group)."""
    return tuple(("b", v) if isinstance(v, bool) else v for v in key)


def _empty_values(spec: QuerySpec) -> list:
    return [_finish(_Accumulator(), a) for a in spec.aggregates]


def _sql_aggregate(a: Aggregate):
    if a.fn == "count":
        return Count("*")
    if a.fn == "count_distinct":
        return Count(JsonGroupKey(a.field), distinct=True)
    number = JsonNumber(a.field)
    if a.fn in {"median", "percentile"}:
        return Percentile(number, 50 if a.fn == "median" else a.p or 0)
    if a.fn == "avg":
        return Avg(number)
    # Exact numbers out (a FloatField would turn 78 into 78.0): whole when every input was (_number_out).
    return {"sum": Sum, "min": Min, "max": Max}[a.fn](number, output_field=DecimalField())


def _number_out(value: Any) -> Any:
    """PostgreSQL's exact numerics as the JSON numbers they sum up: whole when every input was."""
    if isinstance(value, Decimal):
        return int(value) if value.as_tuple().exponent >= 0 else float(value)
    return value


def _aggregate_sql(
    collection: Collection, spec: QuerySpec, first: date | None, last: date | None, tz: ZoneInfo
) -> tuple[dict[tuple, Group], int]:
    qs: QuerySet[Record] = records_matching(collection, spec.filters).order_by()
    zone = str(tz.key)
    if spec.date_field and (first or last):
        kind = field_type(collection, spec.date_field)
        if spec.date_field in BUILTIN_DATES:  # exact bounds on the indexed column: local midnights as instants
            if first:
                qs = qs.filter(**{f"{spec.date_field}__gte": datetime.combine(first, time(), tz)})
            if last:
                qs = qs.filter(**{f"{spec.date_field}__lt": datetime.combine(last + timedelta(days=1), time(), tz)})
        else:
            qs = qs.filter(InRange(LocalDay(spec.date_field, kind=kind, zone=zone), first, last))
    aggregates = {"_n": Count("*")}
    for i, a in enumerate(spec.aggregates):
        if a.fn != "count":
            aggregates[f"_a{i}"] = _sql_aggregate(a)
    if not spec.group_by:
        rows = [((), qs.aggregate(**aggregates))]
    else:
        keys = {}
        for i, g in enumerate(spec.group_by):
            if g.bucket:
                day = LocalDay(g.field, kind=field_type(collection, g.field), zone=zone)
                keys[f"_g{i}"] = DayInBucket(day, g.bucket)
            else:
                keys[f"_g{i}"] = JsonGroupKey(g.field)
        found = qs.annotate(**keys).values(*keys).annotate(**aggregates)
        rows = []
        for row in found.iterator(chunk_size=STREAM_CHUNK):
            key = []
            for i, g in enumerate(spec.group_by):
                value = row[f"_g{i}"]
                if g.bucket:  # always a date: PostgreSQL's date_trunc answers a timestamp, SQLite text
                    if isinstance(value, str):
                        value = date.fromisoformat(value[:10])
                    elif isinstance(value, datetime):
                        value = value.date()
                    key.append(value)
                else:
                    key.append(None if value is None else _group_value(value))
            rows.append((tuple(key), row))
    groups: dict[tuple, Group] = {}
    matched = 0
    for key, row in rows:
        if not row["_n"]:
            continue  # no record matched: no group (the caller shows one empty row when ungrouped)
        matched += row["_n"]
        values = []
        for i, a in enumerate(spec.aggregates):
            if a.fn == "count":
                values.append(row["_n"])
            elif a.fn == "sum":
                values.append(_number_out(row[f"_a{i}"]) or 0)
            elif a.fn == "avg":
                value = row[f"_a{i}"]
                values.append(None if value is None else float(value))
            else:
                values.append(_number_out(row[f"_a{i}"]))
        groups[_group_id(key)] = Group(key, values)
    return groups, matched


def _aggregate_python(
    collection: Collection, spec: QuerySpec, first: date | None, last: date | None, tz: ZoneInfo
) -> tuple[dict[tuple, Group], int]:
    keys = list(dict.fromkeys([g.field for g in spec.group_by] + [a.field for a in spec.aggregates if a.field]))
    if spec.date_field:
        keys = list(dict.fromkeys([*keys, spec.date_field]))
    pos = {k: i for i, k in enumerate(keys)}
    kinds = {k: field_type(collection, k) for k in keys}
    groups: dict[tuple, tuple[tuple, _Accumulator]] = {}
    matched = 0
    date_at = pos.get(spec.date_field) if spec.date_field else None
    needs: dict[str, tuple[str | None, set[str]]] = {}
    for a in spec.aggregates:
        if a.field:
            wants = needs.setdefault(a.field, (kinds[a.field], set()))[1]
            wants.add({"avg": "sum", "median": "list", "percentile": "list"}.get(a.fn, a.fn))
    ranged = first is not None or last is not None
    for values in _rows(collection, spec, keys, first, last, tz):
        if ranged and date_at is not None:
            day = day_of(values[date_at], kinds[spec.date_field], tz)
            if day is None or (first and day < first) or (last and day > last):
                continue
        key_parts = []
        for g in spec.group_by:
            value = values[pos[g.field]]
            if g.bucket:
                day = day_of(value, kinds[g.field], tz)
                key_parts.append(bucket_start(day, g.bucket) if day else None)
            else:
                key_parts.append(_group_value(value))
        group_key = tuple(key_parts)
        group_id = _group_id(group_key)
        found = groups.get(group_id)
        if found is None:
            found = groups[group_id] = (group_key, _Accumulator())
        acc = found[1]
        matched += 1
        acc.count += 1
        for key, (kind, wants) in needs.items():
            value = values[pos[key]]
            if value is None:
                continue
            if "count_distinct" in wants:
                acc.distinct.setdefault(key, set()).add(_distinct_value(value))
            if kind in NUMERIC_TYPES:
                number = number_of(value)
                if number is None:
                    continue
                if "list" in wants:
                    acc.numbers.setdefault(key, []).append(number)
                if "sum" in wants:
                    pair = acc.sums.get(key)
                    if pair is None:
                        acc.sums[key] = [number, 1]
                    else:
                        pair[0] += number
                        pair[1] += 1
                if "min" in wants and (key not in acc.mins or number < acc.mins[key]):
                    acc.mins[key] = number
                if "max" in wants and (key not in acc.maxs or number > acc.maxs[key]):
                    acc.maxs[key] = number
            elif "min" in wants or "max" in wants:  # dates: by instant, shown as stored
                moment = _moment(value, kind)
                if moment is None:
                    continue
                if "min" in wants and (key not in acc.mins or moment < acc.mins[key][0]):
                    acc.mins[key] = (moment, value)
                if "max" in wants and (key not in acc.maxs or moment > acc.maxs[key][0]):
                    acc.maxs[key] = (moment, value)
    return {gid: Group(key, [_finish(acc, a) for a in spec.aggregates]) for gid, (key, acc) in groups.items()}, matched


def _rows(collection, spec, keys, first, last, tz) -> Iterable[tuple]:
    if not keys:
        qs = records_matching(collection, spec.filters)
        return ((),) * qs.order_by().count()
    return _source(collection, spec, keys, first, last, tz)


def _moment(value: Any, kind: str | None) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else None
    if not isinstance(value, str):
        return None
    try:
        if kind == "date":
            return datetime.combine(date.fromisoformat(value), time(), UTC) if len(value) == 10 else None
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _finish(acc: _Accumulator, a: Aggregate) -> Any:
    if a.fn == "count":
        return acc.count
    if a.fn == "count_distinct":
        return len(acc.distinct.get(a.field, ()))
    if a.fn == "sum":
        return acc.sums.get(a.field, (0, 0))[0]
    if a.fn == "avg":
        total, n = acc.sums.get(a.field, (0, 0))
        return total / n if n else None
    if a.fn in {"min", "max"}:
        value = (acc.mins if a.fn == "min" else acc.maxs).get(a.field)
        if isinstance(value, tuple):  # a date: (instant, stored value)
            value = value[1]
        if isinstance(value, datetime):
            value = value.isoformat()
        return value
    if a.fn == "median":
        return percentile(acc.numbers.get(a.field, []), 50)
    return percentile(acc.numbers.get(a.field, []), a.p or 0)


def _sort_key(value: Any) -> tuple:
    """Groups in a stable order across types: missing values last."""
    if value is None:
        return (3, "")
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, (int, float)):
        return (0, value)
    if isinstance(value, date):
        return (1, value.isoformat())
    return (2, str(value))


def _compare_range(spec: QuerySpec) -> tuple[date, date]:
    first, last = spec.date_from, spec.date_to
    if spec.compare == "previous_period":
        length = (last - first).days + 1
        return first - timedelta(days=length), last - timedelta(days=length)
    return _year_back(first), _year_back(last)


def _year_back(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def _year_forward(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)


def _aligned(spec: QuerySpec, key: tuple, previous: tuple[date, date]) -> tuple:
    """A comparison group's key moved onto the current period's (its bucket the same distance into the range)."""
    out = list(key)
    for i, g in enumerate(spec.group_by):
        if g.bucket and isinstance(out[i], date):
            if spec.compare == "previous_year":
                out[i] = bucket_start(_year_forward(out[i]), g.bucket)
            else:
                prev_buckets = buckets_between(previous[0], previous[1], g.bucket)
                cur_buckets = buckets_between(spec.date_from, spec.date_to, g.bucket)
                n = prev_buckets.index(out[i]) if out[i] in prev_buckets else -1
                out[i] = cur_buckets[n] if 0 <= n < len(cur_buckets) else None
    return tuple(out)


def query_run(*, spec: QuerySpec, livemode: bool, time_zone: str) -> QueryResult:
    """Run a checked query over the live (or sandbox) records of its collection."""
    collection = collection_get(livemode=livemode, slug=spec.collection)
    tz = _zone(time_zone)
    groups, matched = _aggregate(collection, spec, spec.date_from, spec.date_to, tz)
    if not spec.group_by and not groups:
        groups[()] = Group((), _empty_values(spec))  # one row, even over no records: count 0
    previous: dict[tuple, Group] = {}
    compare_range = None
    if spec.compare:
        compare_range = _compare_range(spec)
        prev_groups, _ = _aggregate(collection, spec, compare_range[0], compare_range[1], tz)
        for group in prev_groups.values():
            key = _aligned(spec, group.key, compare_range)
            previous[_group_id(key)] = Group(key, group.values)
        if spec.group_by:
            for group_id, group in previous.items():
                if group_id not in groups and all(k is not None for k in group.key):
                    groups[group_id] = Group(group.key, _empty_values(spec))  # a group only last period had
        elif () not in previous:
            previous[()] = Group((), _empty_values(spec))
    rows = []
    for group_id, group in groups.items():
        row = list(group.key)
        for i, a in enumerate(spec.aggregates):
            value = group.values[i]
            row.append(value)
            if spec.compare:
                before = (
                    previous[group_id].values[i] if group_id in previous else (0 if a.fn in {"count", "sum"} else None)
                )
                row.append(before)
                row.append(_change(value, before))
        rows.append(row)
    columns = result_columns(spec)
    rows.sort(key=lambda r: tuple(_sort_key(v) for v in r[: len(spec.group_by)]))
    if spec.sort:
        at = [c.key for c in columns].index(spec.sort.lstrip("-"))
        descending = spec.sort.startswith("-")
        present = [r for r in rows if r[at] is not None]
        missing = [r for r in rows if r[at] is None]
        present.sort(key=lambda r: _sort_key(r[at]), reverse=descending)
        rows = present + missing
    truncated = len(rows) > spec.limit
    return QueryResult(
        spec=spec,
        columns=columns,
        rows=rows[: spec.limit],
        truncated=truncated,
        records_matched=matched,
        time_zone=str(tz.key),
        compare_range=compare_range,
    )


def _change(value: Any, before: Any) -> float | None:
    """Relative change (0.25 = +25%); None when there is nothing to compare with."""
    if number_of(value) is None or number_of(before) is None or before == 0:
        return None
    return (value - before) / abs(before)


def query_for(*, raw: Any, livemode: bool) -> tuple[Collection, QuerySpec]:
    """The collection a raw query names and the checked spec (NotFound / InvalidQuery otherwise)."""
    slug = raw.get("collection") if isinstance(raw, dict) else None
    if not isinstance(slug, str) or not SLUG_RE.fullmatch(slug):
        raise QueryInvalid("Name the `collection` to query (its slug).", param="collection")
    collection = collection_get(livemode=livemode, slug=slug)
    return collection, spec_parse(raw, collection=collection)
