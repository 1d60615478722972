"""One record: the new-record form, the edit form (a stale edit that collides shows both values, 409),
deletion and the history of its changes."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from audit.registry import action_label
from audit.vault import changes_open
from core.actors import Actor
from rbac.permissions import has_permission, permission_required
from records.errors import MergeConflict, NotFound, RecordError, VersionMismatch, WriteForbidden
from records.forms import RecordForm, form_errors_from
from records.models import Collection
from records.query import record_title
from records.selectors import collection_get, record_get, record_history, record_list
from records.services import record_create, record_delete, record_merge_preview, record_update
from records.views.common import _cell, _collection, _live, _page, _record, _reference_titles, _tz, writes_open

REFERENCE_SELECT_MAX = 200


def _reference_options(collection: Collection) -> dict[str, list[tuple[str, str]] | None]:
    """A select's options for each reference field whose target is small enough; else a text input."""
    out: dict[str, list[tuple[str, str]] | None] = {}
    for spec in collection.fields:
        if spec["type"] != "reference":
            continue
        try:
            target = collection_get(livemode=_live(), slug=spec["collection"])
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
    may_edit = has_permission(request.user, "records.edit")
    can_edit = may_edit and writes_open()  # read-only workspace: the details, not a form
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
    if not may_edit:
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
    vault_keys: dict = {}  # the vault's keys, read once per subject for the page
    for event in page.object_list:
        changes = changes_open(event.changes or {}, keys=vault_keys)  # sealed values, or "[erased]"
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
