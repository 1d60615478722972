"""The records table of a collection: search, filters, sort, cursor pages and counts."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods

from rbac.permissions import has_permission, permission_required
from records.errors import RecordError
from records.forms import message_plain
from records.models import Collection, Record
from records.query import (
    BUILTIN_SORTS,
    COUNT_CAP,
    FREEZE_MAX,
    OP_LABELS,
    PAGE_SIZES,
    RESERVED_PARAMS,
    UNSORTABLE_TYPES,
    Sort,
    TableQuery,
    record_table_page,
    record_title,
    table_query_parse,
)
from records.sort_indexes import sort_index_request
from records.table_views import table_views_visible
from records.views.bulk_jobs import bulk_jobs_context
from records.views.common import _cell, _collection, _htmx, _page, _qs, _reference_titles, _tz, writes_open
from records.views.undo import undo_pending


@require_http_methods(["GET"])
@permission_required("records.view")
def record_table(request: HttpRequest, slug: str) -> HttpResponse:
    collection = _collection(slug)
    error: RecordError | None = None
    page = None
    try:
        query = table_query_parse(collection, request.GET)
        if query.sort.key not in BUILTIN_SORTS:
            sort_index_request(collection, query.sort.key)  # big collections: a worker builds its sort index
        page = record_table_page(collection, query)
    except RecordError as exc:
        error = exc
        query = _query_salvage(collection, request.GET)
    canonical = None
    if error is None and ("filter_field" in request.GET or "cols" in request.GET):
        canonical = reverse("records:table", args=[slug]) + _qs(query.params())
        if not _htmx(request):
            return redirect(canonical)
    context = _table_context(request, collection, query, page, error)
    if query.count and _htmx(request) and not error:
        return _page(request, "records/_count.html", context)
    template = "records/_table.html" if _htmx(request) else "records/table.html"
    response = _page(request, template, context, status=400 if error else 200)
    if canonical:
        response["HX-Push-Url"] = canonical
    return response


def _query_salvage(collection: Collection, params: QueryDict) -> TableQuery:
    """What can be kept of a table URL that failed: its search and filters, for the form to show."""
    query = TableQuery(sort=Sort("id", True))
    query.q = params.get("q", "")[:200]
    with_fields = {f["key"] for f in collection.fields}
    query.filters = {
        k: v[:500] for k, v in params.items() if k.partition("__")[0] in with_fields and k not in RESERVED_PARAMS
    }
    return query


def _table_context(
    request: HttpRequest, collection: Collection, query: TableQuery, page, error: RecordError | None
) -> dict:
    base = reverse("records:table", args=[collection.slug])
    tz = _tz()
    specs = collection.fields
    columns = []
    for spec in specs:
        sortable = spec["type"] not in UNSORTABLE_TYPES
        columns.append(_column(base, query, spec["key"], spec.get("label") or spec["key"], sortable, spec["type"]))
    updated_column = _column(base, query, "updated_at", BUILTIN_SORTS["updated_at"], True, "datetime")
    records = page.records if page else []
    shown = RowShown(collection, tz, _reference_titles(collection, records), hidden=set(query.hidden))
    rows = [row_context(shown, record) for record in records]
    filters = []
    for name, value in query.filters.items():
        key, _, op = name.partition("__")
        spec = collection.field(key) or {"label": key}
        remaining = {k: v for k, v in query.filters.items() if k != name}
        params = query.params()
        for k in query.filters:
            params.pop(k, None)
        for k, v in remaining.items():
            params[k] = v
        filters.append(
            {
                "label": spec.get("label") or key,
                "op": OP_LABELS.get(op or "eq", op),
                "value": "" if op == "isnull" and value in {"true", "1"} else value,
                "remove_url": base + _qs(params),
            }
        )
    params = query.params()
    pager = {}
    if page:
        if page.has_prev:
            pager["first"] = base + _qs(params)
            prev = params.copy()
            prev["before"] = page.prev_cursor
            pager["prev"] = base + _qs(prev)
        if page.has_next:
            nxt = params.copy()
            nxt["after"] = page.next_cursor
            pager["next"] = base + _qs(nxt)
            last = params.copy()
            last["before"] = "end"
            pager["last"] = base + _qs(last)
    export_qs = _qs(params)
    per_page_links = []
    for size in PAGE_SIZES:
        p = query.params(per_page=str(size) if size != 50 else None)
        per_page_links.append({"size": size, "url": base + _qs(p), "current": size == query.per_page})
    return {
        **_views_context(request, collection, query, base),
        **bulk_jobs_context(collection),
        "undo": undo_pending(request, collection) if has_permission(request.user, "records.edit") else None,
        "collection": collection,
        "query": query,
        "page": page,
        "count_label": _count_label(page, bool(query.filters or query.q)),
        "rows": rows,
        "columns": columns,
        "updated_column": updated_column,
        "filters": filters,
        "hidden_params": [(k, v) for k, v in params.items() if k != "q"],
        "filter_hidden_params": [(k, v) for k, v in params.items()],
        "error": error,
        "error_message": message_plain(error.message) if error else "",
        "pager": pager,
        "filtered": bool(query.filters or query.q),
        "op_choices": list(OP_LABELS.items()),
        "filter_fields": list(specs),
        "per_page_links": per_page_links,
        "export_csv": reverse("records:export", args=[collection.slug, "csv"]) + export_qs,
        "export_json": reverse("records:export", args=[collection.slug, "json"]) + export_qs,
        "can_edit": has_permission(request.user, "records.edit") and writes_open(),
        "can_export": has_permission(request.user, "records.export"),
        "can_manage": has_permission(request.user, "collections.manage") and writes_open(),
        "clear_url": base,
        "count_url": base + _qs(query.params(count="1")),
        "search_remove_url": base + _qs(query.params(q=None)),
        "table_url": base,
        "cell_url": reverse("records:record_cell", args=[collection.slug, "__id__", "__key__"]),
        "bulk_url": reverse("records:bulk", args=[collection.slug]),
        "here": request.get_full_path(),
        "query_string": params.urlencode(),
    }


def _views_context(request: HttpRequest, collection: Collection, query: TableQuery, base: str) -> dict:
    """The saved views bar and the columns menu: which views there are, which one is open (and whether
    the table has changed since it was saved), and the table's query as a view would keep it."""
    saving = query.params(view=None).urlencode()
    current = None
    views = []
    for view in table_views_visible(collection=collection, user=request.user):
        is_current = str(view.pk) == query.view
        views.append(
            {
                "pk": view.pk,
                "name": view.name,
                "shared": view.shared,
                "url": base + "?" + "&".join(p for p in (view.query, f"view={view.pk}") if p),
                "current": is_current,
            }
        )
        if is_current:
            current = view
    may_change = current is not None and (
        current.owner_id == request.user.pk if current.owner_id else has_permission(request.user, "records.edit")
    )
    columns_params = [(k, v) for k, v in query.params().items() if k not in {"hide"}]
    return {
        "views": views,
        "current_view": current,
        "current_view_changed": current is not None and current.query != saving,
        "current_view_may_change": may_change,
        "view_query": saving,
        "can_share_views": has_permission(request.user, "records.edit"),
        "columns_params": columns_params,
        "freeze_choices": list(range(FREEZE_MAX + 1)),
        "layout_widths": ",".join(f"{k}:{w}" for k, w in query.widths.items()),
    }


