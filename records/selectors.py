"""Reads of collections, records and the change feed. `livemode` is always an explicit keyword."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.db.models import OuterRef, Q, QuerySet, Subquery

from audit.models import AuditEvent
from core.prepared_queries import PreparedQuery
from core.workspace_memo import workspace_memo
from records.errors import InvalidQuery, NotFound
from records.models import Change, ChangeCounter, Collection, Record
from tenants.runtime import workspace_current_or_none

FILTER_OPS = {"eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "isnull"}
ORDERED_TYPES = {"number", "integer", "date", "datetime", "text", "email", "url", "choice"}


# A record as the API lists it, one tuple a row (records.events.record_body's fields).
RECORD_ROW = ("id", "version", "data", "livemode", "created_at", "updated_at")


def collection_list(*, livemode: bool) -> QuerySet[Collection]:
    return Collection.objects.filter(livemode=livemode, deleted_at=None).order_by("name")


def collection_deletions(*, livemode: bool, finished_since) -> list[Collection]:
    """Deleted collections whose records are still being deleted, and those finished since
    `finished_since` (the console shows both, with how far each has got), newest first."""
    return list(
        Collection.objects.filter(livemode=livemode, deleted_at__isnull=False)
        .exclude(deletion={})
        .filter(~Q(deletion__has_key="finished_at") | Q(updated_at__gte=finished_since))
        .order_by("-deleted_at")
    )


# The API's hot reads, compiled to SQL once per process (core.prepared_queries).
_collection_by_slug = PreparedQuery(
    lambda livemode, *, slug: Collection.objects.filter(livemode=livemode, slug=slug, deleted_at=None)[:1]
)
_record_row_by_id = PreparedQuery(
    lambda livemode, *, slug, record_id: Record.objects.filter(
        collection__slug=slug,
        collection__livemode=livemode,
        collection__deleted_at=None,
        livemode=livemode,
        id=record_id,
        deleted_at=None,
    ).values_list(*RECORD_ROW, "collection__slug", "collection__data_migration")[:1]
)


def collection_get(*, livemode: bool, slug: str) -> Collection:
    rows = _collection_by_slug.rows(livemode, slug=slug)
    if not rows:
        raise NotFound(f"No collection `{slug}`.", param="collection")
    return Collection.from_db(DEFAULT_DB_ALIAS, None, rows[0])


@dataclass(frozen=True)
class RecordRow:
    """A live record as the API reads it (no model instance: see record_row_get)."""

    id: str
    version: int
    data: dict
    livemode: bool
    created_at: Any
    updated_at: Any
    collection_slug: str
    collection_data_migration: dict


def record_row_get(*, livemode: bool, slug: str, record_id: str) -> RecordRow:
    """A live (not deleted) record of the collection `slug` as a row, in one precompiled query (the API's
    read of one record); NotFound names the collection or the record, whichever is missing."""
    rows = _record_row_by_id.rows(livemode, slug=slug, record_id=record_id)
    if not rows:
        collection = collection_get(livemode=livemode, slug=slug)
        raise NotFound(f"No record `{record_id}` in `{collection.slug}`.", param="id")
    return RecordRow(*rows[0])


def record_list(*, collection: Collection, include_deleted: bool = False) -> QuerySet[Record]:
    qs = Record.objects.filter(collection=collection, livemode=collection.livemode)
    return qs if include_deleted else qs.filter(deleted_at=None)


def collection_record_get(*, livemode: bool, slug: str, record_id: str) -> tuple[Collection, Record]:
    """A live (not deleted) record of the collection `slug`, with its collection, in one query (the API's
    hot path); NotFound names the collection or the record, whichever is missing."""
    record = (
        Record.objects.select_related("collection")
        .filter(
            collection__slug=slug,
            collection__livemode=livemode,
            collection__deleted_at=None,
            livemode=livemode,
            id=record_id,
            deleted_at=None,
        )
        .first()
    )
    if record is None:
        collection = collection_get(livemode=livemode, slug=slug)
        raise NotFound(f"No record `{record_id}` in `{collection.slug}`.", param="id")
    return record.collection, record


def record_get(*, collection: Collection, record_id: str, include_deleted: bool = False) -> Record:
    record = record_list(collection=collection, include_deleted=include_deleted).filter(id=record_id).first()
    if record is None:
        raise NotFound(f"No record `{record_id}` in `{collection.slug}`.", param="id")
    return record


def _coerce(field: dict, raw: str, param: str) -> Any:
    t = field["type"]
    try:
        if t == "integer":
            value = int(raw)
            if abs(value) > 2**53:
                raise ValueError
            return value
        if t == "number":
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError
            return value
        if t == "boolean":
            if raw.lower() in {"true", "1"}:
                return True
            if raw.lower() in {"false", "0"}:
                return False
            raise ValueError
    except ValueError as exc:
        raise InvalidQuery(
            f"`{param}` must be {'true or false' if t == 'boolean' else 'a number'}.", param=param
        ) from exc
    return raw


def record_filter(qs: QuerySet[Record], collection: Collection, filters: dict[str, str]) -> QuerySet[Record]:
    """Apply `field=value`, `field__op=value` filters (ops: ne gt gte lt lte in contains isnull)."""
    for param, raw in filters.items():
        key, _, op = param.partition("__")
        op = op or "eq"
        field = collection.field(key)
        if field is None:
            raise InvalidQuery(f"No field `{key}` to filter on.", param=param, code="unknown_filter")
        if op not in FILTER_OPS:
            raise InvalidQuery(f"Unknown filter `{op}`; use one of {', '.join(sorted(FILTER_OPS))}.", param=param)
        lookup = f"data__{key}"
        if op == "isnull":
            if raw.lower() in {"true", "1"}:
                qs = qs.filter(Q(**{f"{lookup}__isnull": True}) | Q(**{lookup: None}))
            else:
                qs = qs.filter(**{f"{lookup}__isnull": False}).exclude(**{lookup: None})
        elif op == "in":
            values = [_coerce(field, v, param) for v in raw.split(",") if v != ""]
            qs = qs.filter(**{f"{lookup}__in": values})
        elif op == "contains":
            qs = qs.filter(**{f"{lookup}__icontains": raw})
        else:
            value = _coerce(field, raw, param)
            if op in {"gt", "gte", "lt", "lte"} and field["type"] not in ORDERED_TYPES:
                raise InvalidQuery(f"`{key}` cannot be compared with {op}.", param=param)
            if op == "eq":
                qs = qs.filter(**{lookup: value})
            elif op == "ne":
                qs = qs.exclude(**{lookup: value})
            else:
                qs = qs.filter(**{f"{lookup}__{op}": value})
    return qs


def record_search(qs: QuerySet[Record], q: str) -> QuerySet[Record]:
    """Free-text search across every field of a record (case-insensitive substring)."""
    q = (q or "").strip()
    if not q:
        return qs
    from django.db.models import TextField
    from django.db.models.functions import Cast

    return qs.annotate(_text=Cast("data", TextField())).filter(_text__icontains=q)


def record_cursor_values(*, collection: Collection, record_id: str) -> dict | None:
    """The sort keys of a page cursor's record (tombstones too: a cursor survives its record's deletion)."""
    return (
        Record.objects.filter(collection=collection, livemode=collection.livemode, id=record_id)
        .values("id", "created_at", "updated_at")
        .first()
    )


def change_event_rows(*, livemode: bool, op: str | None = None, collection: Collection | None = None) -> QuerySet:
    """The change feed as the API's events read it, one tuple a change: seq, op, livemode, collection slug,
    record id, version, data, changed fields, occurred at, the record's creation time (None if it is gone).
    One query: the collection's slug by a join that reads no other column of it (its field definitions
    are JSON to decode), the creation time from the record's row."""
    created_at = Record.objects.filter(livemode=OuterRef("livemode"), id=OuterRef("record_id")).values("created_at")
    qs = Change.objects.filter(livemode=livemode)
    if op is not None:
        qs = qs.filter(op=op)
    if collection is not None:
        qs = qs.filter(collection=collection)
    return qs.values_list(
        "seq",
        "op",
        "livemode",
        "collection__slug",
        "record_id",
        "version",
        "data",
        "changed_fields",
        "occurred_at",
        Subquery(created_at[:1]),
    ).order_by("seq")


