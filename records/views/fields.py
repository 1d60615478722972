"""The collection settings page: its details and the field editor (add, edit, move, remove a field).
With htmx the field editor updates in place (`HX-Request` requests get the fragment only)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from rbac.permissions import has_permission, permission_required
from records.errors import RecordError, WriteForbidden
from records.fields import FIELD_TYPES
from records.forms import CollectionDetailsForm, FieldForm, form_errors_from, message_plain
from records.models import Collection
from records.selectors import collection_list, record_list
from records.services import collection_update
from records.views.common import _collection, _htmx, _live, _page, writes_open


def _fields_context(collection: Collection) -> list[dict]:
    targets = {c.slug: c for c in collection_list(livemode=_live())}
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
    can_manage = has_permission(request.user, "collections.manage") and writes_open()
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
    targets = list(collection_list(livemode=_live()))
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
