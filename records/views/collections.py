"""Console pages for the list of collections: create one, delete one (with its records, typed
confirmation first), and see deletions in progress."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from rbac.permissions import has_permission, permission_required
from records.errors import RecordError
from records.forms import CollectionCreateForm, CollectionDeleteForm, form_errors_from, message_plain
from records.query import collection_record_counts
from records.selectors import collection_deletions, collection_list, record_list
from records.services import DELETION_BATCH, collection_create, collection_delete
from records.views.common import _collection, _htmx, _live, _page, writes_open

# How long a finished deletion stays on the collections page (so whoever watched it sees it end).
DELETION_SHOWN_FOR = timedelta(minutes=10)


def _deletions() -> list[dict]:
    out = []
    for c in collection_deletions(livemode=_live(), finished_since=timezone.now() - DELETION_SHOWN_FOR):
        total, deleted = c.deletion.get("total", 0), c.deletion.get("deleted", 0)
        finished = "finished_at" in c.deletion
        deleted = total if finished else min(deleted, total)
        out.append(
            {
                "name": c.name,
                "total": total,
                "total_label": f"{total:,}",
                "deleted": deleted,
                "deleted_label": f"{deleted:,}",
                "finished": finished,
                "percent": 100 if not total else 100 * deleted // total,
            }
        )
    return out


def _deletions_context() -> dict:
    deletions = _deletions()
    return {"deletions": deletions, "polling": any(not d["finished"] for d in deletions)}


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
                    livemode=_live(),
                )
            except RecordError as exc:
                form_errors_from(form, exc, field_for=lambda p: p if p in {"name", "slug"} else None)
            else:
                messages.success(request, f"Collection “{collection.name}” created. Now add its fields.")
                return redirect("records:collection", slug=collection.slug)
        status = 400
    items = list(collection_list(livemode=_live()))
    counts = collection_record_counts(items)
    for c in items:
        n, c.record_count_estimated = counts[c.pk]
        c.record_count_label = f"{n:,}"
    return _page(
        request,
        "records/collections.html",
        {"collections": items, "form": form, "can_manage": can_manage and writes_open(), **_deletions_context()},
        status=status,
    )


@require_http_methods(["GET"])
@permission_required("collections.view")
def collection_deletions_status(request: HttpRequest) -> HttpResponse:
    """The collections page's "being deleted" section alone (htmx polls it while a deletion runs)."""
    if not _htmx(request):
        return redirect("records:collections")
    return _page(request, "records/_deletions.html", _deletions_context())


@require_http_methods(["GET", "POST"])
@permission_required("collections.manage")
def collection_remove(request: HttpRequest, slug: str) -> HttpResponse:
    collection = _collection(slug)
    count = record_list(collection=collection).count()
    form = CollectionDeleteForm(request.POST if request.method == "POST" else None, collection=collection)
    status = 200
    if request.method == "POST":
        # An empty collection needs no typed name; one that holds records does (counted again here).
        if count == 0 or form.is_valid():
            try:
                deleted = collection_delete(actor=request.user, collection=collection, with_records=count > 0)
            except RecordError as exc:
                messages.error(request, message_plain(exc.message))
                return redirect("records:collection", slug=slug)
            total = deleted.deletion.get("total", 0)
            if total and "finished_at" not in deleted.deletion:
                messages.success(
                    request,
                    f"Collection “{collection.name}” deleted. Its {total:,} records are being deleted in the "
                    "background: see how far below.",
                )
            else:
                messages.success(request, f"Collection “{collection.name}” deleted.")
            return redirect("records:collections")
        status = 400
    return _page(
        request,
        "records/collection_remove.html",
        {"collection": collection, "record_count": count, "form": form, "in_background": count > DELETION_BATCH},
        status=status,
    )
