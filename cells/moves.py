"""Moving a workspace from another cell into this one (the operator's `workspace_move`).

Run in the target cell, with the source cell's database URL. The move:

1. checks both cells run the same migrations, and marks the move in the directory;
2. copies every table of the workspace's schema (records, change feed, audit chain and vault,
   outbox, members, sessions, keys, devices …) with COPY, from one snapshot of the source while it
   keeps serving, into an empty copy of this cell's template;
3. freezes writes in the source: the workspace's status becomes `moving` (its web door refuses
   writes with 503 workspace_moving and keeps serving reads), then the move takes the workspace's
   change-counter lock once, which waits for the record writes already under way (every record
   write reads the status again after taking that lock: records.services._seq_lock);
4. catches up: per table, rows deleted since are deleted here, rows whose transaction id (xmin) is
   not older than the first snapshot's are upserted (a superset of what was written since:
   catching up is idempotent); then the sequences and the workspace's rows of the public schema
   (tenant, billing account and ledger); and verifies: row counts table by table, and the audit
   chain walked end to end in this cell;
5. flips the directory, then takes the workspace out of the source's public schema (its host now
   answers with a redirect here) and renames its old schema `moved_<schema>_<time>`, kept until an
   operator drops it;
6. carries the workspace's counters kept in the source cell's Redis (given its URL): API calls
   counted but not yet flushed into the usage table (partners.usage), which bill as metered usage.
   Every hash of integers tagged `{w<workspace id>}` is a workspace's counters: added into this cell's
   Redis under the workspace's id here (another id than in the source) and removed from the source.
   Other tagged keys (rate-limit buckets, locks) are transient and left to expire.

A failure before the flip leaves the workspace where it was, serving again, and removes the copy.
The freeze lasts the catch-up only (bench/cells measures it). Transaction ids are compared as
32-bit numbers: a move must not span a wraparound of the source's transaction counter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql
from psycopg.rows import dict_row

from audit.selectors import audit_chain_verify
from core.errors import ServiceError
from core.redis_client import redis_client
from directory import services as directory_services
from directory.models import WorkspaceLocation
from tenants.migration import migrations_expected
from tenants.models import Domain, Tenant
from tenants.runtime import public_context, workspace_context
from tenants.services import tenant_schema_drop, tenant_schema_prepare

TENANT_TABLE = "tenants_tenant"
SKIPPED_TABLES = {"django_migrations"}  # compared, not copied: the template's rows are the same


class MoveError(ServiceError):
    status, code = 409, "move_failed"


@dataclass
class MoveReport:
    slug: str
    source_cell: str
    target_cell: str
    schema: str
    tables: int = 0
    tables_caught_up: int = 0  # tables written to during the online copy
    rows: int = 0
    rows_per_table: dict[str, int] = field(default_factory=dict)
    audit_events_verified: int = 0
    copy_seconds: float = 0.0
    freeze_seconds: float = 0.0
    moved_schema: str = ""
    counters_carried: int | None = None  # counter fields carried from the source's Redis (None: not asked)


def workspace_move_in(
    *,
    slug: str,
    source_database_url: str,
    source_cell: str = "",
    source_redis_url: str = "",
    say: Callable[[str], None] = lambda _: None,
) -> MoveReport:
    """Move workspace `slug` from the cell whose database is at `source_database_url` into this cell
    (and its counters from the source's Redis at `source_redis_url`, if given)."""
    with psycopg.connect(source_database_url, autocommit=True, row_factory=dict_row) as source:
        row = source.execute(f"SELECT * FROM public.{TENANT_TABLE} WHERE slug = %s", [slug]).fetchone()  # noqa: S608
        if row is None or row["is_template"]:
            raise MoveError(f"The source cell holds no workspace {slug!r}.", param="slug")
        with public_context():
            if (
                Tenant.objects.filter(slug=slug).exists()
                or Tenant.objects.filter(schema_name=row["schema_name"]).exists()
            ):
                raise MoveError(f"This cell holds a workspace {slug!r} already.", param="slug")
        _migrations_compare(source, row["schema_name"])
        if source_cell and not WorkspaceLocation.objects.filter(slug=slug).exists():
            # a workspace older than the directory: recorded where it is before it moves
            directory_services.workspace_location_register(slug=slug, cell=source_cell, region="")
        move = directory_services.workspace_move_begin(slug=slug, target_cell=settings.TESSERA_CELL)
        report = MoveReport(slug, move.source_cell, settings.TESSERA_CELL, row["schema_name"])
        schema_made = False
        try:
            tenant_schema_prepare(schema_name=row["schema_name"])
            schema_made = True
            say(f"copying {row['schema_name']} while {move.source_cell} keeps serving it")
            copy_started = time.perf_counter()
            since = _copy_online(source, row["schema_name"])
            report.copy_seconds = time.perf_counter() - copy_started
            frozen = time.perf_counter()
            _writes_freeze(source, row)
            directory_services.workspace_move_frozen(move=move)
            say(f"writes frozen in {move.source_cell}; catching up")
            tenant = _catch_up_and_verify(source, row, report, since)
        except BaseException as exc:
            source.execute(f"UPDATE public.{TENANT_TABLE} SET status = %s WHERE id = %s", [row["status"], row["id"]])  # noqa: S608
            if schema_made:
                tenant_schema_drop(schema_name=row["schema_name"])
            directory_services.workspace_move_fail(move=move, error=repr(exc))
            raise
        region = settings.TESSERA_REGION
        directory_services.workspace_move_finish(
            move=move, region=region, rows_copied=report.rows, freeze_seconds=time.perf_counter() - frozen
        )
        report.moved_schema = _source_release(source, row)
        if source_redis_url:
            report.counters_carried = _counters_carry(source_redis_url, old_id=row["id"], new_id=tenant.pk)
        report.freeze_seconds = time.perf_counter() - frozen
        move.freeze_seconds = report.freeze_seconds
        move.save(update_fields=["freeze_seconds"])
        say(f"{slug} is served by {settings.TESSERA_CELL} now (tenant {tenant.pk})")
    return report


def _migrations_compare(source: psycopg.Connection, schema: str) -> None:
    query = sql.SQL("SELECT app, name FROM {}.django_migrations").format(sql.Identifier(schema))
    applied = {(r["app"], r["name"]) for r in source.execute(query)}
    expected = migrations_expected(public=False)
    if not expected <= applied or not {m for m in applied if m[0] in {a for a, _ in expected}} <= expected:
        missing = sorted(expected - applied)[:5]
        raise MoveError(
            f"The two cells run different migrations (missing in the source: {missing}). Migrate both first.",
            param="slug",
        )


def _writes_freeze(source: psycopg.Connection, row: dict) -> None:
    """Status `moving`, then wait for the record writes under way (they hold the change-counter lock)."""
    source.execute(f"UPDATE public.{TENANT_TABLE} SET status = 'moving' WHERE id = %s", [row["id"]])  # noqa: S608
    with source.transaction():
        source.execute(
            sql.SQL("SELECT 1 FROM {}.records_changecounter FOR UPDATE").format(sql.Identifier(row["schema_name"]))
        )


def _tables(conn, schema: str) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY 1",
        [schema],
    )
    return [r["name"] if isinstance(r, dict) else r[0] for r in rows]


