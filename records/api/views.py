"""The records API (/api/v1): collections, records, bulk upsert and the event feed.

One handler per operation, each thin: check the input's shape, read through records.selectors,
write through records.services (the write spine), answer with an output serializer. Which data set
(live or sandbox) comes from the credentials: api.base.livemode_of."""

from __future__ import annotations

from datetime import UTC

from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response

from api.base import ApiJSONParser, ApiView, MergePatchParser
from api.conditional import if_match_version, not_modified
from api.idempotency import idempotent
from api.pagination import LIMIT_DEFAULT, LIMIT_MAX, PAGE_PARAMS, keyset_page, list_body, page_request
from api.problems import ApiProblem, service_error_body
from api.schema import (
    BASE_VERSION,
    ETAG,
    IDEMPOTENCY_KEY,
    IF_MATCH,
    IF_NONE_MATCH,
    MERGE_CONFLICT_EXAMPLE,
    NO_NUL,
    PROBLEM_EXAMPLE,
    error_responses,
)
from records import selectors
from records.api import serializers as s
from records.data_migrations import data_migrated
from records.events import EVENT_ID_RE, record_body, record_event_body, record_event_seq
from records.fields import RECORD_ID_RE
from records.models import Record, record_etag, record_key
from records.services import (
    SLUG_RE,
    collection_create,
    collection_delete,
    collection_update,
    record_bulk_upsert,
    record_create,
    record_delete,
    record_update,
)

RECORD_ORDERS = {
    "id": ["id"],
    "-id": ["-id"],
    "created_at": ["created_at", "id"],
    "-created_at": ["-created_at", "-id"],
    "updated_at": ["updated_at", "id"],
    "-updated_at": ["-updated_at", "-id"],
}
RECORD_LIST_PARAMS = PAGE_PARAMS | {"order_by", "updated_since", "q"}
EVENT_TYPES = ("record.created", "record.updated", "record.deleted")


def validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _page_parameters(cursor_pattern: str | None, what: str, key: str = "id") -> list[OpenApiParameter]:
    return [
        OpenApiParameter(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": LIMIT_MAX, "default": LIMIT_DEFAULT},
            description=f"How many {what} to return (1–{LIMIT_MAX}).",
        ),
        OpenApiParameter(
            "starting_after",
            {"type": "string", "pattern": cursor_pattern or NO_NUL, "minLength": 1},
            description=f"The next page: the {what} after this one (the last `{key}` of the page you have).",
        ),
        OpenApiParameter(
            "ending_before",
            {"type": "string", "pattern": cursor_pattern or NO_NUL, "minLength": 1},
            description=f"The previous page: the {what} before this one (the first `{key}` of the page you have). "
            f"With `starting_after` too: the {what} between the two.",
        ),
    ]


# --- collections ------------------------------------------------------------------------------------

COLLECTION_EXAMPLE = OpenApiExample(
    "A collection",
    value={
        "name": "Customers",
        "slug": "customers",
        "description": "People who buy from us.",
        "fields": [
            {"key": "name", "type": "text", "required": True},
            {"key": "email", "type": "email", "unique": True},
            {"key": "tier", "type": "choice", "choices": ["free", "pro"], "default": "free"},
            {"key": "score", "type": "integer"},
        ],
    },
    request_only=True,
)


