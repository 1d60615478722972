"""The console's query builder as a GET form: its parameters ⇄ the query dict analytics.queries reads.

The builder is a plain form (no SQL, no script needed): the address of a result is the query, so a
result can be bookmarked, shared, and pinned by saving it."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict

from analytics.models import CHARTS
from analytics.queries import BUCKETS, COMPARES, LIMIT_DEFAULT

FILTER_ROWS = 3
AGGREGATE_ROWS = 3
FILTER_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "contains", "in", "isnull")


def spec_from_params(params: QueryDict) -> dict[str, Any]:
    """The query dict a builder form asks for (checked later by analytics.queries.spec_parse)."""
    raw: dict[str, Any] = {"collection": params.get("collection", "")}
    filters = {}
    for key, op, value in zip(
        params.getlist("f_field"), params.getlist("f_op"), params.getlist("f_value"), strict=False
    ):
        if key:
            filters[key if op in ("", "eq") else f"{key}__{op}"] = value or ("true" if op == "isnull" else "")
    if filters:
        raw["filters"] = filters
    groups = []
    for n in ("1", "2"):
        key = params.get(f"g{n}", "")
        if key:
            bucket = params.get(f"g{n}_bucket", "")
            groups.append({"field": key, **({"bucket": bucket} if bucket else {})})
    if groups:
        raw["group_by"] = groups
    aggregates = []
    for fn, key in zip(params.getlist("a_fn"), params.getlist("a_field"), strict=False):
        if not fn:
            continue
        if fn.startswith("p") and fn[1:].isdigit():
            aggregates.append({"fn": "percentile", "field": key, "p": int(fn[1:])})
        else:
            aggregates.append({"fn": fn, **({"field": key} if key and fn != "count" else {})})
    if aggregates:
        raw["aggregates"] = aggregates
    for name in ("sort", "date_field", "date_from", "date_to", "compare"):
        if params.get(name):
            raw[name] = params[name]
    limit = params.get("limit", "")
    if limit:
        raw["limit"] = int(limit) if limit.isdigit() else limit
    return raw


def params_from_spec(spec: dict[str, Any], *, chart: str = "") -> QueryDict:
    """The builder's address of a saved query (the inverse of spec_from_params)."""
    out = QueryDict(mutable=True)
    out["collection"] = spec.get("collection", "")
    for name, value in (spec.get("filters") or {}).items():
        key, _, op = name.partition("__")
        out.appendlist("f_field", key)
        out.appendlist("f_op", op or "eq")
        out.appendlist("f_value", value)
    for n, g in enumerate(spec.get("group_by") or [], start=1):
        out[f"g{n}"] = g["field"]
        if g.get("bucket"):
            out[f"g{n}_bucket"] = g["bucket"]
    for a in spec.get("aggregates") or []:
        fn = f"p{a['p']:g}" if a["fn"] == "percentile" else a["fn"]
        out.appendlist("a_fn", fn)
        out.appendlist("a_field", a.get("field", ""))
    for name in ("sort", "date_field", "date_from", "date_to", "compare"):
        if spec.get(name):
            out[name] = spec[name]
    if spec.get("limit", LIMIT_DEFAULT) != LIMIT_DEFAULT:
        out["limit"] = str(spec["limit"])
    if chart:
        out["chart"] = chart
    return out


def builder_rows(params: QueryDict) -> dict[str, list[dict]]:
    """The builder's repeated rows (filters, aggregates) with what was chosen, plus empty ones to fill."""
    filters = [
        {"field": f, "op": o, "value": v}
        for f, o, v in zip(params.getlist("f_field"), params.getlist("f_op"), params.getlist("f_value"), strict=False)
        if f
    ]
    aggregates = [
        {"fn": fn, "field": f} for fn, f in zip(params.getlist("a_fn"), params.getlist("a_field"), strict=False) if fn
    ] or [{"fn": "count", "field": ""}]
    filters += [{"field": "", "op": "eq", "value": ""}] * max(1, FILTER_ROWS - len(filters))
    aggregates += [{"fn": "", "field": ""}] * max(1, AGGREGATE_ROWS - len(aggregates))
    return {"filters": filters, "aggregates": aggregates}


AGGREGATE_CHOICES = [
    ("count", "Count"),
    ("count_distinct", "Count distinct"),
    ("sum", "Sum"),
    ("avg", "Average"),
    ("min", "Min"),
    ("max", "Max"),
    ("median", "Median"),
    ("p90", "90th percentile"),
    ("p95", "95th percentile"),
    ("p99", "99th percentile"),
]
CHART_CHOICES = list(CHARTS.items())
BUCKET_CHOICES = [(b, b.title()) for b in BUCKETS]
COMPARE_CHOICES = list(COMPARES.items())
