"""Console pages for records: collections and their fields, the records table, the record form and
its history, CSV import and CSV/JSON export. Every write goes through records.services; bad input
re-renders the form with status 400, a stale edit that collides shows both values (409).

Pages work without JavaScript; with htmx, the field editor and the table update in place
(`HX-Request` requests get the fragment only).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.html import conditional_escape, format_html
from django.views.decorators.http import require_http_methods, require_POST

from audit.registry import action_label
from core.actors import Actor
from rbac.permissions import has_permission, permission_required
from records.errors import MergeConflict, NotFound, RecordError, VersionMismatch, WriteForbidden
from records.exports import FORMATS, records_export
from records.fields import FIELD_TYPES
from records.forms import (
    CollectionCreateForm,
    CollectionDetailsForm,
    FieldForm,
    ImportMappingForm,
    ImportUploadForm,
    RecordForm,
    form_errors_from,
    message_plain,
)
from records.imports import (
    IMPORT_MAX_BYTES,
    CellError,
    ImportProgress,
    csv_preview,
    import_discard,
    import_stage,
    import_staged,
    mapping_guess,
    records_import,
)
from records.models import Collection, Record
from records.query import (
    BUILTIN_SORTS,
    COUNT_CAP,
    OP_LABELS,
    PAGE_SIZES,
    RESERVED_PARAMS,
    UNSORTABLE_TYPES,
    Sort,
    TableQuery,
    collection_record_counts,
    record_table_page,
    record_title,
    record_titles,
    table_query_parse,
)
from records.selectors import (
    collection_get,
    collection_list,
    record_get,
    record_history,
    record_list,
)
from records.services import (
    collection_create,
    collection_delete,
    collection_update,
    record_create,
    record_delete,
    record_merge_preview,
    record_update,
)
from records.sort_indexes import sort_index_request
from tenants.runtime import workspace_current

LIVE = True  # the console always works on live data; sandbox rows belong to test-mode API keys
REFERENCE_SELECT_MAX = 200


# --- helpers -------------------------------------------------------------------------------------------


def _collection(slug: str) -> Collection:
    try:
        return collection_get(livemode=LIVE, slug=slug)
    except NotFound as exc:
        raise Http404(exc.message) from exc


def _record(collection: Collection, record_id: str) -> Record:
    try:
        return record_get(collection=collection, record_id=record_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc


def _tz() -> ZoneInfo:
    try:
        return ZoneInfo(workspace_current().timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _htmx(request: HttpRequest) -> bool:
    """An htmx request that wants a fragment (a history restore wants the whole page)."""
    return request.headers.get("HX-Request") == "true" and not request.headers.get("HX-History-Restore-Request")


def _page(request: HttpRequest, template: str, context: dict, status: int = 200) -> HttpResponse:
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _streaming(request: HttpRequest, chunks, content_type: str) -> StreamingHttpResponse:
    """Stream `chunks` (a sync iterator). Under ASGI each chunk is produced in the request's own thread
    (sync_to_async, thread-sensitive), so the response really streams instead of being buffered."""
    content = _async_chunks(chunks) if isinstance(request, ASGIRequest) else chunks
    response = StreamingHttpResponse(content, content_type=content_type)
    response["X-Accel-Buffering"] = "no"
    response["Cache-Control"] = "no-store"
    return response


async def _async_chunks(chunks):
    iterator = iter(chunks)
    done = object()
    step = sync_to_async(lambda: next(iterator, done), thread_sensitive=True)
    try:
        while (chunk := await step()) is not done:
            yield chunk
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            await sync_to_async(close, thread_sensitive=True)()


def _fields_context(collection: Collection) -> list[dict]:
    targets = {c.slug: c for c in collection_list(livemode=LIVE)}
    out = []
    for i, spec in enumerate(collection.fields):
        target = targets.get(spec.get("collection", "")) if spec["type"] == "reference" else None
        default = spec.get("default")
        out.append(
            {
                **spec,
                "position": i,
                "type_label": _type_label(spec["type"]),
                "default_text": ""
                if default is None
                else json.dumps(default)
                if not isinstance(default, str)
                else default,
                "target": target,
                "first": i == 0,
                "last": i == len(collection.fields) - 1,
            }
        )
    return out


def _type_label(ftype: str) -> str:
    return FIELD_TYPES.get(ftype, ftype)


# --- collections ---------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@permission_required("collections.view")
def collections(request: HttpRequest) -> HttpResponse:
    can_manage = has_permission(request.user, "collections.manage")
    form = None
    status = 200
    if can_manage:
        form = CollectionCreateForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied("collections.manage")
        if form.is_valid():
            try:
                collection = collection_create(
                    actor=request.user,
                    name=form.cleaned_data["name"],
                    slug=form.cleaned_data["slug"],
                    description=form.cleaned_data["description"],
                    fields=[],
                    livemode=LIVE,
                )
            except RecordError as exc:
                form_errors_from(form, exc, field_for=lambda p: p if p in {"name", "slug"} else None)
            else:
                messages.success(request, f"Collection “{collection.name}” created. Now add its fields.")
                return redirect("records:collection", slug=collection.slug)
        status = 400
    items = list(collection_list(livemode=LIVE))
    counts = collection_record_counts(items)
    for c in items:
        n, c.record_count_estimated = counts[c.pk]
        c.record_count_label = f"{n:,}"
    return _page(
        request,
        "records/collections.html",
        {"collections": items, "form": form, "can_manage": can_manage},
        status=status,
    )


@require_http_methods(["GET", "POST"])
@permission_required("collections.view")
def collection_settings(request: HttpRequest, slug: str) -> HttpResponse:
    collection = _collection(slug)
    can_manage = has_permission(request.user, "collections.manage")
    details = None
    status = 200
    if can_manage:
        details = CollectionDetailsForm(
            request.POST if request.method == "POST" else None,
            initial={"name": collection.name, "description": collection.description},
        )
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied("collections.manage")
        if details.is_valid():
            try:
                collection_update(
                    actor=request.user,
                    collection=collection,
                    name=details.cleaned_data["name"],
                    description=details.cleaned_data["description"],
                )
            except RecordError as exc:
                form_errors_from(details, exc, field_for=lambda p: p if p in {"name", "description"} else None)
            else:
                messages.success(request, "Saved.")
                return redirect("records:collection", slug=collection.slug)
        status = 400
    if request.method == "GET" and _htmx(request):  # "Cancel" in the field editor
        return _fields_response(request, collection)
    return _page(
        request, "records/collection.html", _settings_context(request, collection, details=details), status=status
    )


def _settings_context(request: HttpRequest, collection: Collection, **extra: Any) -> dict:
    can_manage = has_permission(request.user, "collections.manage")
    context = {
        "collection": collection,
        "fields": _fields_context(collection),
        "can_manage": can_manage,
        "add_form": None,
        "editing": None,
        "edit_form": None,
        "removing": None,
        "notice": "",
        "record_count": record_list(collection=collection).count(),
    }
    if can_manage and "add_form" not in extra:
        context["add_form"] = _field_form(collection, None, prefix="add")
    context.update(extra)
    return context


def _field_form(collection: Collection, existing: dict | None, data=None, prefix: str | None = None) -> FieldForm:
    targets = list(collection_list(livemode=LIVE))
    return FieldForm(data, collection=collection, existing=existing, targets=targets, prefix=prefix)


def _fields_response(request: HttpRequest, collection: Collection, *, status: int = 200, **extra: Any):
    """The field editor: the fragment for htmx, else back to the collection page (or a page of its own)."""
    context = _settings_context(request, collection, **extra)
    return _page(request, "records/_fields.html", context, status=status)


def _field_spec(collection: Collection, field_id: str) -> dict:
    spec = next((f for f in collection.fields if f["id"] == field_id), None)
    if spec is None:
        raise Http404("No such field.")
    return spec


def _field_error_target(param: str, code: str) -> str | None:
    if code == "required_without_default":
        return "default"
    if code == "unique_violation" and param == "fields":
        return "unique"
    return FieldForm.field_for(param)


def _fields_save(request: HttpRequest, collection: Collection, fields: list[dict], form: FieldForm | None) -> bool:
    try:
        updated = collection_update(actor=request.user, collection=collection, fields=fields)
    except WriteForbidden as exc:
        raise PermissionDenied(exc.message) from exc
    except RecordError as exc:
        if form is None:
            messages.error(request, message_plain(exc.message))
        else:
            code = exc.code
            form_errors_from(form, exc, field_for=lambda p: _field_error_target(p, code))
        return False
    return updated is not None


@require_POST
@permission_required("collections.manage")
def field_add(request: HttpRequest, slug: str) -> HttpResponse:
    collection = _collection(slug)
    form = _field_form(collection, None, request.POST, prefix="add")
    if form.is_valid() and _fields_save(request, collection, [*collection.fields, form.definition()], form):
        key = form.cleaned_data["key"]
        collection.refresh_from_db()
        if _htmx(request):
            return _fields_response(request, collection, notice=f"Field “{key}” added.")
        messages.success(request, f"Field “{key}” added.")
        return redirect(reverse("records:collection", args=[slug]) + "#fields")
    if _htmx(request):
        return _fields_response(request, collection, status=400, add_form=form)
    return _page(request, "records/collection.html", _settings_context(request, collection, add_form=form), status=400)


@require_http_methods(["GET", "POST"])
@permission_required("collections.manage")
def field_edit(request: HttpRequest, slug: str, field_id: str) -> HttpResponse:
    collection = _collection(slug)
    spec = _field_spec(collection, field_id)
    if request.method == "GET":
        form = _field_form(collection, spec)
        if _htmx(request):
            return _fields_response(request, collection, editing=field_id, edit_form=form)
        return _page(request, "records/field_edit.html", {"collection": collection, "spec": spec, "form": form})
    form = _field_form(collection, spec, request.POST)
    if form.is_valid():
        fields = [form.definition() if f["id"] == field_id else f for f in collection.fields]
        if _fields_save(request, collection, fields, form):
            collection.refresh_from_db()
            renamed = form.cleaned_data["key"] != spec["key"]
            notice = (
                f"Field “{spec['key']}” renamed to “{form.cleaned_data['key']}”; its values moved with it."
                if renamed
                else f"Field “{spec['key']}” saved."
            )
            if _htmx(request):
                return _fields_response(request, collection, notice=notice)
            messages.success(request, notice)
            return redirect(reverse("records:collection", args=[slug]) + "#fields")
    if _htmx(request):
        return _fields_response(request, collection, status=400, editing=field_id, edit_form=form)
    return _page(request, "records/field_edit.html", {"collection": collection, "spec": spec, "form": form}, status=400)


@require_POST
@permission_required("collections.manage")
def field_move(request: HttpRequest, slug: str, field_id: str) -> HttpResponse:
    collection = _collection(slug)
    _field_spec(collection, field_id)
    direction = request.POST.get("direction")
    fields = list(collection.fields)
    i = next(n for n, f in enumerate(fields) if f["id"] == field_id)
    j = i - 1 if direction == "up" else i + 1 if direction == "down" else None
    if j is None:
        return HttpResponse("Choose up or down.", status=400, content_type="text/plain")
    if 0 <= j < len(fields):
        fields[i], fields[j] = fields[j], fields[i]
        _fields_save(request, collection, fields, None)
        collection.refresh_from_db()
    if _htmx(request):
        return _fields_response(request, collection)
    return redirect(reverse("records:collection", args=[slug]) + "#fields")


@require_http_methods(["GET", "POST"])
@permission_required("collections.manage")
def field_remove(request: HttpRequest, slug: str, field_id: str) -> HttpResponse:
    collection = _collection(slug)
    spec = _field_spec(collection, field_id)
    if request.method == "GET":
        with_values = record_list(collection=collection).filter(**{"data__has_key": spec["key"]}).count()
        if _htmx(request):
            return _fields_response(request, collection, removing=field_id, removing_values=with_values)
        return _page(
            request,
            "records/field_remove.html",
            {"collection": collection, "spec": spec, "with_values": with_values},
        )
    fields = [f for f in collection.fields if f["id"] != field_id]
    if _fields_save(request, collection, fields, None):
        collection.refresh_from_db()
        notice = f"Field “{spec['key']}” removed, with its values."
        if _htmx(request):
            return _fields_response(request, collection, notice=notice)
        messages.success(request, notice)
    return redirect(reverse("records:collection", args=[slug]) + "#fields")


@require_http_methods(["GET", "POST"])
@permission_required("collections.manage")
def collection_remove(request: HttpRequest, slug: str) -> HttpResponse:
    collection = _collection(slug)
    count = record_list(collection=collection).count()
    if request.method == "POST":
        try:
            collection_delete(actor=request.user, collection=collection)
        except RecordError as exc:
            messages.error(request, message_plain(exc.message))
            return redirect("records:collection", slug=slug)
        messages.success(request, f"Collection “{collection.name}” deleted.")
        return redirect("records:collections")
    return _page(request, "records/collection_remove.html", {"collection": collection, "record_count": count})


# --- the records table -----------------------------------------------------------------------------------


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
    if error is None and "filter_field" in request.GET:
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


def _qs(params: QueryDict) -> str:
    encoded = params.urlencode()
    return "?" + encoded if encoded else ""


def _table_context(
    request: HttpRequest, collection: Collection, query: TableQuery, page, error: RecordError | None
) -> dict:
    base = reverse("records:table", args=[collection.slug])
    tz = _tz()
    specs = collection.fields
    targets = {f["collection"] for f in specs if f["type"] == "reference"}
    columns = []
    for spec in specs:
        sortable = spec["type"] not in UNSORTABLE_TYPES
        columns.append(_column(base, query, spec["key"], spec.get("label") or spec["key"], sortable, spec["type"]))
    updated_column = _column(base, query, "updated_at", BUILTIN_SORTS["updated_at"], True, "datetime")
    rows = []
    record_base = reverse("records:record", args=[collection.slug, "_"])[:-2]
    titles = _reference_titles(collection, page.records if page else [])
    for record in page.records if page else []:
        url = f"{record_base}{record.id}/"
        cells = [
            _cell_html(_cell(spec, record.data.get(spec["key"]), tz, targets, titles), url if n == 0 else "")
            for n, spec in enumerate(specs)
        ]
        updated = timezone.localtime(record.updated_at, tz)
        rows.append({"id": record.id, "cells": cells, "updated": updated, "updated_iso": record.updated_at.isoformat()})
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
        "can_edit": has_permission(request.user, "records.edit"),
        "can_export": has_permission(request.user, "records.export"),
        "can_manage": has_permission(request.user, "collections.manage"),
        "clear_url": base,
        "count_url": base + _qs(query.params(count="1")),
        "search_remove_url": base + _qs(query.params(q=None)),
        "table_url": base,
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
    column["numeric"] = ftype in {"number", "integer"}
    if sortable:
        target = query.sort.toggled() if current else Sort(key, False)
        column["url"] = base + _qs(query.params(sort=target.param if target.param != "-id" else None))
        if current:
            column["sorted"] = "descending" if query.sort.descending else "ascending"
    return column


def _cell_html(cell: dict, open_url: str) -> str:
    """One table cell, built here rather than in the template: 50 rows × every field add up."""
    classes = "num" if cell["kind"] in {"number", "integer"} else "mono" if cell["kind"] == "json" else ""
    attrs = format_html(' class="{}"', classes) if classes else ""
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


def _reference_titles(collection: Collection, records: list[Record]) -> dict[str, dict[str, str]]:
    """{target slug: {id: title}} for the reference values shown on a page (one query per target)."""
    wanted: dict[str, set[str]] = {}
    for spec in collection.fields:
        if spec["type"] == "reference":
            ids = {r.data[spec["key"]] for r in records if isinstance(r.data.get(spec["key"]), str)}
            wanted.setdefault(spec["collection"], set()).update(ids)
    return {slug: record_titles(livemode=LIVE, collection_slug=slug, ids=ids) for slug, ids in wanted.items() if ids}


def _cell(spec: dict, value: Any, tz: ZoneInfo, targets: set[str], titles: dict | None = None) -> dict:
    t = spec["type"]
    cell: dict[str, Any] = {"text": "", "href": "", "kind": t, "title": ""}
    if value is None:
        return cell
    if t == "boolean":
        cell["text"] = "Yes" if value else "No"
    elif t == "datetime" and isinstance(value, str):
        try:
            cell["text"] = (
                datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(tz).strftime("%Y-%m-%d %H:%M")
            )
        except ValueError:
            cell["text"] = value
        cell["title"] = value
    elif t == "json":
        cell["text"] = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    elif t == "url" and isinstance(value, str):
        cell["text"], cell["href"] = value, value
    elif t == "email" and isinstance(value, str):
        cell["text"], cell["href"] = value, f"mailto:{value}"
    elif t == "reference" and isinstance(value, str):
        cell["text"] = ((titles or {}).get(spec["collection"]) or {}).get(value, value)
        cell["href"] = reverse("records:record", args=[spec["collection"], value])
        cell["title"] = value
    else:
        cell["text"] = str(value)
    if len(cell["text"]) > 120:
        cell["title"] = cell["title"] or cell["text"][:1000]
        cell["text"] = cell["text"][:119] + "…"
    return cell


# --- one record ------------------------------------------------------------------------------------------


def _reference_options(collection: Collection) -> dict[str, list[tuple[str, str]] | None]:
    """A select's options for each reference field whose target is small enough; else a text input."""
    out: dict[str, list[tuple[str, str]] | None] = {}
    for spec in collection.fields:
        if spec["type"] != "reference":
            continue
        try:
            target = collection_get(livemode=LIVE, slug=spec["collection"])
        except NotFound:
            out[spec["key"]] = None
            continue
        rows = list(record_list(collection=target).order_by("id")[: REFERENCE_SELECT_MAX + 1])
        if len(rows) > REFERENCE_SELECT_MAX:
            out[spec["key"]] = None
            continue
        out[spec["key"]] = []
        for r in rows:
            title = record_title(target, r.data, r.id)
            out[spec["key"]].append((r.id, f"{title} · {r.id[-6:]}" if title != r.id else r.id))
    return out


