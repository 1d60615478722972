"""CSV import of records: stage the upload, read it as a stream, map columns to fields, check every
row, and write through the spine (`record_bulk_upsert`) in batches — all or nothing in one transaction,
or skipping bad rows. Audited as `records.imported`.

`records_import` is a generator: it yields `ImportProgress` after every batch (the console streams it
to the browser, so a 50,000-row file shows progress instead of timing out) and finally the
`ImportReport`. Closing it early rolls back whatever its open transaction holds.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import math
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from django.core.cache import cache
from django.db import transaction

from audit.services import audit_event_record
from core.csv_cells import csv_cell_unguard
from records.errors import RecordError, ValidationFailed
from records.fields import data_errors
from records.models import Collection, Record
from records.services import record_bulk_upsert

IMPORT_MAX_BYTES = 50 * 1024 * 1024
STAGE_TTL = 2 * 3600
BATCH_ROWS = 500
ERRORS_KEPT = 1000
PREVIEW_ROWS = 5
MAX_COLUMNS = 500
_TRUE = {"true", "yes", "y", "1", "t", "on"}
_FALSE = {"false", "no", "n", "0", "f", "off"}
_DATETIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")

csv.field_size_limit(1024 * 1024)


# --- cells ---------------------------------------------------------------------------------------------


class CellError(ValueError):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def cell_parse(spec: dict, raw: str, *, tz: ZoneInfo) -> Any:
    """One CSV cell (or typed-in default) as the field's JSON value; "" is None (no value)."""
    t = spec["type"]
    text = raw.strip() if t != "long_text" else raw.strip("\r\n ")
    if text == "":
        return None
    if "\x00" in text or (t == "json" and "\\u0000" in text):
        raise CellError("contains a NUL character, which cannot be stored")
    if t != "json":
        text = csv_cell_unguard(text)  # exports guard formula-like text with a leading ' (core.csv_cells)
    if t == "integer":
        try:
            number = Decimal(text.replace(",", "") if re.fullmatch(r"-?\d{1,3}(,\d{3})+", text) else text)
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite() or number != number.to_integral_value():
            raise CellError("must be a whole number")
        return int(number)
    if t == "number":
        try:
            number = Decimal(text)
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            raise CellError("must be a number")
        integral = number == number.to_integral_value() and "." not in text and "e" not in text.lower()
        if integral and abs(number) <= 2**53 - 1:
            return int(number)
        if not math.isfinite(float(number)):
            raise CellError("is too large a number")
        return float(number)
    if t == "boolean":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise CellError("must be true or false (yes/no, 1/0 work too)")
    if t == "date":
        try:
            if len(text) != 10:
                raise ValueError(text)
            return date.fromisoformat(text).isoformat()
        except ValueError as exc:
            raise CellError("must be a date like 2026-01-31") from exc
    if t == "datetime":
        return _datetime_parse(text, tz)
    if t == "json":
        try:
            return json.loads(text, parse_constant=_no_constants)
        except (json.JSONDecodeError, ValueError) as exc:
            raise CellError("must be JSON") from exc
    return text


def _no_constants(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _datetime_parse(text: str, tz: ZoneInfo) -> str:
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        instant = None
        for fmt in _DATETIME_FORMATS:
            try:
                instant = datetime.strptime(text, fmt)  # naive: the workspace zone is added below
                break
            except ValueError:
                continue
    if instant is None or (len(text) == 10):
        raise CellError("must be a date and time like 2026-01-31T09:30 (workspace time) or …Z (UTC)")
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=tz)
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{instant.microsecond:06d}Z" if instant.microsecond else "Z"
    )


# --- staging -------------------------------------------------------------------------------------------


@dataclass
class StagedImport:
    token: str
    name: str
    size: int
    blob: bytes  # gzip of the file as uploaded

    def text(self) -> io.TextIOBase:
        raw = gzip.GzipFile(fileobj=io.BytesIO(self.blob))
        return io.TextIOWrapper(raw, encoding=_encoding_guess(self.blob), errors="replace", newline="")


def _stage_key(token: str) -> str:
    return f"records:import:{token}"


