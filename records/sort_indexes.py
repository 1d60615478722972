"""Sort indexes for big collections (PostgreSQL): a partial expression index on (field value, id) over
one collection's live records, so its sorted pages seek instead of sorting the whole collection.

No request that reads builds one: the first time someone sorts a collection of SORT_INDEX_MIN_ROWS or
more by a field, the page asks for it (`sort_index_request`) and a worker builds it (records.tasks,
CREATE INDEX CONCURRENTLY), so later pages use it. An index is named after the collection, the field's
id and its key: after a rename or removal the old name no longer matches, and the field change itself
(records.services.collection_update, from the console or the API) drops it with `sort_indexes_prune`
and asks for the renamed field's index again. Only types whose values are small enough for
a B-tree entry get one (a 2,000-character text could exceed PostgreSQL's entry limit and make writes
fail); SQLite — one business on a desktop — sorts without them.
"""

from __future__ import annotations

import hashlib
import logging

from django.core.cache import cache
from django.db import DatabaseError, connection, transaction

from records.dialect import sort_indexes_supported
from records.fields import KEY_RE
from records.models import Collection
from records.query import record_count_fast
from records.selectors import record_list
from tenants.runtime import workspace_current

SORT_INDEX_MIN_ROWS = 10_000
INDEXED_TYPES = frozenset({"number", "integer", "date", "datetime", "choice", "email", "reference"})
REQUEST_AGAIN_AFTER = 600  # seconds: a page asks a worker for a missing index at most this often
LOCK_TIMEOUT = "2s"  # never keep a page waiting behind a long transaction; try again next time

log = logging.getLogger(__name__)


def sort_index_name(collection: Collection, spec: dict) -> str:
    key_hash = hashlib.sha1(spec["key"].encode(), usedforsecurity=False).hexdigest()[:8]
    return f"records_sort_{collection.pk}_{spec['id'].removeprefix('fld_')[:16]}_{key_hash}"


def _existing(collection: Collection) -> dict[str, bool]:
    """{index name: valid} of this collection's sort indexes in the current tenant's schema."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname LIKE %s",
            [f"records_sort_{collection.pk}\\_%"],
        )
        return dict(cursor.fetchall())


def _ddl(sql: str) -> None:
    """Run DDL without blocking writers (CONCURRENTLY) when not inside a transaction, with a lock timeout."""
    concurrently = not connection.in_atomic_block
    with connection.cursor() as cursor:
        if concurrently:
            cursor.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
            try:
                cursor.execute(sql.replace("INDEX ", "INDEX CONCURRENTLY ", 1))
            finally:
                cursor.execute("RESET lock_timeout")
        else:  # inside a transaction (tests, callers' atomic blocks): plain DDL, after deferred FK checks
            with transaction.atomic():
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute(sql)


def sort_index_ensure(collection: Collection, key: str) -> bool:
    """Make sure sorting `collection` by `key` can use an index; True when one is in place."""
    if not sort_indexes_supported():
        return False
    spec = collection.field(key)
    if spec is None or spec["type"] not in INDEXED_TYPES or not KEY_RE.match(key):
        return False
    name = sort_index_name(collection, spec)
    existing = _existing(collection)
    if existing.get(name):
        return True
    if name not in existing and record_count_fast(record_list(collection=collection))[0] < SORT_INDEX_MIN_ROWS:
        return False
    try:
        if name in existing:  # a concurrent build that failed leaves an invalid index behind
            _ddl(f"DROP INDEX IF EXISTS {name}")
        # KEY_RE allows only [a-z0-9_]: safe to write into the statement (DDL takes no parameters).
        _ddl(
            f"CREATE INDEX IF NOT EXISTS {name} ON records_record ((data -> '{key}'), id) "
            f"WHERE collection_id = {int(collection.pk)} AND livemode AND deleted_at IS NULL"
        )
    except DatabaseError as exc:  # a lock timeout, or a build racing another: the page sorts without it
        log.warning("sort index %s not built: %s", name, exc)
        return False
    return True


def _requested_key(name: str) -> str:
    return f"records:sort-index-requested:{workspace_current().pk}:{name}"


def sort_index_request(collection: Collection, key: str) -> bool:
    """A page sorts `collection` by `key`: True if an index serves it; if one should but does not yet,
    a worker is asked to build it (once in REQUEST_AGAIN_AFTER). Reads the catalog only: no DDL."""
    if not sort_indexes_supported():
        return False
    spec = collection.field(key)
    if spec is None or spec["type"] not in INDEXED_TYPES or not KEY_RE.match(key):
        return False
    name = sort_index_name(collection, spec)
    if _existing(collection).get(name):
        return True
    if record_count_fast(record_list(collection=collection))[0] >= SORT_INDEX_MIN_ROWS and cache.add(
        _requested_key(name),
        True,
        REQUEST_AGAIN_AFTER,
    ):
        from records.tasks import sort_index_build_task  # the tasks module imports these services

        try:
            sort_index_build_task.delay(collection.pk, key)
        except Exception:
            log.exception("sort index %s not requested", name)
    return False


def sort_indexes_prune(collection: Collection) -> list[str]:
    """Drop this collection's sort indexes whose field was renamed or removed, and ask for a renamed
    field's index under its new name; returns the names dropped."""
    if not sort_indexes_supported():
        return []
    wanted = {sort_index_name(collection, f): f for f in collection.fields}
    stale = [name for name in _existing(collection) if name not in wanted]
    for name in stale:
        try:
            _ddl(f"DROP INDEX IF EXISTS {name}")
        except DatabaseError as exc:
            log.warning("stale sort index %s not dropped: %s", name, exc)
    renamed = {name.rsplit("_", 1)[0] for name in stale}
    for index_name, spec in wanted.items():
        if index_name.rsplit("_", 1)[0] in renamed:
            sort_index_request(collection, spec["key"])
    return stale
