"""Exports of a query's result or of a filtered record set as CSV, JSON, NDJSON or XLSX, streamed in
chunks so the exporting process's memory stays flat at any size (records are read from a server-side
cursor; XLSX rows go to XlsxWriter's constant-memory temporary file, then the file is streamed).

Every export is an audit event (`analytics.exported`) recorded when it starts. Text cells that a
spreadsheet would run as a formula (= + - @, tab, CR first) are written with a leading apostrophe in
CSV, and always as strings, never formulas, in XLSX.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import Any

from analytics.errors import AnalyticsError
from analytics.queries import QueryResult, records_matching
from audit.services import audit_event_record
from core.actors import Actor, Principal
from rbac.permissions import permission_check
from records.models import Collection

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
XLSX_MAX_ROWS = 1_048_575  # a sheet's rows, less the header
FLUSH_ROWS = 1000
RECORD_CHUNK = 2000


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def csv_cell(value: Any) -> str:
    """A value as a CSV cell that no spreadsheet runs as a formula (text only: -5 stays the number -5)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    elif not isinstance(value, str):
        return str(_plain(value))
    return "'" + value if value.startswith(FORMULA_START) else value


def _csv(header: list[str], rows: Iterable[list]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")  # so spreadsheet programs read UTF-8
    writer.writerow([csv_cell(h) for h in header])
    for n, row in enumerate(rows, start=1):
        writer.writerow([csv_cell(v) for v in row])
        if n % FLUSH_ROWS == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _json_lines(header: list[str], rows: Iterable[list], *, array: bool) -> Iterator[bytes]:
    parts: list[str] = ["["] if array else []
    for n, row in enumerate(rows, start=1):
        item = json.dumps(
            {k: _plain(v) for k, v in zip(header, row, strict=True)}, ensure_ascii=False, separators=(",", ":")
        )
        if array:
            parts.append(("\n" if n == 1 else ",\n") + item)
        else:
            parts.append(item + "\n")
        if n % FLUSH_ROWS == 0:
            yield "".join(parts).encode()
            parts = []
    if array:
        parts.append("\n]\n")
    yield "".join(parts).encode()


def _xlsx(header: list[str], rows: Iterable[list]) -> Iterator[bytes]:
    handle, path = tempfile.mkstemp(suffix=".xlsx", prefix="tessera-export-")
    os.close(handle)
    try:
        import xlsxwriter  # loads with the first XLSX export, not with every process

        book = xlsxwriter.Workbook(path, {"constant_memory": True, "strings_to_formulas": False, "tmpdir": None})
        sheet = book.add_worksheet("Export")
        bold = book.add_format({"bold": True})
        for c, h in enumerate(header):
            sheet.write_string(0, c, h, bold)
        for r, row in enumerate(rows, start=1):
            if r > XLSX_MAX_ROWS:
                raise AnalyticsError("An XLSX sheet holds at most 1,048,575 rows: export CSV instead.", param="format")
            for c, value in enumerate(row):
                _xlsx_cell(sheet, r, c, value)
        book.close()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 16):
                yield chunk
    finally:
        os.unlink(path)


def _xlsx_cell(sheet, r: int, c: int, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        sheet.write_boolean(r, c, value)
    elif isinstance(value, (int, float)):
        sheet.write_number(r, c, value)
    elif isinstance(value, (dict, list)):
        sheet.write_string(r, c, json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    else:
        sheet.write_string(r, c, str(_plain(value)))  # never a formula, whatever it starts with


def stream(fmt: str, header: list[str], rows: Iterable[list]) -> Iterator[bytes]:
    if fmt == "csv":
        return _csv(header, rows)
    if fmt in {"json", "ndjson"}:
        return _json_lines(header, rows, array=fmt == "json")
    if fmt == "xlsx":
        return _xlsx(header, rows)
    raise AnalyticsError(f"Export as one of {', '.join(FORMATS)}.", param="format")


def _format_check(fmt: str) -> None:
    if fmt not in FORMATS:
        raise AnalyticsError(f"Export as one of {', '.join(FORMATS)}.", param="format")


def result_export(*, actor: Actor | Principal, result: QueryResult, fmt: str, name: str = "") -> Iterator[bytes]:
    """A query's result (one row per group) as a file."""
    permission_check(actor, "analytics.use")
    _format_check(fmt)
    audit_event_record(
        action="analytics.exported",
        actor=actor,
        target=("saved_query" if name else "query", result.spec.collection, name or result.spec.collection),
        changes={"what": "query_result", "format": fmt, "query": result.spec.as_dict(), "rows": len(result.rows)},
    )
    header = [c.key for c in result.columns]
    return stream(fmt, header, result.rows)


def records_export(
    *, actor: Actor | Principal, collection: Collection, filters: dict[str, str], fmt: str
) -> Iterator[bytes]:
    """Every record of a filtered set (the records API's filter grammar), in id order, as a file."""
    permission_check(actor, "analytics.use")
    permission_check(actor, "records.export")
    _format_check(fmt)
    qs = records_matching(collection, filters)  # refuses a bad filter before anything is audited or streamed
    audit_event_record(
        action="analytics.exported",
        actor=actor,
        target=collection,
        changes={"what": "records", "format": fmt, "collection": collection.slug, "filters": filters},
    )
    header, rows = records_table(collection, qs)
    return stream(fmt, header, rows)


def records_table(collection: Collection, qs) -> tuple[list[str], Iterator[list]]:
    """The header and the rows (in id order, from a server-side cursor) of a record export."""
    keys = [f["key"] for f in collection.fields]
    header = ["id", *keys, "created_at", "updated_at"]

    def rows() -> Iterator[list]:
        values = qs.order_by("id").values_list("id", "data", "created_at", "updated_at")
        for record_id, data, created, updated in values.iterator(chunk_size=RECORD_CHUNK):
            yield [record_id, *(data.get(k) for k in keys), created, updated]

    return header, rows()