def _record_form(collection: Collection, data=None, initial=None) -> RecordForm:
    return RecordForm(
        data, collection=collection, tz=_tz(), reference_options=_reference_options(collection), initial=initial
    )


def _base_version(request: HttpRequest) -> int | None:
    try:
        version = int(request.POST.get("base_version", ""))
    except ValueError:
        return None
    return version if 1 <= version <= 2**31 else None


@require_http_methods(["GET", "POST"])
@permission_required("records.edit")
def record_new(request: HttpRequest, slug: str) -> HttpResponse:
    collection = _collection(slug)
    defaults = {f["key"]: f["default"] for f in collection.fields if "default" in f}
    if request.method == "GET":
        form = _record_form(collection, initial=defaults)
        return _page(request, "records/record_form.html", {"collection": collection, "form": form, "record": None})
    form = _record_form(collection, request.POST, initial=defaults)
    if form.is_valid():
        try:
            record = record_create(actor=request.user, collection=collection, data=form.record_data())
        except WriteForbidden as exc:
            raise PermissionDenied(exc.message) from exc
        except RecordError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, "Record created.")
            if request.POST.get("then") == "another":
                return redirect("records:record_new", slug=slug)
            return redirect("records:record", slug=slug, record_id=record.id)
    return _page(
        request, "records/record_form.html", {"collection": collection, "form": form, "record": None}, status=400
    )


