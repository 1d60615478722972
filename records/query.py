"""The query engine of records: collections with their record counts, and record queries
(sort by any column, `field__op=value` filters, search, keyset pages) that stays fast at 100,000 rows.

Pages are keyset pages on (sort value, id): the next page is "rows after the last one shown", never an
OFFSET, so a deep page costs what the first one does. Nothing here counts every row of a filtered view:
counts of filtered views stop at COUNT_CAP.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Case, F, IntegerField, Q, QuerySet, Value, When
from django.db.models.expressions import OrderBy
from django.db.models.fields.json import KeyTransform
from django.http import QueryDict

from records.dialect import planner_row_estimate
from records.errors import RecordError
from records.fields import RECORD_ID_RE
from records.models import Collection, Record
from records.selectors import FILTER_OPS, record_filter, record_list, record_search

# Query-string names the table uses for itself; a field with one of these keys is filtered as `key__eq`.
# Besides what selects rows, a table URL carries how its columns are laid out (hidden ones, widths in
# pixels, how many stay frozen on the left), so a saved view is its URL and a link shows what one sees.
LAYOUT_PARAMS = frozenset({"hide", "widths", "freeze"})
RESERVED_PARAMS = frozenset(
    {"q", "sort", "after", "before", "per_page", "page", "count", "filter_field", "filter_op", "filter_value"}
    | LAYOUT_PARAMS
    | {"cols", "col", "view"}
)
WIDTH_MIN, WIDTH_MAX = 48, 800
FREEZE_MAX = 3
PAGE_SIZES = (25, 50, 100, 200)
PAGE_SIZE_DEFAULT = 50
COUNT_CAP = 1000
ESTIMATE_ABOVE = 20_000
BUILTIN_SORTS = {"id": "Id", "updated_at": "Updated"}
UNSORTABLE_TYPES = frozenset({"json"})
DEFAULT_SORT = "-id"  # newest first: ids are ULIDs, so id order is creation order
OP_LABELS = {
    "eq": "is",
    "ne": "is not",
    "contains": "contains",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "in": "is one of",
    "isnull": "is empty",
}
_RECORD_ID = re.compile(RECORD_ID_RE)


# --- the collections list ---------------------------------------------------------------------------


def collection_record_counts(collections: list[Collection]) -> dict[int, tuple[int, bool]]:
    """{collection id: (live records, estimated)} — big collections estimated, as their tables do."""
    return {c.pk: _count_pair(record_list(collection=c)) for c in collections}


def _count_pair(qs: QuerySet[Record]) -> tuple[int, bool]:
    count, _exact, estimated = record_count_fast(qs)
    return count, estimated


# --- what a table URL asks for ----------------------------------------------------------------------


@dataclass(frozen=True)
class Sort:
    key: str  # "id", "updated_at" or a field key
    descending: bool = False

    @property
    def param(self) -> str:
        return ("-" if self.descending else "") + self.key

    def toggled(self) -> Sort:
        return Sort(self.key, not self.descending)


@dataclass
class TableQuery:
    sort: Sort
    filters: dict[str, str] = field(default_factory=dict)
    q: str = ""
    after: str = ""
    before: str = ""
    per_page: int = PAGE_SIZE_DEFAULT
    count: bool = False  # count the matches of a filtered view (else deferred: a separate request does it)
    hidden: tuple[str, ...] = ()  # field keys whose columns are hidden
    widths: dict[str, int] = field(default_factory=dict)  # column key -> width in pixels
    frozen: int = 0  # columns kept in view on the left when the table scrolls sideways
    view: str = ""  # the saved view this table was opened from (records.table_views), kept on its links

    def layout_params(self) -> dict[str, str]:
        return {
            "hide": ",".join(self.hidden),
            "widths": ",".join(f"{k}:{w}" for k, w in self.widths.items()),
            "freeze": str(self.frozen) if self.frozen else "",
        }

    def params(self, **changes: Any) -> QueryDict:
        """The query string of this view (cursors dropped), with `changes` applied (None removes)."""
        out = QueryDict(mutable=True)
        values: dict[str, Any] = {"q": self.q, "sort": self.sort.param if self.sort.param != DEFAULT_SORT else ""}
        if self.per_page != PAGE_SIZE_DEFAULT:
            values["per_page"] = str(self.per_page)
        values.update(self.layout_params())
        values["view"] = self.view
        values.update(self.filters)
        for key, value in changes.items():
            values[key] = value
        for key, value in values.items():
            if value not in (None, ""):
                out[key] = value
        return out


def filter_param(key: str, op: str) -> str:
    """The query-string name of a filter: `key` for equality (unless the key is reserved), else `key__op`."""
    if op == "eq" and key not in RESERVED_PARAMS:
        return key
    return f"{key}__{op}"


def sort_parse(collection: Collection, raw: str) -> Sort:
    raw = (raw or "").strip() or DEFAULT_SORT
    descending = raw.startswith("-")
    key = raw.lstrip("-")
    if key in BUILTIN_SORTS:
        return Sort(key, descending)
    spec = collection.field(key)
    if spec is None or spec["type"] in UNSORTABLE_TYPES:
        raise RecordError(f"Cannot sort by `{key}`.", param="sort", code="invalid_sort")
    return Sort(key, descending)


def _layout_parse(collection: Collection, params: QueryDict | dict[str, str]) -> tuple[tuple, dict, int]:
    """Hidden columns, widths and frozen columns of a table URL. Lenient: a saved view outlives fields
    (a removed one is left out), and a width or count out of range is brought into it, never refused.
    The columns menu posts `cols=1` with a `col` per column to show; that becomes `hide`."""
    keys = [f["key"] for f in collection.fields]
    if params.get("cols") == "1":
        shown = set(params.getlist("col")) if hasattr(params, "getlist") else {params.get("col", "")}
        hidden = tuple(k for k in keys if k not in shown)
    else:
        wanted = set(params.get("hide", "").split(","))
        hidden = tuple(k for k in keys if k in wanted)
    if len(hidden) == len(keys):
        hidden = hidden[1:]  # a table keeps at least one column of data
    widths: dict[str, int] = {}
    for pair in params.get("widths", "").split(",")[:200]:
        key, _, width = pair.partition(":")
        if (key in keys or key == "updated_at") and width.isdigit():
            widths[key] = max(WIDTH_MIN, min(WIDTH_MAX, int(width)))
    freeze = params.get("freeze", "")[:2]
    frozen = max(0, min(FREEZE_MAX, int(freeze))) if freeze.isdigit() else 0
    return hidden, widths, frozen


def table_query_parse(collection: Collection, params: QueryDict | dict[str, str]) -> TableQuery:
    """Read a table URL. Raises RecordError (with `param`) for a sort, filter or page it cannot honour."""
    pairs = params.lists() if hasattr(params, "lists") else ((k, [v]) for k, v in params.items())
    if any("\x00" in key or any("\x00" in v for v in values) for key, values in pairs):
        raise RecordError("The address holds a NUL character; remove it.", param="q", code="invalid_query")
    sort = sort_parse(collection, params.get("sort", ""))
    try:
        per_page = int(params.get("per_page") or PAGE_SIZE_DEFAULT)
    except ValueError:
        per_page = 0
    if per_page not in PAGE_SIZES:
        raise RecordError(
            f"Rows per page must be one of {', '.join(map(str, PAGE_SIZES))}.", param="per_page", code="invalid_page"
        )
    filters: dict[str, str] = {}
    for name, value in params.items():
        if name in RESERVED_PARAMS:
            continue
        key, _, op = name.partition("__")
        if collection.field(key) is None:
            raise RecordError(f"No field `{key}` to filter on.", param=name, code="unknown_filter")
        if op and op not in FILTER_OPS:
            raise RecordError(f"Unknown filter `{op}` on `{key}`.", param=name, code="unknown_filter")
        if len(value) > 500:
            raise RecordError("A filter value is at most 500 characters.", param=name)
        filters[name] = value
    added = (params.get("filter_field", ""), params.get("filter_op", "") or "eq", params.get("filter_value", ""))
    if added[0]:
        key, op, value = added
        if collection.field(key) is None:
            raise RecordError(f"No field `{key}` to filter on.", param="filter_field", code="unknown_filter")
        if op not in FILTER_OPS:
            raise RecordError(f"Unknown filter `{op}`.", param="filter_op", code="unknown_filter")
        if op == "isnull" and value == "":
            value = "true"
        if value == "" and op != "isnull":
            raise RecordError("Enter a value to filter by.", param="filter_value", code="filter_value_missing")
        filters[filter_param(key, op)] = value
    q = params.get("q", "").strip()
    if len(q) > 200:
        raise RecordError("Search for at most 200 characters.", param="q")
    query = TableQuery(sort=sort, filters=filters, q=q, per_page=per_page, count=params.get("count") == "1")
    query.hidden, query.widths, query.frozen = _layout_parse(collection, params)
    view = params.get("view", "")
    query.view = view if view.isdigit() and len(view) < 12 else ""
    query.after, query.before = params.get("after", ""), params.get("before", "")
    for name in ("after", "before"):
        if getattr(query, name) and getattr(query, name) != "end":
            cursor_decode(getattr(query, name), sort)  # refuse a broken link now, not halfway through a query
    return query


# --- cursors -----------------------------------------------------------------------------------------


def cursor_encode(value: Any, record_id: str) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps([value, record_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_decode(cursor: str, sort: Sort) -> tuple[Any, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, record_id = json.loads(raw)
        if not (isinstance(record_id, str) and _RECORD_ID.match(record_id)):
            raise ValueError
        if isinstance(value, (dict, list)):
            raise ValueError
        if sort.key == "updated_at":
            value = datetime.fromisoformat(value)
        elif sort.key == "id":
            value = record_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise RecordError(
            "This page link is not valid any more; start from the first page.", param="after", code="invalid_cursor"
        ) from exc
    return value, record_id


def _sort_value(record: Record, sort: Sort) -> Any:
    if sort.key == "id":
        return record.id
    if sort.key == "updated_at":
        return record.updated_at
    value = record.data.get(sort.key)
    return int(value) if isinstance(value, bool) else value


# --- the query ---------------------------------------------------------------------------------------


def _sort_expression(collection: Collection, sort: Sort):
    if sort.key in BUILTIN_SORTS:
        return F(sort.key)
    if collection.field(sort.key)["type"] == "boolean":
        # SQLite compares JSON booleans as the text 'true'/'false' but binds True as 1: sort on 0/1 instead.
        return Case(
            When(**{f"data__{sort.key}": True}, then=Value(1)),
            When(**{f"data__{sort.key}": False}, then=Value(0)),
            default=None,
            output_field=IntegerField(),
        )
    return KeyTransform(sort.key, "data")


def _matching(collection: Collection, query: TableQuery) -> QuerySet[Record]:
    qs = record_list(collection=collection)
    qs = record_filter(qs, collection, query.filters)
    return record_search(qs, query.q)


def record_table_queryset(collection: Collection, query: TableQuery) -> QuerySet[Record]:
    """Live records of the collection, filtered and searched, in the table's order (as exports want)."""
    return _ordered(_matching(collection, query), collection, query.sort, reverse=False)