class CollectionsApi(ApiView):
    """Collections of the data set the key acts on."""

    permissions = {"GET": "collections.view", "POST": "collections.manage"}

    @extend_schema(
        operation_id="collections_list",
        tags=["Collections"],
        summary="List collections",
        description="The collections of the data set the key acts on, by slug.",
        parameters=_page_parameters(SLUG_RE.pattern, "collections", "slug"),
        responses={200: s.CollectionListOut, **error_responses(400)},
    )
    def get(self, request):
        self.query_params_check(PAGE_PARAMS)
        page = page_request(request.query_params)
        rows, has_more = keyset_page(
            selectors.collection_list(livemode=self.livemode),
            order=["slug"],
            limit=page.limit,
            after=_collection_cursor(page.starting_after, "starting_after"),
            before=_collection_cursor(page.ending_before, "ending_before"),
        )
        return Response(list_body(request, s.CollectionOut(rows, many=True).data, has_more=has_more))

    @extend_schema(
        operation_id="collections_create",
        tags=["Collections"],
        summary="Create a collection",
        request=s.CollectionCreateIn,
        parameters=[IDEMPOTENCY_KEY],
        examples=[COLLECTION_EXAMPLE],
        responses={201: s.CollectionOut, **error_responses(400, 409, 413, 415, 422)},
    )
    @idempotent
    def post(self, request):
        data = validated(s.CollectionCreateIn, request.data)
        collection = collection_create(
            actor=request.user,
            name=data["name"],
            slug=data["slug"],
            description=data["description"],
            fields=[dict(f) for f in data["fields"]],
            livemode=self.livemode,
        )
        location = reverse("api:collection", kwargs={"slug": collection.slug})
        return Response(s.CollectionOut(collection).data, status=201, headers={"Location": location})


class CollectionApi(ApiView):
    """One collection, by slug."""

    permissions = {"GET": "collections.view", "PATCH": "collections.manage", "DELETE": "collections.manage"}
    parser_classes = [ApiJSONParser, MergePatchParser]

    @extend_schema(
        operation_id="collections_retrieve",
        tags=["Collections"],
        summary="Retrieve a collection",
        responses={200: s.CollectionOut, **error_responses(400, 404)},
    )
    def get(self, request, slug: str):
        self.query_params_check(set())
        return Response(s.CollectionOut(selectors.collection_get(livemode=self.livemode, slug=slug)).data)

    @extend_schema(
        operation_id="collections_update",
        tags=["Collections"],
        summary="Update a collection",
        description="Change the name, description or fields (a JSON merge patch: members you leave out stay "
        "as they are; `fields` is replaced as a whole).",
        request={"application/json": s.CollectionUpdateIn, "application/merge-patch+json": s.CollectionUpdateIn},
        responses={200: s.CollectionOut, **error_responses(400, 404, 409, 413, 415, 422)},
    )
    def patch(self, request, slug: str):
        self.query_params_check(set())
        data = validated(s.CollectionUpdateIn, request.data)
        collection = selectors.collection_get(livemode=self.livemode, slug=slug)
        collection = collection_update(
            actor=request.user,
            collection=collection,
            name=data.get("name"),
            description=data.get("description"),
            fields=[dict(f) for f in data["fields"]] if "fields" in data else None,
        )
        return Response(s.CollectionOut(collection).data)

    @extend_schema(
        operation_id="collections_delete",
        tags=["Collections"],
        summary="Delete a collection",
        description="Only an empty collection can be deleted (409 `collection_not_empty` otherwise).",
        responses={200: s.CollectionDeletedOut, **error_responses(400, 404, 409)},
    )
    def delete(self, request, slug: str):
        self.query_params_check(set())
        collection = collection_delete(
            actor=request.user, collection=selectors.collection_get(livemode=self.livemode, slug=slug)
        )
        return Response(s.CollectionDeletedOut({"slug": collection.slug, "deleted": True}).data)


# --- records ----------------------------------------------------------------------------------------

RECORD_LIST_DESCRIPTION = """Records of the collection, in `order_by` order, a page at a time.

**Filters** — any other query parameter filters on a field of the collection:

| parameter | matches records whose field … |
|---|---|
| `field=value` | equals the value |
| `field__ne=value` | does not equal it |
| `field__gt`, `__gte`, `__lt`, `__lte` | compares (numbers, integers, dates, date-times, texts) |
| `field__in=a,b,c` | is one of the values |
| `field__contains=text` | contains the text (any case) |
| `field__isnull=true` / `false` | is empty / is set |

An unknown parameter or a field the collection does not have answers 400 with `param` naming it."""