def change_events(*, livemode: bool, op: str | None = None, collection: Collection | None = None) -> QuerySet[Change]:
    """The change feed as the API's events read it (commit-ordered by `seq`; page with a keyset)."""
    qs = Change.objects.filter(livemode=livemode).select_related("collection")
    if op is not None:
        qs = qs.filter(op=op)
    if collection is not None:
        qs = qs.filter(collection=collection)
    return qs.order_by("seq")


def change_stream() -> str:
    """The workspace's change stream name (event ids: records.events), made with the counter if none yet.
    Made once and never changed, so an API request's server process remembers it (core.workspace_memo):
    the event feed is one query."""
    return workspace_memo(_workspace_id, ("records.stream",), _change_stream_read)


def _workspace_id():
    tenant = workspace_current_or_none()
    return tenant and tenant.pk


def _change_stream_read() -> str:
    counter = ChangeCounter.objects.filter(pk=1).only("stream").first()
    if counter is None:
        counter, _ = ChangeCounter.objects.get_or_create(pk=1)
    return counter.stream


def record_created_at(record_ids: list[str], *, livemode: bool) -> dict[str, Any]:
    """Creation times of records by id, in one query (the feed's rows do not carry them)."""
    if not record_ids:
        return {}
    return dict(Record.objects.filter(livemode=livemode, id__in=set(record_ids)).values_list("id", "created_at"))


def change_list(*, livemode: bool, after_seq: int = 0, limit: int = 100, collection: Collection | None = None):
    qs = Change.objects.filter(livemode=livemode, seq__gt=after_seq).select_related("collection").order_by("seq")
    if collection is not None:
        qs = qs.filter(collection=collection)
    return list(qs[:limit])


def records_changed_since(*, collection: Collection, after_seq: int, limit: int) -> list[Record]:
    """Records (tombstones included) whose latest change is after `after_seq`, in sequence order."""
    return list(
        Record.objects.filter(collection=collection, livemode=collection.livemode, seq__gt=after_seq).order_by("seq")[
            :limit
        ]
    )


def record_history(record: Record) -> QuerySet[AuditEvent]:
    # A test record may share its id with a live one: the event's changes say which mode it was.
    return AuditEvent.objects.filter(
        target_type="record", target_id=record.id, changes__livemode=record.livemode
    ).order_by("-seq")


def record_version_data(*, record: Record, version: int) -> dict | None:
    """The record's data as it was at `version` (from the change feed), or None if unknown."""
    snapshot = (
        Change.objects.filter(livemode=record.livemode, record_id=record.id, version=version).only("data").first()
    )
    return snapshot.data if snapshot is not None else None


def records_live_count() -> int:
    """Records not deleted, live and test data together: what the plan's `records` limit counts. The
    write spine keeps the figure in the change counter; counted here only until it has been."""
    kept = ChangeCounter.objects.filter(pk=1).values_list("live_records", flat=True).first()
    return kept if kept is not None else Record.objects.filter(deleted_at=None).count()
