"""The audit log page: filter by actor, action and date; export the filtered events as CSV."""

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
        event.changes_shown = changes_open(event.changes, keys=keys)  # sealed personal values, or "[erased]"
    query = request.GET.copy()
    query.pop("page", None)
    template = "audit/_events.html" if request.headers.get("HX-Request") else "audit/log.html"
    return render(
        request, template, {"form": form, "page": page, "query": query.urlencode()}, status=400 if form.errors else 200
    )
