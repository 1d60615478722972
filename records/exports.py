"""CSV and JSON exports of a collection's records — the table's current filters, search and sort —
produced in chunks from a server-side iterator, so memory stays flat at any size. Audited as
`records.exported` when an export starts.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

from audit.services import audit_event_record
from core.actors import Actor, Principal
from core.csv_cells import csv_writer
from rbac.permissions import permission_check
from records.models import Collection, Record
from records.query import TableQuery, record_table_queryset

CHUNK_ROWS = 2000
FORMATS = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


def cell_format(spec: dict, value: Any) -> str:
    """A value as a CSV cell that `records.imports.cell_parse` reads back to the same value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)) or spec["type"] == "json":
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)  # formula-like text is guarded by core.csv_cells when written


def records_export(*, actor: Actor | Principal, collection: Collection, query: TableQuery, fmt: str) -> Iterator[bytes]:
    """Check the permission, record the export in the audit log, and return the file's chunks."""
    permission_check(actor, "records.export")
    if fmt not in FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}")
    # a record whose processing is restricted (GDPR art. 18) is kept, never exported
    records = record_table_queryset(collection, query).filter(restricted_at=None)
    audit_event_record(
        action="records.exported",
        actor=actor,
        target=collection,
        changes={
            "collection": collection.slug,
            "format": fmt,
            "filters": query.filters,
            "q": query.q,
            "sort": query.sort.param,
        },
    )
    rows = records.iterator(chunk_size=CHUNK_ROWS)
    return _csv_chunks(collection, rows) if fmt == "csv" else _json_chunks(rows)


def _csv_chunks(collection: Collection, rows: Iterator[Record]) -> Iterator[bytes]:
    fields = collection.fields
    buffer = io.StringIO()
    writer = csv_writer(buffer)
    buffer.write("\ufeff")  # so spreadsheet programs read UTF-8
    writer.writerow(["id", *(f["key"] for f in fields), "created_at", "updated_at"])
    for n, record in enumerate(rows, start=1):
        writer.writerow(
            [
                record.id,
                *(cell_format(f, record.data.get(f["key"])) for f in fields),
                record.created_at.isoformat(),
                record.updated_at.isoformat(),
            ]
        )
        if n % 500 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _json_chunks(rows: Iterator[Record]) -> Iterator[bytes]:
    parts: list[str] = ["["]
    for n, record in enumerate(rows, start=1):
        item = {
            "id": record.id,
            "version": record.version,
            "created_at": record.created_at.isoformat(),
            "updated_at": record.updated_at.isoformat(),
            "data": record.data,
        }
        parts.append(("\n" if n == 1 else ",\n") + json.dumps(item, ensure_ascii=False, separators=(",", ":")))
        if n % 500 == 0:
            yield "".join(parts).encode()
            parts = []
    parts.append("\n]\n")
    yield "".join(parts).encode()
