"""The records table's saved views: save the table as shown (personal or shared), save changes over a
view, delete one. Each answers with a redirect back to the table (errors as a message there)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from rbac.permissions import permission_required
from records.errors import RecordError
from records.forms import message_plain
from records.table_views import table_view_create, table_view_delete, table_view_get, table_view_update
from records.views.common import _collection


def _table(slug: str, query: str = "", view_id: int | None = None) -> HttpResponse:
    params = "&".join(p for p in (query, f"view={view_id}" if view_id else "") if p)
    return redirect(reverse("records:table", args=[slug]) + ("?" + params if params else ""))


@require_POST
@permission_required("records.view")
def table_view_save(request: HttpRequest, slug: str) -> HttpResponse:
    collection = _collection(slug)
    query = request.POST.get("query", "")
    try:
        view = table_view_create(
            actor=request.user,
            collection=collection,
            name=request.POST.get("name", ""),
            query=query,
            shared=request.POST.get("shared") == "on",
        )
    except RecordError as exc:
        messages.error(request, f"The view was not saved: {message_plain(exc.message)}")
        return _table(slug, query)
    who = "everyone who can see this collection" if view.shared else "you"
    messages.success(request, f"View “{view.name}” saved, for {who}.")
    return _table(slug, view.query, view.pk)


@require_POST
@permission_required("records.view")
def table_view_change(request: HttpRequest, slug: str, view_id: str) -> HttpResponse:
    """`action=update` saves the table as shown over the view; `action=delete` deletes it."""
    collection = _collection(slug)
    query = request.POST.get("query", "")
    try:
        view = table_view_get(collection=collection, user=request.user, view_id=view_id)
        if request.POST.get("action") == "delete":
            table_view_delete(actor=request.user, view=view)
            messages.success(request, f"View “{view.name}” deleted.")
            return _table(slug, query)
        table_view_update(actor=request.user, view=view, query=query)
    except RecordError as exc:
        messages.error(request, message_plain(exc.message))
        return _table(slug, query)
    messages.success(request, f"View “{view.name}” saved.")
    return _table(slug, view.query, view.pk)
