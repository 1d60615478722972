"""Querysets compiled to SQL once per process, then run with new parameters.

On the REST API's hot paths building and compiling a queryset cost more CPU than PostgreSQL spent
answering it (bench/api: a record read's one query was two thirds Django's ORM). A PreparedQuery keeps
the ORM as the one place a query is written: `build` returns the queryset, with placeholders where the
per-request values go; it is compiled on first use (per database alias and set of constants) and each
later call only executes the SQL and converts the rows with the same converters the ORM would apply.

    record_row = PreparedQuery(
        lambda livemode, *, record_id: Record.objects.filter(livemode=livemode, id=record_id).values_list(...)[:1]
    )
    record_row.rows(True, record_id="01J...")   # -> list of tuples

Placeholders travel through the field's own preparation as text, so they suit text-like lookups
(exact matches on char, slug and text columns); anything else (booleans, numbers) is a constant,
passed positionally, and each value compiles once (keep them to a few values, like `livemode`).
Table names are left unqualified, so django-tenants' search_path still picks the workspace's schema.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections
from django.db.models import QuerySet

_MARK = "\x00tessera-param:"


class PreparedQuery:
    def __init__(self, build: Callable[..., QuerySet]):
        self._build = build
        self._compiled: dict[tuple, tuple[str, list[tuple[bool, Any]], Any, str]] = {}
        self._lock = threading.Lock()

    def _compile(self, constants: tuple, names: tuple[str, ...]):
        qs = self._build(*constants, **{name: f"{_MARK}{name}\x00" for name in names})
        compiler = qs.query.get_compiler(using=qs.db)
        sql, params = compiler.as_sql()
        slots: list[tuple[bool, Any]] = []
        for value in params:
            if isinstance(value, str) and value.startswith(_MARK):
                slots.append((True, value[len(_MARK) : -1]))
            else:
                slots.append((False, value))
        placed = {name for is_param, name in slots if is_param}
        if placed != set(names):
            raise ValueError(f"placeholders {sorted(set(names) - placed)} did not reach the SQL as parameters")
        return sql, slots, compiler, qs.db

    def rows(self, *constants, **params) -> list[tuple]:
        key = (constants, tuple(sorted(params)))
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compile(constants, key[1])
            with self._lock:
                self._compiled[key] = compiled
        sql, slots, compiler, alias = compiled
        values = [params[value] if is_param else value for is_param, value in slots]
        with connections[alias].cursor() as cursor:
            cursor.execute(sql, values)
            fetched = cursor.fetchall()
        if not fetched:
            return []
        return list(compiler.results_iter(results=[fetched], tuple_expected=True))

    def clear(self) -> None:
        """Forget the compiled SQL (tests that change the database's settings)."""
        with self._lock:
            self._compiled.clear()
