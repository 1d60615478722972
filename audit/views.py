"""The audit log page: filter by actor, action and date; export the filtered events as CSV. Each
event's change reads as a table of fields with their value before and after; a bulk operation is one
event with its count, and the ids it touched behind a disclosure."""

import json
from typing import Any

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from audit.forms import AuditFilterForm
from audit.registry import action_label
from audit.selectors import audit_csv_rows, audit_event_list
from audit.vault import changes_open
from core.csv_cells import csv_writer
from rbac.permissions import permission_required


class _Echo:
    def write(self, value):
        return value


IDS_SHOWN = 200  # of a bulk event's ids, listed on the page (all of them are in the CSV export)


def _value_text(value: Any) -> str:
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def changes_display(changes: Any) -> dict:
    """An event's (opened) changes as the log shows them: `fields` rows (name, before, after) from its
    before/after maps, `ids` of a bulk operation, and `items` (name, value) for the rest."""
    if not isinstance(changes, dict):
        return {"fields": [], "ids": [], "items": [("change", _value_text(changes))] if changes else []}
    before, after = changes.get("before"), changes.get("after")
    fields = []
    if isinstance(before, dict) and isinstance(after, dict):
        for name in sorted(set(before) | set(after)):
            old = _value_text(before.get(name)) if name in before else "(not set)"
            new = _value_text(after.get(name)) if name in after else "(removed)"
            fields.append((name, old, new))
    ids = changes.get("ids") if isinstance(changes.get("ids"), list) else []
    skip = {"before", "after", "ids"} if fields or not (before or after) else {"ids"}
    items = [(k, _value_text(v)) for k, v in changes.items() if k not in skip]
    return {
        "fields": fields,
        "ids": [str(i) for i in ids[:IDS_SHOWN]],
        "ids_more": max(0, len(ids) - IDS_SHOWN),
        "items": items,
    }


@permission_required("audit.view")
def audit_log(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    events = audit_event_list(
        actor=filters.get("actor", ""),
        action=filters.get("action", ""),
        date_from=filters.get("date_from"),
        date_to=filters.get("date_to"),
    )
    if request.GET.get("format") == "csv" and not form.errors:
        writer = csv_writer(_Echo())
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response = StreamingHttpResponse(
            (writer.writerow(row) for row in audit_csv_rows(events)), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
        return response
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    keys: dict = {}
    for event in page.object_list:
        event.label = action_label(event.action)
        event.changes_shown = changes_display(changes_open(event.changes, keys=keys))  # sealed values opened
    query = request.GET.copy()
    query.pop("page", None)
    template = "audit/_events.html" if request.headers.get("HX-Request") else "audit/log.html"
    return render(
        request, template, {"form": form, "page": page, "query": query.urlencode()}, status=400 if form.errors else 200
    )
