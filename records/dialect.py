"""Where PostgreSQL and SQLite differ for records: the one module that asks which database it runs on.

Record data is JSON (`jsonb` in PostgreSQL, JSON text in SQLite); renaming or dropping a key in place,
estimating a count from the planner, and partial expression indexes are said differently (or not at all).
"""

from __future__ import annotations

import json

from django.db import connection
from django.db.models import F, Func, TextField, Value


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def sort_indexes_supported() -> bool:
    """Partial expression indexes built without blocking writers (CREATE INDEX CONCURRENTLY): PostgreSQL.
    SQLite — one business on a desktop — sorts without them."""
    return is_postgresql()


def records_rows_update(table: str, rows: list[tuple]) -> None:
    """Write many records' (key, data, version, seq, updated_at, updated_by) in one statement:
    UPDATE … FROM (VALUES …), which PostgreSQL and SQLite 3.33+ both have; only the casts differ."""
    if not rows:
        return
    if is_postgresql():
        one = "(%s, %s::jsonb, %s::integer, %s::bigint, %s::timestamptz, %s)"
    else:
        one = "(%s, json(%s), %s, %s, %s, %s)"
    values = ", ".join([one] * len(rows))
    params: list = []
    for key, data, version, seq, updated_at, updated_by in rows:
        updated = updated_at.isoformat() if is_postgresql() else connection.ops.adapt_datetimefield_value(updated_at)
        params += [key, json.dumps(data, ensure_ascii=False), version, seq, updated, updated_by]
    sql = (
        f"UPDATE {table} SET data = v.data, version = v.version, seq = v.seq, "  # noqa: S608
        "updated_at = v.updated_at, updated_by = v.updated_by "
        "FROM (SELECT column1 AS key, column2 AS data, column3 AS version, column4 AS seq, "
        f"column5 AS updated_at, column6 AS updated_by FROM (VALUES {values}) AS rows) AS v WHERE {table}.key = v.key"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def planner_row_estimate(sql: str, params) -> int | None:
    """PostgreSQL's estimate of the rows a query returns (None elsewhere: count them)."""
    if not is_postgresql():
        return None
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class JsonKeyText(Func):
    """A key of record data as its JSON text (`"12.50"` stays a quoted text, 12.5 a number), read back
    with json.loads: one typed value in both databases. Django's key transform on SQLite hands back a
    text that merely looks like a number (`"12.50"`) as the number 12.5, which would let a wrong-typed
    value pass for a right one in analytics."""

    output_field = TextField()

    def __init__(self, key: str, column: str = "data"):
        super().__init__(F(column), Value(key))

    def as_sql(self, compiler, connection, **extra):
        column, column_params = compiler.compile(self.source_expressions[0])
        key = self.source_expressions[1].value
        if connection.vendor == "postgresql":
            return f"(({column}) -> %s)::text", (*column_params, key)
        # json_extract hands JSON true/false back as 1/0: json_type tells them apart first.
        path = f'$."{key}"'
        sql = (
            f"CASE json_type({column}, %s) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
            f"ELSE json_quote(json_extract({column}, %s)) END"
        )
        return sql, (*column_params, path, *column_params, path)


class ColumnText(Func):
    """SQL text built by the database from one column (the subclasses say how, per database)."""

    output_field = TextField()

    def __init__(self, column: str):
        super().__init__(F(column))


class InstantText(ColumnText):
    """A timestamp column as `2026-01-31T09:30:00.000000Z` (UTC, always six decimals; NULL stays NULL),
    written by the database: a page of thousands of rows is not parsed into datetimes and formatted
    again in Python. PostgreSQL formats the timestamptz; SQLite holds Django's UTC text
    (`2026-01-31 09:30:00[.ffffff]`, the fraction left out when it is zero)."""

    def as_sql(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        if connection.vendor == "postgresql":
            return f"""to_char(({column}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')""", params
        return f"replace({column}, ' ', 'T') || CASE WHEN length({column}) = 19 THEN '.000000Z' ELSE 'Z' END", (
            *params,
            *params,
        )


class JsonStringText(ColumnText):
    """A text column as a JSON string literal (`"abc"`, quotes and escapes included)."""

    def as_sql(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        if connection.vendor == "postgresql":
            return f"to_json(({column})::text)::text", params
        return f"json_quote({column})", params


class JsonMembersText(ColumnText):
    """The members of a JSON object column as JSON text without its braces, after a comma
    (`,"a": 1, "b": 2`), or '' for an empty object: ready to splice into another object's text after
    its first member. The stored text as is, never decoded and encoded again."""

    def as_sql(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        if connection.vendor == "postgresql":
            sql = f"CASE WHEN {column} = '{{}}'::jsonb THEN '' ELSE ',' || left(substr(({column})::text, 2), -1) END"
            return sql, (*params, *params)
        sql = f"CASE WHEN {column} = '{{}}' THEN '' ELSE ',' || substr({column}, 2, length({column}) - 2) END"
        return sql, (*params, *params, *params)