def _ordered(qs: QuerySet[Record], collection: Collection, sort: Sort, *, reverse: bool) -> QuerySet[Record]:
    """The whole table in one ORDER BY (for exports): by (sort value, id), missing values last."""
    descending = sort.descending != reverse
    if sort.key == "id":
        return qs.order_by("-id" if descending else "id")
    nulls = {"nulls_first": True} if reverse else {"nulls_last": True}
    qs = qs.annotate(_sort=_sort_expression(collection, sort))
    return qs.order_by(OrderBy(F("_sort"), descending=descending, **nulls), "-id" if descending else "id")


def _walk(
    qs: QuerySet[Record], collection: Collection, sort: Sort, *, backwards: bool, cursor, limit: int
) -> list[Record]:
    """Up to `limit` rows from `cursor` on, nearest first; `cursor` None starts at the beginning (or, going
    backwards, at the end).

    The table is two runs: rows with a value, by (value, id), then rows without one, by id. Each run is
    read with its own query — a range on (value, id) and a range on id — never `... OR value IS NULL`,
    which no index can serve in order. Keyset conditions are spelled `v >= cv AND (v > cv OR id > cid)`:
    the same rows as `v > cv OR (v = cv AND id > cid)`, but a range an index can seek to, so a deep page
    costs what the first one does."""
    desc = sort.descending != backwards  # the direction this walk reads in
    op = "lt" if desc else "gt"
    if sort.key == "id":
        if cursor is not None:
            qs = qs.filter(**{f"id__{op}": cursor[1]})
        return list(qs.order_by("-id" if desc else "id")[:limit])
    annotated = qs.annotate(_sort=_sort_expression(collection, sort))
    by_id = "-id" if desc else "id"
    present = annotated.order_by(OrderBy(F("_sort"), descending=desc), by_id)
    if sort.key in BUILTIN_SORTS:  # never empty
        runs = [present]
    else:
        present = present.filter(_sort__isnull=False)
        missing = annotated.filter(_sort__isnull=True).order_by(by_id)
        runs = [missing, present] if backwards else [present, missing]
    if cursor is not None:
        value, record_id = cursor
        if value is None:  # the cursor sits among the rows without a value
            runs = [missing.filter(**{f"id__{op}": record_id}), *(runs[1:] if backwards else [])]
        else:
            beyond = Q(**{f"_sort__{op}e": value}) & (Q(**{f"_sort__{op}": value}) | Q(**{f"id__{op}": record_id}))
            runs = [present.filter(beyond), *(runs[1:] if not backwards and len(runs) > 1 else [])]
    rows: list[Record] = []
    for run in runs:
        rows += list(run[: limit - len(rows)])
        if len(rows) >= limit:
            break
    return rows