@require_http_methods(["GET", "POST"])
@permission_required("records.view")
def record_detail(request: HttpRequest, slug: str, record_id: str) -> HttpResponse:
    collection = _collection(slug)
    record = _record(collection, record_id)
    can_edit = has_permission(request.user, "records.edit")
    context: dict[str, Any] = {
        "collection": collection,
        "record": record,
        "title": record_title(collection, record.data, record.id),
        "can_edit": can_edit,
        "conflicts": [],
    }
    if request.method == "GET":
        context["base_version"] = record.version
        if can_edit:
            context["form"] = _record_form(collection, initial=record.data)
        else:
            tz = _tz()
            targets = {f["collection"] for f in collection.fields if f["type"] == "reference"}
            titles = _reference_titles(collection, [record])
            context["values"] = [
                {"spec": f, "cell": _cell(f, record.data.get(f["key"]), tz, targets, titles)} for f in collection.fields
            ]
        return _page(request, "records/record_form.html", context)
    if not can_edit:
        raise PermissionDenied("records.edit")
    form = _record_form(collection, request.POST, initial=record.data)
    base_version = _base_version(request)
    context.update(form=form, base_version=base_version or record.version)
    if base_version is None:
        form.is_valid()
        form.add_error(None, "This form is missing the version it was opened at; reload the record and try again.")
        return _page(request, "records/record_form.html", context, status=400)
    if not form.is_valid():
        return _page(request, "records/record_form.html", context, status=400)
    data = form.record_data(base=record.data)
    try:
        write = record_update(
            actor=request.user,
            record=record,
            data=data,
            partial=False,
            base_version=base_version,
            on_conflict="raise",
            keep_current=request.POST.getlist("theirs"),  # after a conflict: "keep the saved value" for these
        )
    except MergeConflict as exc:
        return _conflict(request, context, collection, record, base_version, data, exc)
    except VersionMismatch:
        form.add_error(None, "This record changed in a way that cannot be merged; reload it to see the latest version.")
        return _page(request, "records/record_form.html", context, status=409)
    except NotFound:
        messages.error(request, "This record was deleted while you edited it.")
        return redirect("records:table", slug=slug)
    except WriteForbidden as exc:
        raise PermissionDenied(exc.message) from exc
    except RecordError as exc:
        form_errors_from(form, exc)
        return _page(request, "records/record_form.html", context, status=400)
    if not write.changed:
        messages.info(request, "Nothing to save: the record already has these values.")
    elif write.merged:
        messages.success(
            request,
            "Saved. Someone else changed this record since you opened it; their changes to other fields were kept.",
        )
    else:
        messages.success(request, "Saved.")
    return redirect("records:record", slug=slug, record_id=record.id)