def import_stage(*, user: Any, collection: Collection, upload) -> StagedImport:
    """Keep an uploaded file (compressed, in the cache) while its columns are mapped."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=5) as gz:
        for chunk in upload.chunks():
            gz.write(chunk)
    staged = StagedImport(
        token=secrets.token_urlsafe(16), name=(upload.name or "upload.csv")[:200], size=upload.size, blob=b""
    )
    staged.blob = buffer.getvalue()
    cache.set(
        _stage_key(staged.token),
        {"user": user.pk, "collection": collection.pk, "name": staged.name, "size": staged.size, "blob": staged.blob},
        STAGE_TTL,
    )
    return staged


def import_staged(*, token: str, user: Any, collection: Collection) -> StagedImport | None:
    """The staged file, only for the user and collection it was uploaded for."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{10,64}", token or ""):
        return None
    held = cache.get(_stage_key(token))
    if not held or held["user"] != user.pk or held["collection"] != collection.pk:
        return None
    return StagedImport(token=token, name=held["name"], size=held["size"], blob=held["blob"])


def import_discard(token: str) -> None:
    cache.delete(_stage_key(token))


def _encoding_guess(blob: bytes) -> str:
    """UTF-8 (with or without BOM) when the start of the file decodes as UTF-8, else Windows-1252."""
    head = gzip.GzipFile(fileobj=io.BytesIO(blob)).read(256 * 1024)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8-sig"


