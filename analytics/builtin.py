"""Built-in dashboards of Tessera's own data — API usage, webhook deliveries, sync status — drawn with
the charts and tables of saved queries.

The data belongs to apps beside analytics (partners, webhooks, sync), which analytics may not import.
Each of them offers a provider, and settings.TESSERA_ANALYTICS_BUILTIN_DASHBOARDS (config) lists them:
slug → (title, dotted path). A provider is called inside the workspace as
`provider(date_from=date, date_to=date, tz=ZoneInfo)` and returns a list of panels, plain dicts:

    {"title": str,
     "kind": "number" | "line" | "bar" | "table",
     "number": {"text": str, "label": str},            # kind "number"
     "labels": [str], "series": [{"label": str, "data": [number | None]}],   # charts
     "reference": {"label": str, "value": number},    # optional: a limit drawn as a dashed line
     "stacked": bool,                                  # optional: stacked bars
     "columns": [str], "rows": [[str | number]]}       # always: the table (the chart's accessible twin)

This module checks that shape (a provider's mistake is a panel saying so, never a 500) and turns it into
what the templates and static/js/analytics.js draw.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils.module_loading import import_string

from analytics.charts import cell_label
from analytics.errors import AnalyticsError
from core.errors import NotFound
from tenants.runtime import workspace_current

logger = logging.getLogger(__name__)

DEFAULT_DAYS = 14
MAX_DAYS = 92
KINDS = {"number", "line", "bar", "table"}
# A limit far above what was used would flatten the usage to the axis: then the scale is logarithmic.
LOG_SCALE_ABOVE = 20


@dataclass
class Panel:
    title: str
    kind: str
    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool] = field(default_factory=list)
    number: dict | None = None
    chart: dict | None = None  # for static/js/analytics.js (json_script)
    error: str = ""
    dom_id: str = ""


def builtin_dashboards() -> list[tuple[str, str]]:
    """(slug, title) of every built-in dashboard, in the settings' order."""
    return [(slug, title) for slug, (title, _path) in settings.TESSERA_ANALYTICS_BUILTIN_DASHBOARDS.items()]


def workspace_zone() -> ZoneInfo:
    try:
        return ZoneInfo(workspace_current().timezone or "UTC")
    except Exception:
        return ZoneInfo("UTC")


def builtin_range(raw_from: str, raw_to: str, *, tz: ZoneInfo) -> tuple[date, date]:
    """The dashboard's local days: the last DEFAULT_DAYS up to today unless given (AnalyticsError if bad)."""
    today = datetime.now(tz).date()
    try:
        date_to = date.fromisoformat(raw_to) if raw_to else today
        date_from = date.fromisoformat(raw_from) if raw_from else date_to - timedelta(days=DEFAULT_DAYS - 1)
    except ValueError as exc:
        raise AnalyticsError("Dates are YYYY-MM-DD.", param="date_from") from exc
    if date_from > date_to:
        raise AnalyticsError("The range starts after it ends.", param="date_from")
    if (date_to - date_from).days >= MAX_DAYS:
        raise AnalyticsError(f"Show at most {MAX_DAYS} days at a time.", param="date_from")
    return date_from, date_to


def builtin_panels(*, slug: str, date_from: date, date_to: date, tz: ZoneInfo) -> tuple[str, list[Panel]]:
    """The title and panels of built-in dashboard `slug` over the range (NotFound for an unknown slug)."""
    entry = settings.TESSERA_ANALYTICS_BUILTIN_DASHBOARDS.get(slug)
    if entry is None:
        raise NotFound("No such built-in dashboard.", param="slug")
    title, path = entry
    raw = import_string(path)(date_from=date_from, date_to=date_to, tz=tz)
    panels = [_panel(p, n) for n, p in enumerate(raw if isinstance(raw, list) else [])]
    for n, panel in enumerate(panels):
        panel.dom_id = f"builtin-{n}-chart-data"
    return title, panels


def _text(value: Any) -> str:
    return cell_label(value) if value is not None else "—"


def _panel(raw: Any, n: int) -> Panel:
    try:
        return _panel_checked(raw, n)
    except (AnalyticsError, TypeError, KeyError, ValueError) as exc:
        logger.warning("built-in dashboard panel %s is malformed: %s", n, exc)
        title = raw.get("title", "") if isinstance(raw, dict) else ""
        return Panel(
            title=str(title) or "Panel", kind="table", columns=[], rows=[], error="This panel could not be drawn."
        )


def _panel_checked(raw: dict, n: int) -> Panel:
    kind = raw["kind"]
    if kind not in KINDS:
        raise AnalyticsError(f"unknown kind {kind!r}")
    columns = [str(c) for c in raw["columns"]]
    rows = [list(r) for r in raw["rows"]]
    if any(len(r) != len(columns) for r in rows):
        raise AnalyticsError("a row does not match the columns")
    numeric = [bool(rows) and all(isinstance(r[i], int | float) for r in rows) for i in range(len(columns))]
    panel = Panel(
        title=str(raw["title"]),
        kind=kind,
        columns=columns,
        rows=[[_text(v) for v in r] for r in rows],
        numeric=numeric,
    )
    if kind == "number":
        panel.number = {"text": str(raw["number"]["text"]), "label": str(raw["number"].get("label", ""))}
    elif kind in {"line", "bar"}:
        labels = [str(v) for v in raw["labels"]]
        series = [{"label": str(s["label"]), "data": list(s["data"])} for s in raw["series"]]
        if any(len(s["data"]) != len(labels) for s in series):
            raise AnalyticsError("a series does not match the labels")
        chart: dict[str, Any] = {"kind": kind, "labels": labels, "series": series, "links": []}
        if raw.get("stacked"):
            chart["stacked"] = True
        reference = raw.get("reference")
        if reference:
            chart["reference"] = {"label": str(reference["label"]), "value": float(reference["value"])}
            peak = max((v for s in series for v in s["data"] if isinstance(v, int | float)), default=0)
            if reference["value"] > LOG_SCALE_ABOVE * max(peak, 1):
                chart["scale"] = "logarithmic"
        panel.chart = chart
    return panel
