"""A query result as a chart: labels, series and the drill-down address of each point, handed to the
vendored Chart.js (static/vendor/chartjs) as JSON. The result's table is always shown too (the
accessible alternative of every chart)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.urls import get_script_prefix, get_urlconf, reverse

from analytics.queries import BUILTIN_DATES, QueryResult, bucket_next, field_type

BUCKET_FORMATS = {"day": "%-d %b %Y", "week": "wk of %-d %b %Y", "month": "%b %Y", "quarter": "", "year": "%Y"}
MAX_POINTS = 500


def cell_label(value: Any, bucket: str | None = None) -> str:
    if value is None:
        return "(empty)"
    if isinstance(value, date) and bucket:
        if bucket == "quarter":
            return f"Q{(value.month - 1) // 3 + 1} {value.year}"
        return value.strftime(BUCKET_FORMATS[bucket])
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def drill_params(result: QueryResult, collection, row: list) -> dict[str, str] | None:
    """The records table's filters that show the records behind one result row (None: it cannot)."""
    spec = result.spec
    params = dict(spec.filters)
    tz = ZoneInfo(result.time_zone)
    for g, value in zip(spec.group_by, row, strict=False):
        if g.field in BUILTIN_DATES:
            return None
        if g.bucket:
            if value is None:
                params[f"{g.field}__isnull"] = "true"
                continue
            end = bucket_next(value, g.bucket)
            if field_type(collection, g.field) == "date":
                params[f"{g.field}__gte"], params[f"{g.field}__lt"] = value.isoformat(), end.isoformat()
            else:
                params[f"{g.field}__gte"] = _utc_text(value, tz)
                params[f"{g.field}__lt"] = _utc_text(end, tz)
        elif value is None:
            params[f"{g.field}__isnull"] = "true"
        else:
            params[g.field if g.field not in {"q", "sort"} else f"{g.field}__eq"] = (
                ("true" if value else "false") if isinstance(value, bool) else str(value)
            )
    return params


def _utc_text(day: date, tz: ZoneInfo) -> str:
    return datetime.combine(day, time(), tz).astimezone(UTC).isoformat().replace("+00:00", "Z")


@lru_cache(maxsize=512)
def _records_table_url(urlconf: str | None, prefix: str, slug: str) -> str:
    """The records table's address: what `reverse` answers depends on these three alone. A dashboard links
    every row of every tile (thousands), and `reverse` costs ~80 µs a call."""
    return reverse("records:table", args=[slug], urlconf=urlconf)


def drill_url(result: QueryResult, collection, row: list) -> str | None:
    params = drill_params(result, collection, row)
    if params is None:
        return None
    base = _records_table_url(get_urlconf(), get_script_prefix(), collection.slug)
    return base + ("?" + urlencode(params) if params else "")


def chart_data(result: QueryResult, collection, kind: str) -> dict:
    """{kind, labels, series: [{label, data}], links, number?} for static/js/analytics.js."""
    spec = result.spec
    groups = spec.group_by
    values = [c for c in result.columns if c.kind == "value" and not c.key.endswith("_change")]
    rows = result.rows[:MAX_POINTS]
    out: dict[str, Any] = {"kind": kind, "labels": [], "series": [], "links": []}
    if not groups:
        row = result.rows[0] if result.rows else []
        first = row[0] if row else None
        out["number"] = {"value": first, "label": values[0].label if values else "", "text": cell_label(first)}
        if spec.compare and len(row) >= 3:
            out["number"]["previous"] = cell_label(row[1])
            out["number"]["change"] = row[2]
        out["labels"] = [values[0].label] if values else []
        out["series"] = [{"label": c.label, "data": [row[i]]} for i, c in enumerate(values[:1])] if row else []
        return out
    first_bucket = groups[0].bucket
    if len(groups) == 2:
        # Pivot: the first grouping along the axis, one series per value of the second (first aggregate).
        labels: list = []
        series: dict[Any, dict] = {}
        at = len(groups)
        for row in rows:
            if row[0] not in labels:
                labels.append(row[0])
        for row in rows:
            s = series.setdefault(row[1], {"label": cell_label(row[1], groups[1].bucket), "data": [None] * len(labels)})
            s["data"][labels.index(row[0])] = row[at]
        out["labels"] = [cell_label(v, first_bucket) for v in labels]
        out["series"] = list(series.values())[:12]
        out["links"] = [drill_url(result, collection, [v]) for v in labels]
        return out
    out["labels"] = [cell_label(r[0], first_bucket) for r in rows]
    keys = [c.key for c in result.columns]
    out["series"] = [{"label": c.label, "data": [r[keys.index(c.key)] for r in rows]} for c in values]
    out["links"] = [drill_url(result, collection, r) for r in rows]
    return out
