"""Saved views of the records table: save, overwrite, delete, and which ones a person sees.

A view is the table's query string (records.query: filters in the API's grammar, sort, search, rows
per page, hidden columns, widths, frozen columns), kept under a name. Personal views belong to their
owner alone; shared views (owner None) are offered to everyone who can see the collection, and only
those who may edit records save or delete them.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.http import QueryDict

from audit.services import audit_event_record
from core.actors import Actor
from rbac.permissions import has_permission
from records.errors import NotFound, RecordError, WriteForbidden
from records.models import Collection, TableView
from records.query import table_query_parse

NAME_MAX = 80
PER_COLLECTION_MAX = 100  # views one person keeps on one collection (shared ones count apart)
# Parts of a table URL that are not part of a view: where a page starts, a one-off count, the form
# fields the table turns into filters and columns, and the view's own id.
_NOT_SAVED = ("after", "before", "count", "filter_field", "filter_op", "filter_value", "cols", "col", "view")


def table_views_visible(*, collection: Collection, user) -> QuerySet[TableView]:
    """The views `user` is offered on `collection`: shared ones, then their own, each by name."""
    views = TableView.objects.filter(Q(owner=None) | Q(owner=user), collection=collection)
    return views.order_by(F("owner").asc(nulls_first=True), "name", "pk")


def table_view_get(*, collection: Collection, user, view_id: str | int) -> TableView:
    """A view `user` may open (shared, or theirs); NotFound for any other, another person's included."""
    try:
        pk = int(view_id)
    except (TypeError, ValueError):
        pk = 0
    view = table_views_visible(collection=collection, user=user).filter(pk=pk).first()
    if view is None:
        raise NotFound("No such saved view.", param="view")
    return view


def _query_clean(collection: Collection, query: str) -> str:
    """The query string of a view, checked as the table would read it (a broken one is refused now,
    not each time the view is opened), without the parts that are not part of a view."""
    if len(query) > 4000:
        raise RecordError("This view is too long to save.", param="query")
    params = QueryDict(query, mutable=True)
    for name in _NOT_SAVED:
        params.pop(name, None)
    parsed = table_query_parse(collection, params)
    return parsed.params().urlencode()


def _name_clean(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > NAME_MAX:
        raise RecordError(f"Give the view a name (at most {NAME_MAX} characters).", param="name")
    return name


def _may_change(actor, view: TableView) -> bool:
    return view.owner_id == actor.pk if view.owner_id else has_permission(actor, "records.edit")


def table_view_create(*, actor, collection: Collection, name: str, query: str, shared: bool) -> TableView:
    """Save the table as it is shown (`query`) under `name`, for `actor` alone or, `shared`, for all."""
    if not has_permission(actor, "records.view"):
        raise WriteForbidden("Not allowed: this needs the records.view permission.")
    if shared and not has_permission(actor, "records.edit"):
        raise WriteForbidden("Only those who may edit records share views.", param="shared")
    name, query = _name_clean(name), _query_clean(collection, query)
    owner = None if shared else actor
    mine = TableView.objects.filter(collection=collection, owner=owner)
    if mine.filter(name__iexact=name).exists():
        raise RecordError(f"A {'shared ' if shared else ''}view named “{name}” exists already.", param="name")
    if mine.count() >= PER_COLLECTION_MAX:
        raise RecordError(f"At most {PER_COLLECTION_MAX} views per collection.", param="name")
    with transaction.atomic():
        view = TableView.objects.create(
            collection=collection, name=name, query=query, owner=owner, created_by=Actor.of(actor).stamp()
        )
        _audit("table_view.created", actor, view, {"after": {"query": query}})
    return view


def _audit(action: str, actor, view: TableView, changes: dict) -> None:
    """Saved views are audited as the collection's: who saved, changed or deleted which view, shared or
    personal, and the query it held (filters can reveal what someone was looking for)."""
    audit_event_record(
        action=action,
        actor=actor,
        target=("table_view", str(view.pk), view.name),
        changes={"collection": view.collection.slug, "shared": view.shared, **changes},
    )


def table_view_update(*, actor, view: TableView, query: str) -> TableView:
    """Save the table as it is shown now over `view` (its owner's, or a shared one by an editor)."""
    if not _may_change(actor, view):
        raise WriteForbidden("Only its owner (or, shared, those who may edit records) changes this view.")
    before = view.query
    view.query = _query_clean(view.collection, query)
    with transaction.atomic():
        view.save(update_fields=["query", "updated_at"])
        if view.query != before:
            _audit("table_view.updated", actor, view, {"before": {"query": before}, "after": {"query": view.query}})
    return view


def table_view_delete(*, actor, view: TableView) -> None:
    if not _may_change(actor, view):
        raise WriteForbidden("Only its owner (or, shared, those who may edit records) deletes this view.")
    with transaction.atomic():
        _audit("table_view.deleted", actor, view, {"before": {"query": view.query}})
        view.delete()