def _columns(conn, schema: str, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT a.attname AS name FROM pg_attribute a WHERE a.attrelid = (quote_ident(%s) || '.' || quote_ident(%s))"
        "::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum",
        [schema, table],
    )
    return [r["name"] if isinstance(r, dict) else r[0] for r in rows]


def _primary_key(conn, schema: str, table: str) -> str | None:
    rows = conn.execute(
        "SELECT a.attname AS name FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indisprimary AND i.indrelid = "
        "(quote_ident(%s) || '.' || quote_ident(%s))::regclass",
        [schema, table],
    ).fetchall()
    return rows[0]["name"] if len(rows) == 1 else None


def _stream(source: psycopg.Connection, out_sql: sql.Composable, target, in_sql: sql.Composable) -> None:
    """COPY from the source straight into the target, chunk by chunk (binary: no parsing)."""
    with source.cursor().copy(out_sql) as out, target.copy(in_sql.as_string(target.connection)) as into:
        for chunk in out:
            into.write(chunk)


def _copied_tables(source: psycopg.Connection, target, schema: str):
    """(table, columns, quoted name, quoted column list) of every table to copy; both cells' tables
    must have the same columns (the migrations were compared, this is the belt to those braces)."""
    target_tables = set(_tables(target, schema))
    for table in _tables(source, schema):
        if table in SKIPPED_TABLES:
            continue
        if table not in target_tables:
            raise MoveError(f"Table {table} is missing in this cell's template.")
        columns = _columns(source, schema, table)
        if set(columns) != set(_columns(target, schema, table)):
            raise MoveError(f"Table {table} has other columns in this cell.")
        yield table, columns, sql.Identifier(schema, table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)