def _count_label(page, filtered: bool) -> str:
    if page is None or page.count is None:
        return ""
    n = page.count
    if page.count_estimated:
        return f"About {n:,} records"
    if not page.count_exact:
        return f"More than {COUNT_CAP:,} matching records"
    noun = "record" if n == 1 else "records"
    return f"{n:,} matching {noun}" if filtered else f"{n:,} {noun}"


def _column(base: str, query: TableQuery, key: str, label: str, sortable: bool, ftype: str) -> dict:
    current = query.sort.key == key
    column = {"key": key, "label": label, "sortable": sortable, "sorted": "", "url": "", "numeric": False}
    column["hidden"] = key in query.hidden
    column["numeric"] = ftype in {"number", "integer"}
    if sortable:
        target = query.sort.toggled() if current else Sort(key, False)
        column["url"] = base + _qs(query.params(sort=target.param if target.param != "-id" else None))
        if current:
            column["sorted"] = "descending" if query.sort.descending else "ascending"
    return column


class RowShown:
    """What every row of one rendering shares: the collection, the time zone, reference titles."""

    def __init__(self, collection: Collection, tz, titles: dict, hidden: set[str] | None = None):
        self.collection = collection
        self.hidden = hidden or set()  # keys of hidden columns (their cells are rendered, hidden)
        self.tz = tz
        self.titles = titles
        self.targets = {f["collection"] for f in collection.fields if f["type"] == "reference"}
        self.record_base = reverse("records:record", args=[collection.slug, "_"])[:-2]


def row_context(shown: RowShown, record: Record, special: dict[str, str] | None = None) -> dict:
    """One row of the table (records/_row.html). `special` replaces a cell's HTML (an open editor, a
    conflict) by key."""
    url = f"{shown.record_base}{record.id}/"
    cells = []
    opener = next((f["key"] for f in shown.collection.fields if f["key"] not in shown.hidden), None)
    for spec in shown.collection.fields:
        key = spec["key"]
        if special and key in special:
            cells.append(special[key])
            continue
        cell = _cell(spec, record.data.get(key), shown.tz, shown.targets, shown.titles)
        cells.append(_cell_html(cell, url if key == opener else "", key, hidden=key in shown.hidden))
    return {
        "id": record.id,
        "version": record.version,
        "title": record_title(shown.collection, record.data, record.id),
        "cells": cells,
        "updated": timezone.localtime(record.updated_at, shown.tz),
        "updated_iso": record.updated_at.isoformat(),
    }


def _cell_html(cell: dict, open_url: str, key: str, hidden: bool = False) -> str:
    """One table cell, built here rather than in the template: 50 rows × every field add up."""
    classes = "num" if cell["kind"] in {"number", "integer"} else "mono" if cell["kind"] == "json" else ""
    attrs = format_html(' class="{}" data-key="{}"', classes, key) if classes else format_html(' data-key="{}"', key)
    if hidden:
        attrs += mark_safe(" hidden")
    if cell["title"]:
        attrs += format_html(' title="{}"', cell["title"])
    if open_url:
        inner = format_html('<a href="{}" class="open">{}</a>', open_url, cell["text"] or "(empty)")
    elif cell["href"] and cell["kind"] == "url":
        inner = format_html(
            '<a href="{}" rel="noopener noreferrer nofollow" target="_blank">{}</a>', cell["href"], cell["text"]
        )
    elif cell["href"]:
        inner = format_html('<a href="{}">{}</a>', cell["href"], cell["text"])
    else:
        inner = conditional_escape(cell["text"])
    return format_html("<td{}>{}</td>", attrs, inner)
