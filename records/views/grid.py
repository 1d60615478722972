"""Editing in the records table: one cell at a time, and bulk edit or delete of the selected rows.

A cell is saved through the write spine as a one-field patch made against the version the editor was
opened at: a change someone else made meanwhile to another field is merged; to the same field, the cell
shows their value next to yours (409) and you choose. A value the spine refuses keeps what you typed and
shows why (400). Every answer is the whole row, so its version and other cells are current.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from core.actors import Actor
from rbac.permissions import has_permission, permission_required
from records.errors import MergeConflict, NotFound, RecordError, VersionMismatch, WriteForbidden
from records.forms import RecordForm, message_plain
from records.models import Collection, Record
from records.query import record_table_queryset, record_title, table_query_parse
from records.services import (
    BULK_INLINE,
    BULK_JOB_MAX,
    UNDO_MAX,
    record_update,
    records_bulk_delete,
    records_bulk_job_start,
    records_bulk_update,
)
from records.views.common import _cell, _collection, _htmx, _page, _record, _reference_titles, _tz, writes_open
from records.views.record import _base_version, _reference_options
from records.views.table import RowShown, row_context
from records.views.undo import undo_offer


def _cell_form(collection: Collection, spec: dict, *, data=None, initial=None, auto_id: str = "id_%s") -> RecordForm:
    """The record form cut down to one field: the same input, parsing and checks as the full form."""
    form = RecordForm(
        data,
        collection=collection,
        tz=_tz(),
        reference_options=_reference_options(collection) if spec["type"] == "reference" else None,
        initial=initial,
        auto_id=auto_id,
    )
    form.fields = {spec["key"]: form.fields[spec["key"]]}
    return form


def _cell_value(form: RecordForm, spec: dict, base: dict) -> Any:
    """The field's new value as the record form would store it (None clears the field)."""
    return form.record_data(base=base).get(spec["key"])


def _hidden_columns(request: HttpRequest) -> set[str]:
    """The columns the table this row goes back into hides: htmx names the page it asks from."""
    current = request.headers.get("HX-Current-URL", "")
    _, _, query = current.partition("?")
    hide = QueryDict(query.partition("#")[0]).get("hide", "")
    return {k for k in hide.split(",") if k}