def _copy_online(source: psycopg.Connection, schema: str) -> int:
    """Copy every table as of one snapshot of the source, which keeps serving; commit it here.
    Returns the snapshot's oldest transaction id: rows written by that transaction or later are
    caught up during the freeze (a superset of what changed since: catching up is idempotent)."""
    source.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        with source.transaction(), transaction.atomic(), connection.cursor() as target:
            source.execute("SET TRANSACTION READ ONLY")
            since = source.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS x").fetchone()["x"]
            for _table, _cols_list, name, cols in _copied_tables(source, target, schema):
                _stream(
                    source,
                    sql.SQL("COPY {} ({}) TO STDOUT (FORMAT BINARY)").format(name, cols),
                    target,
                    sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(name, cols),
                )
    finally:
        source.isolation_level = None
    return since % 2**32  # rows carry 32-bit transaction ids (xmin)


def _catch_up_and_verify(source: psycopg.Connection, row: dict, report: MoveReport, since: int) -> Tenant:
    """Writes are frozen: bring each table up to the source (rows deleted there deleted here, rows
    written since the online copy upserted), the sequences, the public rows; verify; commit."""
    schema = row["schema_name"]
    source.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        with source.transaction(), transaction.atomic(), connection.cursor() as target:
            source.execute("SET TRANSACTION READ ONLY")
            for table, columns, name, cols in _copied_tables(source, target, schema):
                count = sql.SQL("SELECT count(*) AS n FROM {}").format(name)
                expected = source.execute(count).fetchone()["n"]
                written = sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE xmin::text::bigint >= {}) AS w").format(
                    name, sql.Literal(since)
                )
                target.execute(count.as_string(target.connection))
                copied = target.fetchone()[0]
                # nothing written since the online copy and nothing deleted (the counts agree): as it is
                if copied != expected or source.execute(written).fetchone()["w"]:
                    key = _primary_key(source, schema, table)
                    if key is None:  # no single-column key to match rows by: copied again whole
                        target.execute(sql.SQL("TRUNCATE {}").format(name).as_string(target.connection))
                        _stream(
                            source,
                            sql.SQL("COPY {} ({}) TO STDOUT (FORMAT BINARY)").format(name, cols),
                            target,
                            sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(name, cols),
                        )
                    else:
                        _table_catch_up(source, target, name, cols, columns, key, since)
                    target.execute(count.as_string(target.connection))
                    copied = target.fetchone()[0]
                    report.tables_caught_up += 1
                if copied != expected:
                    raise MoveError(f"Table {table}: {copied} rows here, {expected} in the source.")
                report.rows_per_table[table] = copied
                report.rows += copied
                report.tables += 1
            for seq in source.execute(
                "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = %s AND last_value IS NOT NULL",
                [schema],
            ):
                sequence = f'"{schema}"."{seq["sequencename"]}"'
                target.execute("SELECT setval(%s::regclass, %s, true)", [sequence, seq["last_value"]])
            tenant = _public_rows_copy(source, row)
            with workspace_context(tenant):
                verification = audit_chain_verify()
            if not verification.ok:
                raise MoveError(f"The audit chain does not verify in the copy: {verification.reason}.")
            report.audit_events_verified = verification.checked
    finally:
        source.isolation_level = None
    return tenant


def _table_catch_up(source, target, name, cols, columns: list[str], key: str, since: int) -> None:
    as_string = target.connection
    pk = sql.Identifier(key)
    # 1. rows deleted in the source since the online copy
    target.execute(
        sql.SQL("CREATE TEMP TABLE move_keys AS SELECT {} AS k FROM {} WITH NO DATA")
        .format(pk, name)
        .as_string(as_string)
    )
    _stream(
        source,
        sql.SQL("COPY {} ({}) TO STDOUT (FORMAT BINARY)").format(name, pk),
        target,
        sql.SQL("COPY move_keys (k) FROM STDIN (FORMAT BINARY)"),
    )
    target.execute(
        sql.SQL("DELETE FROM {} AS cur WHERE NOT EXISTS (SELECT 1 FROM move_keys WHERE move_keys.k = cur.{})")
        .format(name, pk)
        .as_string(as_string)
    )
    # 2. rows written since (inserted or updated): upserted; rows that are the same already are not
    # touched (the audit log's triggers refuse any UPDATE of an event)
    target.execute(
        sql.SQL("CREATE TEMP TABLE move_rows AS SELECT {} FROM {} WITH NO DATA").format(cols, name).as_string(as_string)
    )
    _stream(
        source,
        sql.SQL("COPY (SELECT {} FROM {} WHERE xmin::text::bigint >= {}) TO STDOUT (FORMAT BINARY)").format(
            cols, name, sql.Literal(since)
        ),
        target,
        sql.SQL("COPY move_rows ({}) FROM STDIN (FORMAT BINARY)").format(cols),
    )
    others = [c for c in columns if c != key]
    if others:
        excluded = sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in others)
        current = sql.SQL(", ").join(sql.SQL("cur.{}").format(sql.Identifier(c)) for c in others)
        assign = sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in others)
        on_conflict = sql.SQL("DO UPDATE SET {} WHERE ({}) IS DISTINCT FROM ({})").format(assign, current, excluded)
    else:
        on_conflict = sql.SQL("DO NOTHING")
    target.execute(
        sql.SQL("INSERT INTO {} AS cur ({}) SELECT {} FROM move_rows ON CONFLICT ({}) {}")
        .format(name, cols, cols, pk, on_conflict)
        .as_string(as_string)
    )
    target.execute("DROP TABLE move_keys, move_rows")


