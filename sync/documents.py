"""A record as a phone's RxDB document, and the checkpoints of the pull stream.

A document is `{"id": <record id>, <field key>: value, …, "version": <int>, "updated_at": <iso>,
"_deleted": <bool>}`. `version` and `updated_at` are the server's: clients echo them back
unchanged (they are reserved field keys, so no field can clash). A field without a value is left
out (as in the REST API), never sent as null. The same record always gives the same document,
whether it is read from the database or from a change notice: RxDB compares documents by deep
equality.

A record whose processing is restricted (GDPR art. 18: records.services.records_restriction_set) is
sent as a tombstone without values (`"_deleted": true`), so phones drop their copy and cannot edit
it; lifting the restriction sends it whole again.

A checkpoint is `{"seq": <int>, "id": <record id>}`: the change sequence number of the last document
sent (commit-ordered, so nothing committed later can appear below it) and that document's id.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django.db.models import F, Func, TextField

from records.dialect import InstantText, JsonMembersText, JsonStringText
from records.events import RecordChanged

SERVER_KEYS = frozenset({"id", "version", "updated_at", "_deleted"})


def json_text(value: Any) -> str:
    """JSON as the sync websocket sends it (compact, UTF-8 as is)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def result_frame(request_id: Any, slug: Any, result_text: str) -> str:
    """The text of a reply `{"id", "collection", "result"}` whose result is JSON text already."""
    return f'{{"id":{json_text(request_id)},"collection":{json_text(slug)},"result":{result_text}}}'


def instant(value: datetime) -> str:
    """`2026-01-31T09:30:00.000000Z`: UTC, always six decimals."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def document(*, record_id: str, data: dict, version: int, updated_at: datetime | str, deleted: bool) -> dict[str, Any]:
    if isinstance(updated_at, str):
        updated_at = datetime.fromisoformat(updated_at)
    return {"id": record_id, **data, "version": version, "updated_at": instant(updated_at), "_deleted": deleted}


def document_of(record) -> dict[str, Any]:
    restricted = getattr(record, "restricted_at", None) is not None
    return document(
        record_id=record.id,
        data={} if restricted else record.data,
        version=record.version,
        updated_at=record.updated_at,
        deleted=record.deleted_at is not None or restricted,
    )


def document_from_notice(notice: RecordChanged) -> dict[str, Any]:
    return document(
        record_id=notice.record_id,
        data=notice.data,
        version=notice.version,
        updated_at=notice.occurred_at,
        deleted=notice.op == "deleted",
    )


class DocumentText(Func):
    """A record row's document as compact JSON text, built by the database (the initial pull's pages:
    no row is decoded into Python objects and encoded again). Parsed, it is exactly `document_of(record)`:
    the record's data members spliced from the stored JSON text between the server's keys; a restricted
    record goes as a tombstone without values, as there."""

    output_field = TextField()

    def __init__(self):
        super().__init__(
            JsonStringText("id"),
            JsonMembersText("data"),
            F("version"),
            InstantText("updated_at"),
            F("deleted_at"),
            F("restricted_at"),
        )

    def as_sql(self, compiler, connection, **extra):
        parts, params = [], []
        for expression in self.source_expressions:
            sql, expression_params = compiler.compile(expression)
            parts.append(sql)
            params.extend(expression_params)
        record_id, members, version, updated_at, deleted_at, restricted_at = parts
        sql = (
            f"""('{{"id":' || {record_id} || CASE WHEN {restricted_at} IS NULL THEN {members} ELSE '' END """
            f"""|| ',"version":' || {version} || ',"updated_at":"' || {updated_at} || '","_deleted":' """
            f"""|| CASE WHEN {deleted_at} IS NULL AND {restricted_at} IS NULL THEN 'false' ELSE 'true' END """
            "|| '}')"
        )
        return sql, params


def tombstone(record_id: str) -> dict[str, Any]:
    """What a refused creation is answered with: the record does not exist on the server."""
    return {"id": record_id, "version": 0, "updated_at": instant(datetime(1970, 1, 1, tzinfo=UTC)), "_deleted": True}


def document_fields(doc: dict | None) -> dict[str, Any]:
    """The record data a client's document carries (server keys, RxDB's `_…` keys and nulls dropped)."""
    if not doc:
        return {}
    return {k: v for k, v in doc.items() if k not in SERVER_KEYS and not k.startswith("_") and v is not None}


def document_deleted(doc: dict | None) -> bool:
    return bool(doc and doc.get("_deleted"))


def same_state(a: dict | None, b: dict | None) -> bool:
    """Whether two documents say the same about a record: same fields, or both deleted."""
    if a is None or b is None:
        return a is b
    if document_deleted(a) or document_deleted(b):
        return document_deleted(a) and document_deleted(b)
    return document_fields(a) == document_fields(b)


def same_document(a: dict | None, b: dict | None) -> bool:
    """Whether a client's document is exactly the master's (the server's `version` and `updated_at` too)."""
    if a is None or b is None:
        return a is b
    return same_state(a, b) and all(a.get(k) == b.get(k) for k in ("version", "updated_at"))


def checkpoint(seq: int, record_id: str) -> dict[str, Any]:
    return {"seq": seq, "id": record_id}