def _conflict(request, context, collection, record, base_version, data, exc: MergeConflict) -> HttpResponse:
    """Show the form again with the fields both sides changed: the saved value and the user's, side by side.
    Other fields show the merged result, so saving again keeps the other person's changes."""
    preview = record_merge_preview(record=record, base_version=base_version, data=data)
    current, merged, conflicts = preview.current, preview.merged, preview.conflicts
    tz = _tz()
    rows = []
    for c in conflicts:
        spec = collection.field(c.field) or {"key": c.field, "type": "text", "label": c.field}
        rows.append(
            {
                "key": c.field,
                "label": spec.get("label") or c.field,
                "theirs": _cell(spec, c.current, tz, set())["text"] or "(empty)",
                "mine": _cell(spec, c.incoming, tz, set())["text"] or "(empty)",
                "base": _cell(spec, c.base, tz, set())["text"] or "(empty)",
            }
        )
    who = Actor.from_stamp(current.updated_by).display if current.updated_by else "someone"
    context.update(
        form=_record_form(collection, initial=merged),
        base_version=current.version,
        record=current,
        conflicts=rows,
        conflict_by=who,
    )
    return _page(request, "records/record_form.html", context, status=409)


@require_http_methods(["GET", "POST"])
@permission_required("records.edit")
def record_remove(request: HttpRequest, slug: str, record_id: str) -> HttpResponse:
    collection = _collection(slug)
    record = _record(collection, record_id)
    context = {
        "collection": collection,
        "record": record,
        "title": record_title(collection, record.data, record.id),
        "base_version": record.version,
        "changed": False,
    }
    if request.method == "GET":
        return _page(request, "records/record_remove.html", context)
    base_version = _base_version(request)
    try:
        record_delete(actor=request.user, record=record, expected_version=base_version or record.version)
    except VersionMismatch:
        context["changed"] = True
        return _page(request, "records/record_remove.html", context, status=409)
    except WriteForbidden as exc:
        raise PermissionDenied(exc.message) from exc
    except NotFound:
        pass
    messages.success(request, "Record deleted.")
    return redirect("records:table", slug=slug)


