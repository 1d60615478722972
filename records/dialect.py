"""Where PostgreSQL and SQLite differ for records: the one module that asks which database it runs on.

Record data is JSON (`jsonb` in PostgreSQL, JSON text in SQLite); renaming or dropping a key in place,
estimating a count from the planner, and partial expression indexes are said differently (or not at all).
"""

from __future__ import annotations

import json

from django.db import connection


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def sort_indexes_supported() -> bool:
    """Partial expression indexes built without blocking writers (CREATE INDEX CONCURRENTLY): PostgreSQL.
    SQLite — one business on a desktop — sorts without them."""
    return is_postgresql()


def data_key_rename_sql(table: str) -> tuple[str, callable]:
    """An UPDATE moving `old` to `new` in the `data` of the given rows, and how to build its parameters
    from (old, new, ids)."""
    if is_postgresql():
        sql = (
            f"UPDATE {table} SET data = (data - %s) || jsonb_build_object(%s::text, data -> %s) "  # noqa: S608
            "WHERE id = ANY(%s) AND data ? %s"
        )
        return sql, lambda old, new, ids: [old, new, old, list(ids), old]
    placeholders = "SELECT value FROM json_each(%s)"
    sql = (
        f"UPDATE {table} SET data = json_set(json_remove(data, %s), %s, json(data -> %s)) "  # noqa: S608
        f"WHERE id IN ({placeholders}) AND json_type(data, %s) IS NOT NULL"
    )
    return sql, lambda old, new, ids: [f'$."{old}"', f'$."{new}"', f'$."{old}"', json.dumps(list(ids)), f'$."{old}"']


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
