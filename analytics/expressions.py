"""The SQL analytics aggregates with: typed reads of record data, local days in the workspace's time
zone, and percentiles, each spelled for PostgreSQL (`as_postgresql`) and SQLite (`as_sqlite`).

Each expression reads a value exactly as analytics.queries' Python reference path does, so both paths
give one result: numbers are JSON numbers only (a text "12.50" or a boolean is not one); a date is a
valid `YYYY-MM-DD` text; a datetime is an ISO text with a `Z` or an offset (a local time without one is
no instant); group keys and distinct values tell `true` from 1 and a text "3" from the number 3, but
not 3 from 3.0. Anything else reads as NULL, never as a database error.

Field keys are written into the statement: they match records.fields.KEY_RE ([a-z0-9_]) or are a
built-in column, checked here again. SQLite has no time zones and no percentile_cont: two functions
(`tessera_utc_offset`, `tessera_percentile`) are registered on every SQLite connection
(`sqlite_functions_register`, connected in apps.py), computed in Python with the same rules.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from django.db.models import Aggregate, BooleanField, DateField, Expression, FloatField, TextField

from records.fields import KEY_RE

BUILTIN_COLUMNS = frozenset({"created_at", "updated_at"})

# ISO texts PostgreSQL can cast without an error once they match (the day of the month is checked apart).
_PG_DATE_RE = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
_PG_DATETIME_RE = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[T ]([01][0-9]|2[0-3]):[0-5][0-9]"
    r"(:[0-5][0-9](\.[0-9]+)?)?(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)$"
)
# SQLite takes 30 February for a day (moved on by any modifier to 2 March): valid when date(·, '+0 days') gives it back.
_SQLITE_DATETIME_GLOB = "[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9][T ][0-2][0-9]:[0-5][0-9]*"
_SQLITE_OFFSET_GLOBS = ("*Z", "*[+-][0-2][0-9]:[0-5][0-9]")


def _key(key: str) -> str:
    if key not in BUILTIN_COLUMNS and not KEY_RE.fullmatch(key):
        raise ValueError(f"not a field key: {key!r}")
    return key


def _pg_valid_day(text: str) -> str:
    """A YYYY-MM-DD prefix that names a real day (matched by the regex first, so the casts cannot fail)."""
    return (
        f"(substr({text}, 1, 4) <> '0000' AND (substr({text}, 9, 2)::int <= 28 OR substr({text}, 9, 2)::int <= "
        f"extract(day from make_date(substr({text}, 1, 4)::int, substr({text}, 6, 2)::int, 1) "
        "+ interval '1 month' - interval '1 day')))"
    )


class _DataExpression(Expression):
    """A leaf reading one key of the records' `data` (or a built-in column) in the query's own table."""

    def __init__(self, key: str, output_field=None):
        super().__init__(output_field=output_field)
        self.key = _key(key)

    def _data(self, compiler, connection) -> str:
        table = compiler.quote_name_unless_alias(compiler.query.get_initial_alias())
        return f"{table}.{connection.ops.quote_name('data')}"

    def _builtin(self, compiler, connection) -> str:
        table = compiler.quote_name_unless_alias(compiler.query.get_initial_alias())
        return f"{table}.{connection.ops.quote_name(self.key)}"

    def as_sql(self, compiler, connection):  # pragma: no cover - every database has its own spelling
        raise NotImplementedError(connection.vendor)


class JsonNumber(_DataExpression):
    """The value when it is a JSON number, else NULL (PostgreSQL: numeric, exact; SQLite: integer or real)."""

    def __init__(self, key: str):
        super().__init__(key, output_field=FloatField())

    def as_postgresql(self, compiler, connection):
        data = self._data(compiler, connection)
        is_number = f"jsonb_typeof({data} -> '{self.key}') = 'number'"
        return f"(CASE WHEN {is_number} THEN ({data} ->> '{self.key}')::numeric END)", []

    def as_sqlite(self, compiler, connection):
        data = self._data(compiler, connection)
        path = f"'$.\"{self.key}\"'"
        return (
            f"(CASE WHEN json_type({data}, {path}) IN ('integer', 'real') THEN json_extract({data}, {path}) END)",
            [],
        )


class JsonGroupKey(_DataExpression):
    """The value as one group (or one distinct value), handed back as the Python value: JSON null and a
    missing key are None.

    PostgreSQL groups the jsonb value itself (jsonb equality: 3 = 3.0, objects by content). SQLite groups
    json_extract's SQL value, in which a text "3" is not the number 3 and 3 = 3.0; booleans, which it
    would give as 1 and 0, are one-byte blobs, and objects and arrays blobs of their JSON text, so none
    of them meets a number or a text."""

    def __init__(self, key: str):
        super().__init__(key, output_field=TextField())

    def as_postgresql(self, compiler, connection):
        data = self._data(compiler, connection)
        return f"NULLIF({data} -> '{self.key}', 'null'::jsonb)", []

    def as_sqlite(self, compiler, connection):
        data = self._data(compiler, connection)
        path = f"'$.\"{self.key}\"'"
        value = f"json_extract({data}, {path})"
        return (
            f"(CASE json_type({data}, {path}) WHEN 'true' THEN X'01' WHEN 'false' THEN X'00' "
            f"WHEN 'object' THEN CAST({value} AS BLOB) WHEN 'array' THEN CAST({value} AS BLOB) ELSE {value} END)",
            [],
        )

    def get_db_converters(self, connection):
        return [_group_value_decode]


def _group_value_decode(value, expression, connection):
    if value is None:
        return None
    if connection.vendor == "postgresql":
        return json.loads(value) if isinstance(value, str) else value
    if isinstance(value, (bytes, memoryview)):
        raw = bytes(value)
        return {b"\x01": True, b"\x00": False}.get(raw) if len(raw) == 1 else json.loads(raw)
    return value


class LocalDay(_DataExpression):
    """The calendar day a date or datetime value falls on in the workspace's time zone (NULL: not one).

    `kind` is the field's type: "date" values are days already; "datetime" values and the built-in
    created_at/updated_at are instants, moved into `zone` (DST included)."""

    def __init__(self, key: str, *, kind: str, zone: str):
        super().__init__(key, output_field=DateField())
        self.kind = "datetime" if key in BUILTIN_COLUMNS else kind
        ZoneInfo(zone)  # a zone Python knows; PostgreSQL's tz database has the same names
        self.zone = zone

    def as_postgresql(self, compiler, connection):
        if self.key in BUILTIN_COLUMNS:
            return f"(({self._builtin(compiler, connection)} AT TIME ZONE %s)::date)", [self.zone]
        data = self._data(compiler, connection)
        text = f"({data} ->> '{self.key}')"
        is_text = f"jsonb_typeof({data} -> '{self.key}') = 'string'"
        if self.kind == "date":
            return f"(CASE WHEN {is_text} AND {text} ~ %s AND {_pg_valid_day(text)} THEN {text}::date END)", [
                _PG_DATE_RE
            ]
        return (
            f"(CASE WHEN {is_text} AND {text} ~ %s AND {_pg_valid_day(text)} "
            f"THEN ({text}::timestamptz AT TIME ZONE %s)::date END)",
            [_PG_DATETIME_RE, self.zone],
        )

    def as_sqlite(self, compiler, connection):
        if self.key in BUILTIN_COLUMNS:
            instant = f"unixepoch({self._builtin(compiler, connection)})"
            return self._sqlite_local(instant), self._sqlite_params()
        data = self._data(compiler, connection)
        path = f"'$.\"{self.key}\"'"
        text = f"json_extract({data}, {path})"
        is_text = f"json_type({data}, {path}) = 'text'"
        if self.kind == "date":  # date() writes back exactly a valid YYYY-MM-DD text (and no number, no other text)
            return f"(CASE WHEN date({text}, '+0 days') = {text} THEN {text} END)", []
        valid_day = f"date(substr({text}, 1, 10), '+0 days') = substr({text}, 1, 10)"
        offset = " OR ".join(f"{text} GLOB '{g}'" for g in _SQLITE_OFFSET_GLOBS)
        local = self._sqlite_local(f"unixepoch({text})")
        return (
            f"(CASE WHEN {is_text} AND {text} GLOB '{_SQLITE_DATETIME_GLOB}' AND ({offset}) AND {valid_day} "
            f"THEN {local} END)",
            self._sqlite_params(),
        )

    def _sqlite_local(self, instant: str) -> str:
        if self.zone == "UTC":
            return f"date({instant}, 'unixepoch')"
        return f"date({instant} + tessera_utc_offset({instant}, %s), 'unixepoch')"

    def _sqlite_params(self) -> list:
        return [] if self.zone == "UTC" else [self.zone]


class DayInBucket(Expression):
    """The first day of the day/week (ISO, Monday)/month/quarter/year a LocalDay falls in."""

    output_field = DateField()

    def __init__(self, day: LocalDay, bucket: str):
        super().__init__(output_field=DateField())
        if bucket not in {"day", "week", "month", "quarter", "year"}:
            raise ValueError(bucket)
        self.day, self.bucket = day, bucket

    def get_source_expressions(self):
        return [self.day]

    def set_source_expressions(self, exprs):
        (self.day,) = exprs

    def as_postgresql(self, compiler, connection):
        day, params = compiler.compile(self.day)
        if self.bucket == "day":
            return day, params
        return f"(date_trunc('{self.bucket}', {day})::date)", params

    def as_sqlite(self, compiler, connection):
        day, params = compiler.compile(self.day)
        if self.bucket == "day":
            return day, params
        if self.bucket == "week":
            return f"date({day}, '-' || ((CAST(strftime('%%w', {day}) AS INTEGER) + 6) %% 7) || ' days')", params * 2
        if self.bucket == "month":
            return f"strftime('%%Y-%%m-01', {day})", params
        if self.bucket == "year":
            return f"strftime('%%Y-01-01', {day})", params
        return (
            f"printf('%%s-%%02d-01', strftime('%%Y', {day}), "
            f"(CAST(strftime('%%m', {day}) AS INTEGER) - 1) / 3 * 3 + 1)",
            params * 2,
        )


class InRange(Expression):
    """A LocalDay between two days, both included (a record whose day is unknown is outside)."""

    output_field = BooleanField()
    conditional = True

    def __init__(self, day: LocalDay, first, last):
        super().__init__(output_field=BooleanField())
        self.day, self.first, self.last = day, first, last

    def get_source_expressions(self):
        return [self.day]

    def set_source_expressions(self, exprs):
        (self.day,) = exprs

    def as_sql(self, compiler, connection):
        day, params = compiler.compile(self.day)
        bound_sql = "%s::date" if connection.vendor == "postgresql" else "%s"  # SQLite: ISO texts compare as days
        parts, out = [f"{day} IS NOT NULL"], list(params)
        for op, bound in ((">=", self.first), ("<=", self.last)):
            if bound is not None:
                parts.append(f"{day} {op} {bound_sql}")
                out += [*params, bound.isoformat()]
        return "(" + " AND ".join(parts) + ")", out


class Percentile(Aggregate):
    """Linear interpolation between the closest ranks (PostgreSQL's percentile_cont; on SQLite the
    registered `tessera_percentile`, the same arithmetic). NULLs are left out; no value gives NULL."""

    output_field = FloatField()
    allow_distinct = False

    def __init__(self, expression, p: float, **extra):
        if not 0 <= p <= 100:
            raise ValueError(p)
        self.p = float(p)
        super().__init__(expression, **extra)

    def as_postgresql(self, compiler, connection, **extra_context):
        inner, params = compiler.compile(self.get_source_expressions()[0])
        return f"percentile_cont({self.p / 100!r}) WITHIN GROUP (ORDER BY ({inner})::float8)", params

    def as_sqlite(self, compiler, connection, **extra_context):
        inner, params = compiler.compile(self.get_source_expressions()[0])
        return f"tessera_percentile({inner}, {self.p!r})", params


# --- SQLite's missing pieces, computed in Python ------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class _PercentileAggregate:
    def __init__(self):
        self.values: list = []
        self.p = 0.0

    def step(self, value, p):
        self.p = p
        if value is not None:
            self.values.append(value)

    def finalize(self):
        return percentile(self.values, self.p)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _utc_offset(instant, zone):
    if instant is None or zone is None:
        return None
    try:
        return int(datetime.fromtimestamp(instant, UTC).astimezone(_zone(zone)).utcoffset().total_seconds())
    except (OverflowError, OSError, ValueError, KeyError):
        return None


def sqlite_functions_register(sender, connection, **kwargs) -> None:
    """connection_created receiver: the two functions LocalDay and Percentile call on SQLite."""
    if connection.vendor != "sqlite":
        return
    raw = connection.connection
    raw.create_function("tessera_utc_offset", 2, _utc_offset, deterministic=True)
    raw.create_aggregate("tessera_percentile", 2, _PercentileAggregate)