@require_http_methods(["GET"])
@permission_required("records.view")
def record_history_view(request: HttpRequest, slug: str, record_id: str) -> HttpResponse:
    collection = _collection(slug)
    try:
        record = record_get(collection=collection, record_id=record_id, include_deleted=True)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    tz = _tz()
    page = Paginator(record_history(record), 25).get_page(request.GET.get("page"))
    order = {f["key"]: i for i, f in enumerate(collection.fields)}
    events = []
    for event in page.object_list:
        changes = event.changes or {}
        before, after = changes.get("before") or {}, changes.get("after") or {}
        keys = sorted(set(before) | set(after), key=lambda k: (order.get(k, len(order)), k))
        diffs = []
        for key in keys:
            spec = collection.field(key)
            shown = spec or {"key": key, "type": "json", "label": key}
            diffs.append(
                {
                    "label": (spec.get("label") or key) if spec else key,
                    "gone": spec is None,
                    "before": _cell(shown, before.get(key), tz, set())["text"],
                    "after": _cell(shown, after.get(key), tz, set())["text"],
                    "had_before": key in before and before.get(key) is not None,
                    "has_after": key in after and after.get(key) is not None,
                }
            )
        events.append(
            {
                "event": event,
                "label": action_label(event.action),
                "when": timezone.localtime(event.occurred_at, tz),
                "who": event.actor_label or event.get_actor_type_display(),
                "version": changes.get("version"),
                "diffs": diffs,
            }
        )
    return _page(
        request,
        "records/record_history.html",
        {
            "collection": collection,
            "record": record,
            "title": record_title(collection, record.data, record.id),
            "events": events,
            "page": page,
        },
    )