def _row_response(
    request: HttpRequest,
    collection: Collection,
    record: Record,
    *,
    special: dict[str, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    shown = RowShown(collection, _tz(), _reference_titles(collection, [record]), hidden=_hidden_columns(request))
    can_edit = has_permission(request.user, "records.edit") and writes_open()
    context = {"row": row_context(shown, record, special), "can_edit": can_edit}
    return _page(request, "records/_row.html", context, status=status)


def _editor_html(
    request: HttpRequest,
    collection: Collection,
    record: Record,
    spec: dict,
    form: RecordForm,
    base_version: int,
    conflict: dict | None = None,
) -> str:
    return render_to_string(
        "records/_cell_editor.html",
        {
            "collection": collection,
            "record": record,
            "spec": spec,
            "field": form[spec["key"]],
            "errors": [*form.non_field_errors(), *form.errors.get(spec["key"], [])],
            "base_version": base_version,
            "conflict": conflict,
            "cell_url": reverse("records:record_cell", args=[collection.slug, record.id, spec["key"]]),
            "row_url": reverse("records:record_row", args=[collection.slug, record.id]),
        },
        request=request,
    )


@require_http_methods(["GET"])
@permission_required("records.view")
def record_row(request: HttpRequest, slug: str, record_id: str) -> HttpResponse:
    """One row as the table shows it ("Cancel" in a cell editor, "Keep theirs" after a conflict)."""
    collection = _collection(slug)
    record = _record(collection, record_id)
    if not _htmx(request):
        return redirect("records:record", slug=slug, record_id=record_id)
    return _row_response(request, collection, record)


@require_http_methods(["GET", "POST"])
@permission_required("records.edit")
def record_cell(request: HttpRequest, slug: str, record_id: str, key: str) -> HttpResponse:
    collection = _collection(slug)
    spec = collection.field(key)
    if spec is None:
        raise Http404("No such field.")
    try:
        record = _record(collection, record_id)
    except Http404:
        if request.method == "POST" and _htmx(request):
            return _page(request, "records/_row_gone.html", {"collection": collection, "record_id": record_id})
        raise
    auto_id = f"cell-{record.id}-%s"
    if request.method == "GET":
        if not _htmx(request):
            return redirect("records:record", slug=slug, record_id=record_id)
        form = _cell_form(collection, spec, initial=record.data, auto_id=auto_id)
        editor = _editor_html(request, collection, record, spec, form, record.version)
        return _row_response(request, collection, record, special={key: editor})

    form = _cell_form(collection, spec, data=request.POST, initial=record.data, auto_id=auto_id)
    base_version = _base_version(request)
    status = 400
    if base_version is None:
        form.is_valid()
        form.add_error(None, "This cell was opened without its version; reload the table and try again.")
    elif form.is_valid():
        value = _cell_value(form, spec, record.data)
        try:
            write = record_update(
                actor=request.user,
                record=record,
                data={key: value},
                partial=True,
                base_version=base_version,
                on_conflict="raise",
            )
        except MergeConflict:
            return _conflict(request, collection, record, spec, form)
        except VersionMismatch:
            form.add_error(None, "This record changed in a way that cannot be merged; reload the table.")
            status = 409
        except NotFound:
            return _page(request, "records/_row_gone.html", {"collection": collection, "record_id": record_id})
        except WriteForbidden as exc:
            raise PermissionDenied(exc.message) from exc
        except RecordError as exc:
            form.add_error(None, message_plain(exc.message))
        else:
            record.refresh_from_db()
            response = _row_response(request, collection, record)
            if write.changed:
                label = spec.get("label") or key
                title = record_title(collection, record.data, record.id)
                undo_offer(
                    request,
                    collection,
                    {record.id: record.version},
                    label=f"“{label}” of {title} saved.",
                    undoes="cell",
                )
                response["HX-Trigger"] = "records-undo"  # the table asks for the toast (static/js/grid.js)
            return response
    editor = _editor_html(request, collection, record, spec, form, base_version or record.version)
    return _row_response(request, collection, record, special={key: editor}, status=status)


def _undo_bulk(request: HttpRequest, collection: Collection, ids: list[str], label: str, undoes: str) -> None:
    if not ids or len(ids) > UNDO_MAX:
        undo_offer(request, collection, {}, label="", undoes=undoes)  # too big to undo: no earlier offer either
        return
    versions = dict(Record.objects.filter(collection=collection, id__in=ids).values_list("id", "version"))
    undo_offer(request, collection, versions, label=label, undoes=undoes)


def _conflict(request: HttpRequest, collection: Collection, record: Record, spec: dict, form: RecordForm):
    """Someone changed this field while the cell was open: show their value and keep the one typed.
    Saving again (made against their version) replaces theirs; "Keep theirs" closes the editor."""
    current = Record.objects.get(pk=record.pk)
    tz = _tz()
    who = Actor.from_stamp(current.updated_by).display if current.updated_by else "someone"
    conflict = {
        "who": who,
        "theirs": _cell(spec, current.data.get(spec["key"]), tz, set())["text"] or "(empty)",
    }
    editor = _editor_html(request, collection, current, spec, form, current.version, conflict=conflict)
    return _row_response(request, collection, current, special={spec["key"]: editor}, status=409)


@require_POST
@permission_required("records.edit")
def records_bulk(request: HttpRequest, slug: str) -> HttpResponse:
    """The table's selection: delete it, or set one field to one value on every selected record. Up to
    BULK_INLINE records are changed before the answer (and can be undone); a bigger selection ("select
    all N matching") is handed to a worker, and the table shows its progress (records.views.bulk_jobs)."""
    collection = _collection(slug)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=False):
        back = ""
    back = back or reverse("records:table", args=[slug])
    ids = request.POST.getlist("ids")
    if request.POST.get("scope") == "matching":  # "select all N matching": the table's query, not a page
        try:
            query = table_query_parse(collection, QueryDict(request.POST.get("query", "")))
        except RecordError as exc:
            messages.error(request, message_plain(exc.message))
            return redirect(back)
        ids = list(record_table_queryset(collection, query).values_list("id", flat=True)[: BULK_JOB_MAX + 1])
    if not ids:
        messages.error(request, "Select the records first: tick their boxes in the first column.")
        return redirect(back)
    action = request.POST.get("action")
    data, label = None, ""
    if action == "set":
        spec = collection.field(request.POST.get("field", ""))
        if spec is None:
            messages.error(request, "Choose the field to set.")
            return redirect(back)
        form = _cell_form(collection, spec, data={f"f-{spec['key']}": request.POST.get("value", "")})
        if not form.is_valid():
            errors = "; ".join(str(e) for e in form.errors.get(spec["key"], ["This value is not valid."]))
            messages.error(request, f"{spec.get('label') or spec['key']}: {errors}")
            return redirect(back)
        data, label = {spec["key"]: _cell_value(form, spec, {})}, spec.get("label") or spec["key"]
    elif action != "delete":
        messages.error(request, "Choose what to do with the selected records.")
        return redirect(back)
    try:
        if len(set(ids)) > BULK_INLINE:
            job = records_bulk_job_start(
                actor=request.user,
                collection=collection,
                action=action,
                record_ids=ids,
                data=data,
                label=f"“{label}” set" if label else "Delete",
            )
            what = "Deleting" if action == "delete" else f"Setting “{label}” on"
            messages.success(request, f"{what} {job.total:,} records in the background: its progress is shown below.")
        elif action == "delete":
            deleted = records_bulk_delete(actor=request.user, collection=collection, record_ids=ids)
            messages.success(request, f"{len(deleted):,} record{'s' if len(deleted) != 1 else ''} deleted.")
            _undo_bulk(request, collection, deleted, f"{len(deleted):,} deleted.", "bulk_delete")
        else:
            changed = records_bulk_update(actor=request.user, collection=collection, record_ids=ids, data=data)
            messages.success(request, f"“{label}” set on {len(changed):,} record{'s' if len(changed) != 1 else ''}.")
            _undo_bulk(request, collection, changed, f"“{label}” set on {len(changed):,}.", "bulk_set")
    except WriteForbidden as exc:
        raise PermissionDenied(exc.message) from exc
    except RecordError as exc:
        messages.error(request, f"Nothing was changed: {message_plain(exc.message)}")
    return redirect(back)