def _reader(staged: StagedImport):
    text = staged.text()
    sample = "\n".join(text.read(64 * 1024).splitlines()[:20])  # whole lines only
    text.seek(0)
    try:
        delimiter = csv.Sniffer().sniff(sample, ",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    # Only the delimiter is guessed: spreadsheets quote with ", and a guess of ' (from text such as
    # our own formula-guarded cells, core.csv_cells) would split cells in the wrong places.
    return csv.reader(text, csv.excel, delimiter=delimiter)


def csv_preview(staged: StagedImport) -> tuple[list[str], list[list[str]]]:
    """The header and the first rows, for the mapping page. Raises CellError on an unreadable file."""
    try:
        reader = _reader(staged)
        header = next(reader, None)
        rows = [row for _, row in zip(range(PREVIEW_ROWS), reader, strict=False)]
    except csv.Error as exc:
        raise CellError(f"The file is not readable as CSV ({exc}).") from exc
    if not header or not any(h.strip() for h in header):
        raise CellError("The file has no header row.")
    if len(header) > MAX_COLUMNS:
        raise CellError(f"The file has {len(header)} columns; at most {MAX_COLUMNS} can be imported.")
    return [h.strip() for h in header], rows


def mapping_guess(collection: Collection, header: list[str]) -> dict[int, str]:
    """Columns whose header names a field (by key or label, ignoring case) map to it; `id` to the id."""
    names: dict[str, str] = {"id": "id"}
    for f in collection.fields:
        names.setdefault(f["key"].lower(), f["key"])
        names.setdefault((f.get("label") or f["key"]).strip().lower(), f["key"])
    out: dict[int, str] = {}
    for i, name in enumerate(header):
        target = names.get(name.strip().lower())
        if target and target not in out.values():
            out[i] = target
    return out


# --- the import ----------------------------------------------------------------------------------------


@dataclass
class RowError:
    row: int  # as a spreadsheet numbers it: the header is row 1
    column: str
    message: str


@dataclass
class ImportProgress:
    phase: str  # "checking" | "writing"
    rows: int


@dataclass
class ImportReport:
    mode: str
    check_only: bool
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    bad_rows: int = 0
    errors: list[RowError] = field(default_factory=list)
    errors_total: int = 0
    committed: bool = False

    def error(self, row: int, column: str, message: str) -> None:
        self.errors_total += 1
        if len(self.errors) < ERRORS_KEPT:
            self.errors.append(RowError(row, column, message))

    @property
    def errors_truncated(self) -> bool:
        return self.errors_total > len(self.errors)


@dataclass
class _Row:
    number: int
    item: dict
    columns: dict[str, str]  # field key -> column header, to name columns in errors
    unreadable: set[str] = field(default_factory=set)  # keys whose cell could not be read


class _RowChecker:
    """Turns CSV rows into upsert items and finds what the spine would refuse, without writing."""

    def __init__(self, collection: Collection, header: list[str], mapping: dict[int, str], tz: ZoneInfo):
        self.collection, self.header, self.mapping, self.tz = collection, header, mapping, tz
        self.specs = {f["key"]: f for f in collection.fields}
        self.column_of = {key: (header[i] or f"Column {i + 1}") for i, key in mapping.items()}
        self.unique_keys = [k for k in mapping.values() if k in self.specs and self.specs[k].get("unique")]
        self.seen_unique: dict[str, dict[Any, int]] = {k: {} for k in self.unique_keys}
        self.seen_ids: dict[str, int] = {}
        self._existing_unique: dict[str, dict[Any, str]] | None = None

    def _existing(self) -> dict[str, dict[Any, str]]:
        if self._existing_unique is None:
            self._existing_unique = {}
            live = Record.objects.filter(collection=self.collection, deleted_at=None)
            for key in self.unique_keys:
                self._existing_unique[key] = {
                    _unique_norm(v): rid for rid, v in live.values_list("id", f"data__{key}").iterator(2000) if v
                }
        return self._existing_unique

    def batch(self, rows: list[tuple[int, list[str]]], report: ImportReport) -> list[_Row]:
        """Check a batch of (row number, cells); report bad rows, return the good ones as upsert items."""
        converted = [self._convert(number, cells) for number, cells in rows]
        rows_ok = [r for r, _ in converted]
        here = self._ids_here(rows_ok)
        ids = {r.item["id"] for r in rows_ok if "id" in r.item}
        taken = dict(
            Record.objects.filter(livemode=self.collection.livemode, id__in=ids - here).values_list(
                "id", "collection_id"
            )
        )
        elsewhere = {rid for rid, cid in taken.items() if cid != self.collection.pk}
        deleted = set(taken) - elsewhere
        refs = self._references_missing(rows_ok)
        good: list[_Row] = []
        for row, unreadable in converted:
            # Cells that could not be read are reported with every other problem of the row.
            errors = unreadable + self._row_checks(row, here, elsewhere | deleted, refs, deleted, clean=not unreadable)
            if errors:
                report.bad_rows += 1
                for e in errors:
                    report.error(e.row, e.column, e.message)
            else:
                good.append(self._item(row, here))
        return good

    def items(self, rows: list[tuple[int, list[str]]]) -> list[_Row]:
        """A batch already checked: only convert it to upsert items."""
        converted = [row for row, _ in (self._convert(number, cells) for number, cells in rows)]
        here = self._ids_here(converted)
        return [self._item(row, here) for row in converted]

    def _ids_here(self, rows: list[_Row]) -> set[str]:
        ids = [r.item["id"] for r in rows if "id" in r.item]
        if not ids:
            return set()
        live = Record.objects.filter(collection=self.collection, id__in=ids, deleted_at=None)
        return set(live.values_list("id", flat=True))

    @staticmethod
    def _item(row: _Row, here: set[str]) -> _Row:
        """Updates are merge patches (an empty cell clears the field); creates carry only values."""
        if row.item.get("id") not in here:
            row.item["data"] = {k: v for k, v in row.item["data"].items() if v is not None}
        return row

    def _convert(self, number: int, cells: list[str]) -> tuple[_Row, list[RowError]]:
        errors: list[RowError] = []
        if len(cells) > len(self.header) and any(c.strip() for c in cells[len(self.header) :]):
            errors.append(RowError(number, "", f"has {len(cells)} cells; the header has {len(self.header)}"))
        values: dict[str, Any] = {}
        unreadable: set[str] = set()
        record_id = None
        for i, key in self.mapping.items():
            raw = cells[i] if i < len(cells) else ""
            if key == "id":
                record_id = csv_cell_unguard(raw.strip()) or None
                if record_id and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", record_id):
                    errors.append(RowError(number, self.column_of[key], "is not a record id"))
                continue
            try:
                values[key] = cell_parse(self.specs[key], raw, tz=self.tz)
            except CellError as exc:
                errors.append(RowError(number, self.column_of[key], f"“{_clip(raw)}” {exc.message}"))
                unreadable.add(key)
        item: dict[str, Any] = {"data": values}
        if record_id:
            item["id"] = record_id
        return _Row(number, item, self.column_of, unreadable), errors

    def _row_checks(
        self,
        row: _Row,
        here: set[str],
        taken: set[str],
        refs: set[tuple[str, str]],
        deleted: set[str],
        *,
        clean: bool = True,
    ) -> list[RowError]:
        errors: list[RowError] = []
        number, values, record_id = row.number, row.item["data"], row.item.get("id")
        updating = record_id in here
        if record_id:
            if record_id in self.seen_ids:
                first = self.seen_ids[record_id]
                errors.append(RowError(number, self.column_of["id"], f"repeats the id of row {first}"))
            elif record_id in deleted:
                errors.append(RowError(number, self.column_of["id"], "is the id of a deleted record"))
            elif record_id in taken:
                errors.append(RowError(number, self.column_of["id"], "is the id of a record in another collection"))
        if updating:
            patch = {k: v for k, v in values.items() if v is not None}
            for key, value in values.items():
                if value is None and self.specs[key].get("required"):
                    errors.append(RowError(number, self.column_of[key], "is required"))
            problems = data_errors(self.collection.fields, patch, cache_key=self.collection.cache_key)
            problems = [e for e in problems if e["code"] != "required"]
        else:
            data = {k: v for k, v in values.items() if v is not None}
            for f in self.collection.fields:
                if data.get(f["key"]) is None and "default" in f:
                    data[f["key"]] = f["default"]
            problems = data_errors(self.collection.fields, data, cache_key=self.collection.cache_key)
        for problem in problems:
            key = problem["param"].split(".")[1] if problem["param"].startswith("data.") else ""
            if key in row.unreadable:
                continue
            errors.append(RowError(number, self.column_of.get(key, key), _message(problem["message"], key)))
        for key, value in values.items():
            spec = self.specs[key]
            if spec["type"] == "reference" and value is not None and (spec["collection"], value) in refs:
                errors.append(RowError(number, self.column_of[key], f"no {spec['collection']} record “{value}”"))
        if errors or not clean:
            return errors
        for key in self.unique_keys:
            value = values.get(key)
            if value is None:
                continue
            norm = _unique_norm(value)
            if norm in self.seen_unique[key]:
                first = self.seen_unique[key][norm]
                errors.append(RowError(number, self.column_of[key], f"“{_clip(str(value))}” repeats row {first}"))
                continue
            owner = self._existing()[key].get(norm)
            if owner is not None and owner != record_id:
                errors.append(
                    RowError(number, self.column_of[key], f"“{_clip(str(value))}” is already used by record {owner}")
                )
        if not errors:
            if record_id:
                self.seen_ids[record_id] = number
            for key in self.unique_keys:
                if values.get(key) is not None:
                    self.seen_unique[key][_unique_norm(values[key])] = number
        return errors

    def _references_missing(self, rows: list[_Row]) -> set[tuple[str, str]]:
        wanted: dict[str, set[str]] = {}
        for row in rows:
            for key, value in row.item["data"].items():
                spec = self.specs[key]
                if spec["type"] == "reference" and isinstance(value, str):
                    wanted.setdefault(spec["collection"], set()).add(value)
        missing: set[tuple[str, str]] = set()
        for target, values in wanted.items():
            found = set(
                Record.objects.filter(
                    id__in=values,
                    livemode=self.collection.livemode,
                    collection__slug=target,
                    collection__livemode=self.collection.livemode,
                    collection__deleted_at=None,
                    deleted_at=None,
                ).values_list("id", flat=True)
            )
            missing |= {(target, v) for v in values - found}
        return missing


def _unique_norm(value: Any) -> Any:
    """The spine's notion of "the same value" for unique fields (case and outer spaces ignored)."""
    if isinstance(value, str):
        return value.strip().lower()
    return json.dumps(value, sort_keys=True)


def _clip(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _message(message: str, key: str) -> str:
    """Spine messages start with the key (`score` must be …); the report names the column instead."""
    if key:
        message = re.sub(r"^`[^`]*`\s*", "", message)
    return re.sub(r"`([^`]*)`", r"“\1”", message)


def _rows(staged: StagedImport, report: ImportReport) -> Iterator[tuple[int, list[str]]]:
    reader = _reader(staged)
    next(reader, None)  # header
    number = 1
    try:
        for number, cells in enumerate(reader, start=2):
            if any(c.strip() for c in cells):
                yield number, cells
    except csv.Error as exc:  # e.g. a NUL byte or an unclosed quote: nothing after it can be trusted
        report.bad_rows += 1
        report.error(number + 1, "", f"the file stops being readable CSV here ({exc}); later rows were not read")


def _batches(staged: StagedImport, report: ImportReport) -> Iterator[list[tuple[int, list[str]]]]:
    batch: list[tuple[int, list[str]]] = []
    for row in _rows(staged, report):
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def _write(actor: Any, collection: Collection, rows: list[_Row], report: ImportReport) -> None:
    """One batch through the spine; each item succeeds or fails on its own (the spine's savepoints)."""
    results = record_bulk_upsert(actor=actor, collection=collection, items=[r.item for r in rows])
    for row, result in zip(rows, results, strict=True):
        if result.status == "created":
            report.created += 1
        elif result.status == "updated":
            report.updated += 1
        elif result.status == "unchanged":
            report.unchanged += 1
        else:
            report.bad_rows += 1
            _spine_error(report, row, result.error)


def _spine_error(report: ImportReport, row: _Row, exc: RecordError | None) -> None:
    errors = exc.errors if isinstance(exc, ValidationFailed) else [{"param": exc.param, "message": exc.message}]
    for e in errors:
        param = e.get("param") or ""
        key = param.split(".")[1] if param.startswith("data.") else ("id" if param == "id" else "")
        report.error(row.number, row.columns.get(key, ""), _message(e["message"], key))


def records_import(
    *,
    actor: Any,
    collection: Collection,
    staged: StagedImport,
    header: list[str],
    mapping: dict[int, str],
    mode: str,
    tz: ZoneInfo,
    check_only: bool = False,
) -> Iterator[ImportProgress | ImportReport]:
    """Import the staged file. mode "all": check every row first, then write them all in one
    transaction (nothing is kept if any row fails). mode "skip": write each batch's good rows."""
    if mode not in {"all", "skip"}:
        raise RecordError("Choose all-or-nothing or skip bad rows.", param="mode")
    report = ImportReport(mode=mode, check_only=check_only)
    checker = _RowChecker(collection, header, mapping, tz)
    if mode == "all" or check_only:
        for batch in _batches(staged, report):
            report.rows += len(batch)
            checker.batch(batch, report)
            yield ImportProgress("checking", report.rows)
        if check_only or report.errors_total:
            yield report
            return
        # Every row passed: write them all in one transaction; the spine checks each again.
        report.rows = 0
        with transaction.atomic():
            for batch in _batches(staged, report):
                report.rows += len(batch)
                _write(actor, collection, checker.items(batch), report)
                yield ImportProgress("writing", report.rows)
            if report.errors_total:
                transaction.set_rollback(True)
                report.created = report.updated = report.unchanged = 0
                yield report
                return
            _audit(actor, collection, staged, report)
            report.committed = True
        yield report
        return
    audited = False
    try:
        for batch in _batches(staged, report):
            report.rows += len(batch)
            good = checker.batch(batch, report)
            if good:
                _write(actor, collection, good, report)
            yield ImportProgress("writing", report.rows)
        report.committed = True
        if report.created or report.updated:
            _audit(actor, collection, staged, report)
        audited = True
        yield report
    finally:
        if not audited and (report.created or report.updated):  # stopped early: what it wrote stays
            _audit(actor, collection, staged, report, interrupted=True)


def _audit(actor: Any, collection: Collection, staged: StagedImport, report: ImportReport, **extra: Any) -> None:
    audit_event_record(
        action="records.imported",
        actor=actor,
        target=collection,
        changes={
            "collection": collection.slug,
            "file": staged.name,
            "mode": report.mode,
            "rows": report.rows,
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "bad_rows": report.bad_rows,
            **extra,
        },
    )