@dataclass
class TablePage:
    records: list[Record]
    next_cursor: str = ""
    prev_cursor: str = ""
    has_next: bool = False
    has_prev: bool = False
    count: int | None = None
    count_exact: bool = True  # False: `count` is a lower bound (COUNT_CAP + 1) or, unfiltered, an estimate
    count_estimated: bool = False
    count_deferred: bool = False  # a filtered view spanning pages: counted on request (query.count)


def record_table_page(collection: Collection, query: TableQuery) -> TablePage:
    """One page of the table. `after`/`before` cursors come from an earlier page; `before=end` is the last page."""
    qs = _matching(collection, query)
    size = query.per_page
    backwards = bool(query.before)
    raw = query.before if backwards else query.after
    cursor = cursor_decode(raw, query.sort) if raw and raw != "end" else None
    rows = _walk(qs, collection, query.sort, backwards=backwards, cursor=cursor, limit=size + 1)
    more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    page = TablePage(records=rows)
    if backwards:
        page.has_prev, page.has_next = more, query.before != "end"
    else:
        page.has_next, page.has_prev = more, bool(query.after)
    if rows:
        page.next_cursor = cursor_encode(_sort_value(rows[-1], query.sort), rows[-1].id)
        page.prev_cursor = cursor_encode(_sort_value(rows[0], query.sort), rows[0].id)
    if not page.has_next and not page.has_prev and not (backwards and query.before != "end"):
        page.count = len(rows)  # everything is on this page: no need to count
    elif query.filters or query.q:
        # Counting matches can cost a scan the page itself avoided: only when asked (htmx asks at once).
        if query.count:
            n = qs.order_by().values("id")[: COUNT_CAP + 1].count()
            page.count, page.count_exact = n, n <= COUNT_CAP
        else:
            page.count_deferred = True
    else:
        page.count, page.count_exact, page.count_estimated = record_count_fast(qs)
    return page