RECORD_EXAMPLE = OpenApiExample(
    "A record",
    value={
        "object": "record",
        "id": "01JD3X8Q6N2ZK4F7T9W1B5C8HY",
        "collection": "customers",
        "version": 3,
        "data": {"name": "Ada Lovelace", "email": "ada@example.com", "tier": "pro", "score": 42},
        "deleted": False,
        "livemode": True,
        "created_at": "2026-01-31T09:30:00.000000Z",
        "updated_at": "2026-02-02T17:04:11.250000Z",
    },
    response_only=True,
    status_codes=["200", "201"],
)


def _record_out(record, collection) -> dict:
    return record_body(
        record_id=record.id,
        collection_slug=collection.slug,
        version=record.version,
        data=data_migrated(collection.data_migration, record.data),  # a field change not yet carried
        deleted=record.deleted_at is not None,
        livemode=record.livemode,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def _record_response(record, collection, *, status: int = 200, headers: dict | None = None) -> Response:
    return Response(_record_out(record, collection), status=status, headers={"ETag": record.etag, **(headers or {})})


def _base_version(request) -> int | None:
    raw = request.headers.get("Tessera-Base-Version")
    if raw is None:
        return None
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10 or not 1 <= int(raw) <= 2**31 - 1:
        raise ApiProblem(
            400, "invalid_request", "`Tessera-Base-Version` must be a version number.", param="Tessera-Base-Version"
        )
    return int(raw)


class RecordsApi(ApiView):
    """Records of a collection."""

    permissions = {"GET": "records.view", "POST": "records.edit"}

    @extend_schema(
        operation_id="records_list",
        tags=["Records"],
        summary="List records",
        description=RECORD_LIST_DESCRIPTION,
        parameters=[
            *_page_parameters(RECORD_ID_RE, "records"),
            OpenApiParameter("order_by", enum=list(RECORD_ORDERS), description="Sort order (default `id`)."),
            OpenApiParameter(
                "updated_since", OpenApiTypes.DATETIME, description="Only records changed at or after this time."
            ),
            OpenApiParameter(
                "q", {"type": "string", "pattern": NO_NUL}, description="Text search over every field (any case)."
            ),
        ],
        responses={200: s.RecordListOut, **error_responses(400, 404)},
    )
    def get(self, request, slug: str):
        params = request.query_params
        page = page_request(params)
        order = RECORD_ORDERS.get(params.get("order_by", "id"))
        if order is None:
            raise ApiProblem(
                400, "invalid_request", f"`order_by` must be one of {', '.join(RECORD_ORDERS)}.", param="order_by"
            )
        updated_since = _datetime_param(params, "updated_since")
        collection = selectors.collection_get(livemode=self.livemode, slug=slug)
        qs = selectors.record_list(collection=collection)
        qs = selectors.record_filter(qs, collection, {k: params[k] for k in params if k not in RECORD_LIST_PARAMS})
        qs = selectors.record_search(qs, params.get("q", ""))
        if updated_since is not None:
            qs = qs.filter(updated_at__gte=updated_since)
        rows, has_more = keyset_page(
            qs.values_list(*selectors.RECORD_ROW),  # rows, not model instances: a third of a page's cost
            order=order,
            limit=page.limit,
            after=_record_cursor(collection, page.starting_after, "starting_after"),
            before=_record_cursor(collection, page.ending_before, "ending_before"),
        )
        slug, migration = collection.slug, collection.data_migration
        records = [
            record_body(
                record_id=record_id,
                collection_slug=slug,
                version=version,
                data=data_migrated(migration, data),  # a field change not yet carried
                deleted=False,
                livemode=livemode,
                created_at=created_at,
                updated_at=updated_at,
            )
            for record_id, version, data, livemode, created_at, updated_at in rows
        ]
        return Response(list_body(request, records, has_more=has_more))

    @extend_schema(
        operation_id="records_create",
        tags=["Records"],
        summary="Create a record",
        request=s.RecordCreateIn,
        parameters=[IDEMPOTENCY_KEY],
        examples=[
            OpenApiExample(
                "New customer", value={"data": {"name": "Ada Lovelace", "email": "ada@example.com"}}, request_only=True
            ),
            RECORD_EXAMPLE,
            PROBLEM_EXAMPLE,
        ],
        responses={
            (201, "application/json"): OpenApiResponse(s.RecordOut, description="Created."),
            **error_responses(400, 402, 404, 409, 413, 415, 422),
        },
    )
    @idempotent
    def post(self, request, slug: str):
        self.query_params_check(set())
        data = validated(s.RecordCreateIn, request.data)
        collection = selectors.collection_get(livemode=self.livemode, slug=slug)
        record = record_create(actor=request.user, collection=collection, data=data["data"], record_id=data.get("id"))
        location = reverse("api:record", kwargs={"slug": slug, "record_id": record.id})
        return _record_response(record, collection, status=201, headers={"Location": location})


class RecordApi(ApiView):
    """One record, by id."""

    permissions = {"GET": "records.view", "PATCH": "records.edit", "PUT": "records.edit", "DELETE": "records.edit"}
    parser_classes = [ApiJSONParser, MergePatchParser]

    def _get(self, slug: str, record_id: str):
        return selectors.collection_record_get(livemode=self.livemode, slug=slug, record_id=record_id)

    @extend_schema(
        operation_id="records_retrieve",
        tags=["Records"],
        summary="Retrieve a record",
        parameters=[IF_NONE_MATCH, ETAG],
        examples=[RECORD_EXAMPLE],
        responses={
            200: s.RecordOut,
            304: OpenApiResponse(description="Not modified: `If-None-Match` names the current version."),
            **error_responses(400, 404),
        },
    )
    def get(self, request, slug: str, record_id: str):
        self.query_params_check(set())
        row = selectors.record_row_get(livemode=self.livemode, slug=slug, record_id=record_id)
        etag = record_etag(livemode=row.livemode, record_id=row.id, version=row.version)
        if not_modified(request, etag=etag):
            return Response(status=304, headers={"ETag": etag})
        body = record_body(
            record_id=row.id,
            collection_slug=row.collection_slug,
            version=row.version,
            data=data_migrated(row.collection_data_migration, row.data),  # a field change not yet carried
            deleted=False,
            livemode=row.livemode,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        return Response(body, headers={"ETag": etag})

    @extend_schema(
        operation_id="records_update",
        tags=["Records"],
        summary="Update a record (JSON merge patch)",
        description="Members of `data` set fields, `null` removes one, fields left out stay (RFC 7396). "
        "`If-Match` makes the write conditional (412 when the record changed); `Tessera-Base-Version` "
        "merges your change into changes made since that version (409 `merge_conflict` when the same "
        "field was changed differently).",
        request={"application/merge-patch+json": s.RecordPatchIn, "application/json": s.RecordPatchIn},
        parameters=[IF_MATCH, BASE_VERSION, ETAG],
        examples=[
            OpenApiExample("Set a field, remove another", value={"data": {"tier": "pro", "score": None}}),
            RECORD_EXAMPLE,
            MERGE_CONFLICT_EXAMPLE,
            PROBLEM_EXAMPLE,
        ],
        responses={200: s.RecordOut, **error_responses(400, 402, 404, 409, 412, 413, 415, 422)},
    )
    def patch(self, request, slug: str, record_id: str):
        return self._write(request, slug, record_id, s.RecordPatchIn, partial=True)

    @extend_schema(
        operation_id="records_replace",
        tags=["Records"],
        summary="Replace a record's data",
        description="The record's data becomes exactly `data` (fields left out are removed). `If-Match` and "
        "`Tessera-Base-Version` work as for PATCH.",
        request=s.RecordReplaceIn,
        parameters=[IF_MATCH, BASE_VERSION, ETAG],
        examples=[RECORD_EXAMPLE, MERGE_CONFLICT_EXAMPLE, PROBLEM_EXAMPLE],
        responses={200: s.RecordOut, **error_responses(400, 402, 404, 409, 412, 413, 415, 422)},
    )
    def put(self, request, slug: str, record_id: str):
        return self._write(request, slug, record_id, s.RecordReplaceIn, partial=False)

    def _write(self, request, slug: str, record_id: str, serializer_class, *, partial: bool) -> Response:
        self.query_params_check(set())
        base_version = _base_version(request)
        data = validated(serializer_class, request.data)["data"]
        # The write reads the record (once, in its transaction) and checks If-Match against it.
        write = record_update(
            actor=request.user,
            record=Record(
                key=record_key(livemode=self.livemode, record_id=record_id), id=record_id, livemode=self.livemode
            ),
            in_collection=slug,
            precondition=lambda current: if_match_version(request, etag=current.etag, version=current.version),
            data=data,
            partial=partial,
            base_version=base_version,
        )
        return _record_response(write.record, write.record.collection)

    @extend_schema(
        operation_id="records_delete",
        tags=["Records"],
        summary="Delete a record",
        description="The record becomes a tombstone (`deleted: true`): gone from lists and reads, kept in the "
        "event feed.",
        parameters=[IF_MATCH, ETAG],
        responses={200: s.RecordOut, **error_responses(400, 404, 412)},
    )
    def delete(self, request, slug: str, record_id: str):
        self.query_params_check(set())
        collection, record = self._get(slug, record_id)
        expected = if_match_version(request, etag=record.etag, version=record.version)
        record = record_delete(actor=request.user, record=record, expected_version=expected)
        return _record_response(record, collection)


class RecordBulkApi(ApiView):
    """Many records in one request."""

    permissions = {"POST": "records.edit"}

    @extend_schema(
        operation_id="records_bulk_upsert",
        tags=["Records"],
        summary="Create or update up to 1,000 records",
        description="Each item is written on its own: an item without `id` (or with an id that does not exist) "
        "creates a record, one with an existing id applies `data` as a merge patch (refused unless the record "
        "is at `version`, when given). The answer lists every item's outcome in order; a failed item carries "
        "its problem and does not stop the others.",
        request=s.BulkIn,
        parameters=[IDEMPOTENCY_KEY],
        examples=[
            OpenApiExample(
                "Two items",
                value={
                    "items": [
                        {"data": {"name": "Grace Hopper", "email": "grace@example.com"}},
                        {"id": "01JD3X8Q6N2ZK4F7T9W1B5C8HY", "data": {"tier": "pro"}, "version": 3},
                    ]
                },
                request_only=True,
            )
        ],
        responses={200: s.BulkOut, **error_responses(400, 402, 404, 409, 413, 415, 422)},
    )
    @idempotent
    def post(self, request, slug: str):
        self.query_params_check(set())
        items = validated(s.BulkIn, request.data)["items"]
        collection = selectors.collection_get(livemode=self.livemode, slug=slug)
        results = record_bulk_upsert(actor=request.user, collection=collection, items=[dict(i) for i in items])
        counts = {"created": 0, "updated": 0, "unchanged": 0, "error": 0}
        out = []
        for result in results:
            counts[result.status] += 1
            out.append(
                {
                    "index": result.index,
                    "status": result.status,
                    "record": _record_out(result.record, collection) if result.record is not None else None,
                    "error": service_error_body(request, result.error) if result.error is not None else None,
                }
            )
        return Response(
            {
                "object": "bulk_result",
                "created": counts["created"],
                "updated": counts["updated"],
                "unchanged": counts["unchanged"],
                "failed": counts["error"],
                "results": out,
            }
        )


# --- events -----------------------------------------------------------------------------------------


class EventsApi(ApiView):
    """The change feed as events."""

    permissions = {"GET": "events.view"}

    @extend_schema(
        operation_id="events_list",
        tags=["Events"],
        summary="List events (the change feed)",
        description="Every change to a record as an event, oldest first, in the order the changes were committed: "
        "a reader that has seen an event never later finds one before it. Keep the last id you processed "
        "and ask for `starting_after` it to catch up (e.g. after missed webhooks).",
        parameters=[
            *_page_parameters(r"^evt_[0-9a-z]{1,16}_[0-9]{1,18}$", "events"),
            OpenApiParameter("type", enum=list(EVENT_TYPES), description="Only events of this type."),
            OpenApiParameter(
                "collection",
                {"type": "string", "pattern": r"^[a-z][a-z0-9_-]{0,62}$"},
                description="Only events of this collection (slug).",
            ),
        ],
        responses={200: s.EventListOut, **error_responses(400, 404)},
    )
    def get(self, request):
        self.query_params_check(PAGE_PARAMS | {"type", "collection"})
        params = request.query_params
        page = page_request(params)
        event_type = params.get("type")
        if event_type is not None and event_type not in EVENT_TYPES:
            raise ApiProblem(400, "invalid_request", f"`type` must be one of {', '.join(EVENT_TYPES)}.", param="type")
        collection = None
        if params.get("collection") is not None:
            collection = selectors.collection_get(livemode=self.livemode, slug=params["collection"])
        qs = selectors.change_event_rows(
            livemode=self.livemode, op=event_type.removeprefix("record.") if event_type else None, collection=collection
        )
        stream = selectors.change_stream()
        changes, has_more = keyset_page(
            qs,
            order=["seq"],
            limit=page.limit,
            after=_event_cursor(page.starting_after, "starting_after", stream),
            before=_event_cursor(page.ending_before, "ending_before", stream),
        )
        events = [_event_body(stream, *change) for change in changes]
        return Response(list_body(request, events, has_more=has_more))


def _event_body(stream, seq, op, livemode, collection_slug, record_id, version, data, changed, occurred_at, created_at):
    """An event from a row of selectors.change_event_rows."""
    return record_event_body(
        stream=stream,
        seq=seq,
        op=op,
        livemode=livemode,
        collection_slug=collection_slug,
        record_id=record_id,
        version=version,
        data=data,
        changed_fields=changed,
        occurred_at=occurred_at,
        created_at=created_at or occurred_at,  # a record purged since: its creation is unknown
    )


def _collection_cursor(slug: str | None, param: str) -> dict | None:
    if slug is None:
        return None
    if not SLUG_RE.fullmatch(slug):
        raise ApiProblem(400, "invalid_request", f"`{param}` must be a collection slug.", param=param)
    return {"slug": slug}


def _record_cursor(collection, record_id: str | None, param: str) -> dict | None:
    if record_id is None:
        return None
    values = selectors.record_cursor_values(collection=collection, record_id=record_id)
    if values is None:
        raise ApiProblem(404, "resource_missing", f"No record `{record_id}` in `{collection.slug}`.", param=param)
    return values


def _event_cursor(event_id: str | None, param: str, stream: str) -> dict | None:
    if event_id is None:
        return None
    if not EVENT_ID_RE.match(event_id):
        raise ApiProblem(400, "invalid_request", f"`{param}` must be an event id (evt_…).", param=param)
    seq = record_event_seq(event_id, stream)
    if seq is None:
        raise ApiProblem(404, "resource_missing", f"No event `{event_id}` in this workspace.", param=param)
    return {"seq": seq}


def _datetime_param(params, name: str):
    raw = params.get(name)
    if raw is None:
        return None
    try:
        value = parse_datetime(raw.strip())
    except ValueError:
        value = None
    if value is None:
        raise ApiProblem(400, "invalid_request", f"`{name}` must be a date-time like 2026-01-31T09:30:00Z.", param=name)
    return value if timezone.is_aware(value) else timezone.make_aware(value, UTC)