def _references(source: psycopg.Connection) -> list[tuple[str, str]]:
    """(table, column) of every public table whose rows belong to a tenant (foreign keys to it)."""
    rows = source.execute(
        "SELECT cl.relname AS tbl, a.attname AS col FROM pg_constraint c "
        "JOIN pg_class cl ON cl.oid = c.conrelid JOIN pg_namespace n ON n.oid = cl.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
        "WHERE c.contype = 'f' AND n.nspname = 'public' AND c.confrelid = 'public.tenants_tenant'::regclass "
        "ORDER BY 1"
    )
    return [(r["tbl"], r["col"]) for r in rows]


def _public_rows_copy(source: psycopg.Connection, row: dict) -> Tenant:
    """The tenant row (its own id here), a domain of this cell, and the rows of public tables that
    belong to it (billing account, usage ledger)."""
    tenant = Tenant(
        schema_name=row["schema_name"],
        name=row["name"],
        slug=row["slug"],
        plan=row["plan"],
        timezone=row["timezone"],
        status=Tenant.Status.ACTIVE,
    )
    with public_context():
        tenant.save()
        Tenant.objects.filter(pk=tenant.pk).update(created_at=row["created_at"])
        Domain.objects.create(domain=f"{row['slug']}.{settings.TESSERA_BASE_DOMAIN}", tenant=tenant, is_primary=True)
        with connection.cursor() as target:
            for table, column in _references(source):
                if table == "tenants_domain":
                    continue
                query = sql.SQL("SELECT * FROM public.{} WHERE {} = %s").format(
                    sql.Identifier(table), sql.Identifier(column)
                )
                for item in source.execute(query, [row["id"]]).fetchall():
                    item.pop("id", None)
                    item[column] = tenant.pk
                    names = list(item)
                    insert = sql.SQL("INSERT INTO public.{} ({}) VALUES ({})").format(
                        sql.Identifier(table),
                        sql.SQL(", ").join(sql.Identifier(n) for n in names),
                        sql.SQL(", ").join(sql.Placeholder() for _ in names),
                    )
                    target.execute(insert.as_string(target.connection), [_adapt(item[n]) for n in names])
    return tenant


def _adapt(value):
    if isinstance(value, dict | list):
        return psycopg.types.json.Jsonb(value)
    return value


def _source_release(source: psycopg.Connection, row: dict) -> str:
    """Take the workspace out of the source's public schema; keep its schema under another name."""
    moved = f"moved_{row['schema_name']}_{timezone.now():%Y%m%d%H%M%S}"[:63]
    with source.transaction():
        for table, column in _references(source):
            source.execute(
                sql.SQL("DELETE FROM public.{} WHERE {} = %s").format(sql.Identifier(table), sql.Identifier(column)),
                [row["id"]],
            )
        source.execute(f"DELETE FROM public.{TENANT_TABLE} WHERE id = %s", [row["id"]])  # noqa: S608
        source.execute(
            sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(row["schema_name"]), sql.Identifier(moved))
        )
    return moved


def _counters_carry(source_redis_url: str, *, old_id: int, new_id: int) -> int:
    """Add the workspace's counter hashes of the source's Redis into this cell's; the fields carried."""
    source, target = redis.Redis.from_url(source_redis_url), redis_client()
    old_tag, new_tag = f"{{w{old_id}}}", f"{{w{new_id}}}"
    carried = 0
    for name in source.scan_iter(match=f"*{old_tag}", count=1000):
        if source.type(name) != b"hash":
            continue
        counts = source.hgetall(name)
        if not all(value.lstrip(b"-").isdigit() for value in counts.values()):
            continue
        pipe = target.pipeline(transaction=True)
        new_name = name.decode()[: -len(old_tag)] + new_tag
        for key, value in counts.items():
            pipe.hincrby(new_name, key, int(value))
        pipe.execute()
        source.delete(name)
        carried += len(counts)
    return carried
