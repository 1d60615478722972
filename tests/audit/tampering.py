"""Raw SQL against the audit table, past its append-only trigger: what an attacker with database access does.

Everything happens inside the test's transaction, so it is rolled back with the test.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator

from django.db import connection

_append_only = importlib.import_module("audit.migrations.0002_append_only")
_head_forward = importlib.import_module("audit.migrations.0003_chain_head_forward_only")
_erasure_only = importlib.import_module("audit.migrations.0006_personal_columns")


@contextlib.contextmanager
def append_only_trigger_off() -> Iterator[None]:
    """PostgreSQL: triggers do not fire for a replica session. SQLite: drop the triggers, then restore them."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
            try:
                yield
            finally:
                cursor.execute("SET session_replication_role = DEFAULT")
        else:
            for sql in _append_only.SQLITE_DOWN + _head_forward.SQLITE_DOWN + _erasure_only.SQLITE_DOWN:
                cursor.execute(sql)
            try:
                yield
            finally:
                for sql in _append_only.SQLITE_UP + _head_forward.SQLITE_UP + _erasure_only.SQLITE_UP:
                    cursor.execute(sql)


def audit_sql(sql: str, params: list | None = None) -> int:
    """Run one statement on the current tenant's audit table with the trigger out of the way; rows hit."""
    with append_only_trigger_off(), connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.rowcount
