"""Running a query for a console screen: the workspace's time zone, live data, errors as values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import Http404

from analytics import selectors
from analytics.charts import cell_label, chart_data, drill_url
from analytics.queries import QueryResult, query_for, query_run
from core.errors import NotFound, ServiceError
from records.models import Collection
from tenants.runtime import workspace_current

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


@dataclass
class Shown:
    """A result as a screen shows it: table rows with labels and drill-down links, and the chart's data."""

    result: QueryResult | None = None
    collection: Collection | None = None
    error: ServiceError | None = None
    chart: dict | None = None
    table: list[dict] | None = None


def query_show(raw: dict[str, Any], *, chart: str) -> Shown:
    try:
        collection, spec = query_for(raw=raw, livemode=True)
        result = query_run(spec=spec, livemode=True, time_zone=workspace_current().timezone)
    except ServiceError as exc:
        return Shown(error=exc)
    buckets = {g.key: g.bucket for g in spec.group_by}
    table = []
    for row in result.rows:
        cells = []
        for column, value in zip(result.columns, row, strict=True):
            if column.key.endswith("_change"):
                text = "—" if value is None else f"{value:+.1%}"
            else:
                text = cell_label(value, buckets.get(column.key))
            cells.append({"text": text, "numeric": column.kind == "value"})
        table.append({"cells": cells, "link": drill_url(result, collection, row)})
    return Shown(result=result, collection=collection, chart=chart_data(result, collection, chart), table=table)


def dashboard_or_404(request, pk: int):
    try:
        return selectors.dashboard_get(viewer=request.user, dashboard_id=pk)
    except NotFound as exc:
        raise Http404(exc.message) from exc


def saved_query_or_404(pk: int):
    try:
        return selectors.saved_query_get(query_id=pk)
    except NotFound as exc:
        raise Http404(exc.message) from exc