# --- import and export -----------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@permission_required("records.edit")
def record_import(request: HttpRequest, slug: str) -> HttpResponse:
    collection = _collection(slug)
    posted = request.method == "POST"
    form = ImportUploadForm(
        request.POST if posted else None, request.FILES if posted else None, max_bytes=IMPORT_MAX_BYTES
    )
    if request.method == "POST" and form.is_valid():
        staged = import_stage(user=request.user, collection=collection, upload=form.cleaned_data["file"])
        try:
            csv_preview(staged)
        except CellError as exc:
            import_discard(staged.token)
            form.add_error("file", exc.message)
        else:
            return redirect("records:import_map", slug=slug, token=staged.token)
    status = 400 if request.method == "POST" else 200
    return _page(request, "records/import.html", {"collection": collection, "form": form}, status=status)


@require_http_methods(["GET", "POST"])
@permission_required("records.edit")
def record_import_map(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    collection = _collection(slug)
    staged = import_staged(token=token, user=request.user, collection=collection)
    if staged is None:
        return _page(request, "records/import_gone.html", {"collection": collection}, status=410)
    header, preview = csv_preview(staged)
    form = ImportMappingForm(
        request.POST if request.method == "POST" else None,
        collection=collection,
        header=header,
        guess=mapping_guess(collection, header),
    )
    samples = [[row[i] for row in preview if i < len(row) and row[i].strip()] for i in range(len(header))]
    context = {
        "collection": collection,
        "form": form,
        "staged": staged,
        "columns": list(zip(form.column_fields(), samples, strict=True)),
    }
    if request.method == "GET" or not form.is_valid():
        return _page(request, "records/import_map.html", context, status=200 if request.method == "GET" else 400)
    check_only = request.POST.get("action") == "check"
    steps = records_import(
        actor=request.user,
        collection=collection,
        staged=staged,
        header=header,
        mapping=form.cleaned_data["mapping"],
        mode=form.cleaned_data["mode"],
        tz=_tz(),
        check_only=check_only,
    )
    page = render_to_string("records/import_run.html", {**context, "check_only": check_only}, request=request)
    head, _, rest = page.partition("<!--progress-->")
    middle, _, tail = rest.partition("<!--report-->")
    chunks = _import_page(request, collection, staged, steps, head, middle, tail)
    return _streaming(request, chunks, "text/html; charset=utf-8")


def _import_page(request, collection, staged, steps, head: str, middle: str, tail: str):
    """The import page as it happens: the page's top, a line per batch, then the report."""
    yield head.encode()
    report = None
    for step in steps:
        if isinstance(step, ImportProgress):
            verb = "Checked" if step.phase == "checking" else "Imported"
            yield f'<p class="progress-line">{verb} {step.rows:,} rows…</p>\n'.encode()
        else:
            report = step
    if report is not None and report.committed and not report.check_only:
        import_discard(staged.token)
    yield middle.encode()
    numbers = {}
    if report is not None:
        fields = ("rows", "created", "updated", "unchanged", "bad_rows", "errors_total")
        numbers = {name: f"{getattr(report, name):,}" for name in fields}
    yield render_to_string(
        "records/_import_report.html",
        {"collection": collection, "report": report, "n": numbers, "staged": staged},
        request=request,
    ).encode()
    yield tail.encode()


@require_http_methods(["GET"])
@permission_required("records.export")
def record_export(request: HttpRequest, slug: str, fmt: str) -> HttpResponse:
    if fmt not in FORMATS:
        raise Http404("No such export format.")
    collection = _collection(slug)
    try:
        query = table_query_parse(collection, request.GET)
        chunks = records_export(actor=request.user, collection=collection, query=query, fmt=fmt)
    except RecordError as exc:
        return HttpResponse(message_plain(exc.message), status=400, content_type="text/plain; charset=utf-8")
    response = _streaming(request, chunks, FORMATS[fmt])
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="{collection.slug}-{stamp}.{fmt}"'
    return response
