"""Console pages for the list of collections: create one, and delete one."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods

from rbac.permissions import has_permission, permission_required
from records.errors import RecordError
from records.forms import CollectionCreateForm, form_errors_from, message_plain
from records.query import collection_record_counts
from records.selectors import collection_list, record_list
from records.services import collection_create, collection_delete
from records.views.common import LIVE, _collection, _page, writes_open


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
        {"collections": items, "form": form, "can_manage": can_manage and writes_open()},
        status=status,
    )


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