def record_count_fast(qs: QuerySet[Record]) -> tuple[int, bool, bool]:
    """(count, exact, estimated) of an unfiltered table. PostgreSQL's planner knows roughly how many
    rows a collection holds; past ESTIMATE_ABOVE its estimate is shown instead of counting them all.
    SQLite counts over the partial index, which stays cheap at this size."""
    sql, params = qs.order_by().values("id").query.sql_with_params()
    estimate = planner_row_estimate(sql, params)
    if estimate is not None and estimate > ESTIMATE_ABOVE:
        return _round(estimate), False, True
    return qs.order_by().count(), True, False


def _round(n: int) -> int:
    """Two significant digits: an estimate should not look exact."""
    digits = max(len(str(n)) - 2, 0)
    return round(n, -digits)


# --- titles -----------------------------------------------------------------------------------------------

TITLE_TYPES = ("text", "email", "choice", "url")


def record_title(collection: Collection, data: dict, record_id: str) -> str:
    """What people call a record: its first text-like field's value, else its id."""
    for spec in collection.fields:
        if spec["type"] in TITLE_TYPES and data.get(spec["key"]):
            return str(data[spec["key"]])
    return record_id


def record_titles(*, livemode: bool, collection_slug: str, ids: set[str]) -> dict[str, str]:
    """{id: title} of live records of one collection, in one query (references in a table page)."""
    target = Collection.objects.filter(livemode=livemode, slug=collection_slug, deleted_at=None).first()
    if target is None or not ids:
        return {}
    rows = Record.objects.filter(collection=target, livemode=livemode, deleted_at=None, id__in=ids).only("id", "data")
    return {r.id: record_title(target, r.data, r.id) for r in rows}
