"""The write spine: every change to collections and records, from any writer, comes through here.

One transaction per write: permission (role or key scope) → plan limits (billing.entitlements) → validation →
three-way merge when the writer is stale → save with a new version and the next change sequence →
the record's domain event (its subscribers: the audit chain and the webhook outbox in the transaction,
phone sync on commit; see core.events). Nothing else writes records.

Change sequence numbers are commit-ordered: a writer locks the tenant's ChangeCounter row before it
takes a number and keeps the lock until it commits, so numbers become visible in order.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from audit.services import audit_event_record
from billing import entitlements
from core.actors import Actor, Principal
from core.errors import LimitExceeded
from core.events import DomainEvent, event_emit
from rbac.permissions import has_permission
from records.data_migrations import data_migrated, migration_with, step_for
from records.dialect import records_rows_update
from records.errors import (
    Conflict,
    MergeConflict,
    NotFound,
    RecordError,
    SubjectRestricted,
    UniqueViolation,
    ValidationFailed,
    VersionMismatch,
    WriteForbidden,
)
from records.events import RecordChanged, RecordErased, RecordRestricted, collection_object, record_subject
from records.fields import RECORD_ID_RE, FieldDefinitionError, data_errors, field_definitions_clean, storable
from records.merge import FieldConflict, merge_patch, three_way_merge
from records.models import BulkJob, Change, ChangeCounter, Collection, Record, RecordUniqueValue, record_id_new
from records.selectors import collection_get
from records.sort_indexes import sort_indexes_prune
from tenants.runtime import workspace_writes_open_check

logger = logging.getLogger(__name__)

SLUG_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_RECORD_ID = re.compile(RECORD_ID_RE)


# --- actors -----------------------------------------------------------------------------------------


def _require(actor: Actor | Principal, permission: str) -> None:
    if not has_permission(actor, permission):
        raise WriteForbidden(f"Not allowed: this needs the {permission} permission.")


# --- sequence ---------------------------------------------------------------------------------------


# Set while a transaction that writes many records (record_bulk_upsert) holds the change-counter lock,
# so each record it writes neither asks for the lock again nor opens a savepoint of its own: the bulk's
# per-item savepoint is the one that undoes a failed item.
_seq_lock_held: ContextVar[bool] = ContextVar("tessera_seq_lock_held", default=False)
# The sequence number (and live-record delta) a one-record write took with the lock (_seq_lock(reserve=True)).
_seq_reserved: ContextVar[tuple[int, int] | None] = ContextVar("tessera_seq_reserved", default=None)
# The bulk write's scratch shared by its events (DomainEvent.batch).
_notice_batch: ContextVar[dict | None] = ContextVar("tessera_notice_batch", default=None)
# The workspace's change stream name, as the last sequence number taken read it (events' ids).
_stream: ContextVar[str] = ContextVar("tessera_change_stream", default="")
# False while a bulk operation that the audit log keeps as one event (with the count and the ids) writes
# its records: each record's change still reaches the feed, webhooks and phones, but not the audit chain.
_audited_one_by_one: ContextVar[bool] = ContextVar("tessera_audited_one_by_one", default=True)


def _seq_lock(*, reserve: bool = False, live_delta: int = 0) -> int | None:
    """Take the tenant's change-counter lock (held until commit), making the row on the workspace's first
    write, then refuse the write if the workspace is being moved to another cell (a move sets that, then
    takes this lock once to wait for the writes already under way, so no record write can land after its
    final copy). Returns the live-record count the row holds, read with the lock (counted now if it never
    was); None when the lock was already held by this transaction's bulk write.

    `reserve`: a write of one record takes its sequence number with the lock, in the one UPDATE that
    locks the row (moving the live-record count by `live_delta` too), instead of a SELECT ... FOR UPDATE
    now and an UPDATE later; _seq_next hands that number out. The count returned is the one before
    `live_delta`."""
    _seq_reserved.set(None)
    if _seq_lock_held.get():
        return None
    if reserve:
        row = _seq_advance(1, live_delta)
        if row is None:
            _seq_counter_create()
            row = _seq_advance(1, live_delta)
        value, stream, live = row
        _stream.set(stream)
        _seq_reserved.set((value, live_delta))
        workspace_writes_open_check()
        return live - live_delta if live is not None else _live_records_counted(live_delta)
    locked = ChangeCounter.objects.select_for_update().filter(pk=1).values_list("id", "live_records")
    row = locked.first()
    if row is None:
        _seq_counter_create()
        row = locked.first()
    workspace_writes_open_check()
    return row[1] if row[1] is not None else _live_records_counted()


def _seq_counter_create() -> None:
    try:
        with transaction.atomic():
            ChangeCounter.objects.create(pk=1, value=0, live_records=Record.objects.filter(deleted_at=None).count())
    except IntegrityError:
        pass


def _seq_advance(n: int, live_delta: int) -> tuple[int, str, int | None] | None:
    """Move the counter on by n and the live-record count by `live_delta` in one statement (RETURNING:
    PostgreSQL, and SQLite since 3.35), which takes the row's lock; None while there is no row yet."""
    table = connection.ops.quote_name(ChangeCounter._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET value = value + %s, live_records = live_records + %s "  # noqa: S608
            "WHERE id = 1 RETURNING value, stream, live_records",
            [n, live_delta],
        )
        return cursor.fetchone()


def _seq_unreserve() -> None:
    """A write that took a number with the lock and turned out to change nothing gives it back (the lock
    is still held: no one took a later one), so the feed's numbers stay without gaps."""
    reserved = _seq_reserved.get()
    if reserved is None:
        return
    _seq_reserved.set(None)
    ChangeCounter.objects.filter(pk=1).update(value=F("value") - 1, live_records=F("live_records") - reserved[1])


def _live_records_counted(live_delta: int = 0) -> int:
    """The live records, counted once (a workspace written before the count was kept) and kept in the
    change counter from then on: the lock is held, so no other writer changes the figure meanwhile, and
    each later write adds its own delta in _seq_next (`live_delta`: the one already taken with the lock,
    not yet in the records counted)."""
    count = Record.objects.filter(deleted_at=None).count()
    ChangeCounter.objects.filter(pk=1).update(live_records=count + live_delta)
    return count


def _live_records_locked() -> int:
    """The live-record count, with the change-counter lock already held."""
    kept = ChangeCounter.objects.filter(pk=1).values_list("live_records", flat=True).first()
    return kept if kept is not None else _live_records_counted()


@contextmanager
def _seq_locked_for_many() -> Iterator[None]:
    """Inside a transaction: take the lock once for the many records written in it."""
    _seq_lock()
    token, batch = _seq_lock_held.set(True), _notice_batch.set({})
    try:
        yield
    finally:
        _notice_batch.reset(batch)
        _seq_lock_held.reset(token)


@contextmanager
def _record_atomic() -> Iterator[None]:
    """A record write's transaction: its own savepoint, except inside a bulk write (see _seq_lock_held).
    A sequence number reserved with the lock and not used (the write failed) is forgotten with it."""
    try:
        with transaction.atomic(savepoint=not _seq_lock_held.get()):
            yield
    finally:
        _seq_reserved.set(None)


# Inside a bulk write: the workspace's standing was checked once, and the live records counted once
# (then kept up to date by each create), instead of per item.
_bulk_records: ContextVar[list[int] | None] = ContextVar("tessera_bulk_records", default=None)


def _writes_check() -> None:
    """Refuse any write while the workspace is read-only (billing.entitlements)."""
    if _bulk_records.get() is None:
        entitlements.writes_check()


def _records_limit_check(live: int | None) -> None:
    """One more record within the plan's limit? `live` is the count _seq_lock read with the lock. Inside a
    bulk write, against its running count."""
    running = _bulk_records.get()
    if running is None:
        entitlements.records_check(creating=1, current=live if live is not None else _live_records_locked)
        return
    if running[0] >= 0:
        entitlements.limit_check("records", current=running[0])
        running[0] += 1


@contextmanager
def _bulk_entitled() -> Iterator[None]:
    entitlements.writes_check()
    unlimited = entitlements.limits().records is None
    token = _bulk_records.set([-1 if unlimited else _live_records_locked()])
    try:
        yield
    finally:
        _bulk_records.reset(token)


def _seq_next(n: int = 1, *, live_delta: int = 0) -> int:
    """Reserve n sequence numbers (lock already held); returns the first. One statement (RETURNING:
    PostgreSQL, and SQLite since 3.35), which also reads the workspace's change stream name and moves
    the live-record count by `live_delta` (records created or undeleted minus records deleted; a count
    still null stays null until counted). A number _seq_lock took with the lock is handed out instead
    (a delta other than the one it moved the count by is made up here)."""
    reserved = _seq_reserved.get()
    if reserved is not None and n == 1:
        _seq_reserved.set(None)
        value, taken_delta = reserved
        if live_delta != taken_delta:
            ChangeCounter.objects.filter(pk=1).update(live_records=F("live_records") + (live_delta - taken_delta))
        return value
    value, stream, _ = _seq_advance(n, live_delta)
    _stream.set(stream)
    return value - n + 1


# --- collections --------------------------------------------------------------------------------------


def _slug_clean(slug: str) -> str:
    slug = (slug or "").strip().lower()
    if not SLUG_RE.match(slug):
        raise RecordError(
            "`slug` must start with a letter and use lowercase letters, digits, - and _ (max 63).", param="slug"
        )
    return slug


def collection_create(
    *, actor: Actor | Principal, name: str, slug: str, fields: list[dict], description: str = "", livemode: bool = True
) -> Collection:
    _require(actor, "collections.manage")
    entitlements.writes_check()
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise RecordError("`name` is required (max 120 characters).", param="name")
    _storable_check(name=name, description=description)
    slug = _slug_clean(slug)
    try:
        cleaned = field_definitions_clean(fields)
    except FieldDefinitionError as exc:
        raise RecordError(exc.message, param=exc.param, code="invalid_field") from exc
    with transaction.atomic():
        if Collection.objects.filter(livemode=livemode, slug=slug, deleted_at=None).exists():
            raise Conflict("A collection with this slug already exists.", param="slug", code="duplicate_slug")
        _references_check(cleaned, livemode=livemode)
        collection = Collection.objects.create(
            livemode=livemode, slug=slug, name=name, description=description or "", fields=cleaned
        )
        _collection_event_emit(
            "collection.created",
            actor,
            collection,
            changes={"after": {"slug": slug, "fields": [f["key"] for f in cleaned], "livemode": livemode}},
        )
    return collection


def _collection_event_emit(type: str, actor: Actor | Principal, collection: Collection, *, changes: dict) -> None:
    event_emit(
        DomainEvent(
            type=type,
            actor=Actor.of(actor),
            livemode=collection.livemode,
            data={"object": collection_object(collection)},
            target=("collection", str(collection.pk), collection.name),
            changes=changes,
        )
    )


def _storable_check(**texts: str | None) -> None:
    for param, text in texts.items():
        if text is not None and not storable(text):
            raise RecordError(f"`{param}` cannot contain the NUL character.", param=param)


def _references_check(fields: list[dict], *, livemode: bool) -> None:
    for f in fields:
        if (
            f["type"] == "reference"
            and not Collection.objects.filter(livemode=livemode, slug=f["collection"], deleted_at=None).exists()
        ):
            raise RecordError(f"No collection `{f['collection']}` to reference.", param="fields", code="invalid_field")


def collection_update(
    *,
    actor: Actor | Principal,
    collection: Collection,
    name: str | None = None,
    description: str | None = None,
    fields: list[dict] | None = None,
) -> Collection:
    """Change name, description or fields. Fields keep their `id`: a new `key` for an existing id is a
    rename (record data follows); an id left out removes that field from every record."""
    _require(actor, "collections.manage")
    entitlements.writes_check()
    with transaction.atomic():
        _seq_lock()
        collection = Collection.objects.select_for_update().get(pk=collection.pk)
        before = {"name": collection.name, "description": collection.description, "fields": collection.fields}
        if name is not None:
            name = name.strip()
            if not name or len(name) > 120:
                raise RecordError("`name` is required (max 120 characters).", param="name")
            collection.name = name
        _storable_check(name=name, description=description)
        if description is not None:
            collection.description = description
        if fields is not None:
            try:
                cleaned = field_definitions_clean(fields, existing=collection.fields)
            except FieldDefinitionError as exc:
                raise RecordError(exc.message, param=exc.param, code="invalid_field") from exc
            _references_check(cleaned, livemode=collection.livemode)
            _fields_migrate(collection, collection.fields, cleaned, actor=Actor.of(actor))
            collection.fields = cleaned
            collection.schema_version += 1
        collection.save()
        after = {"name": collection.name, "description": collection.description, "fields": collection.fields}
        _collection_event_emit(
            "collection.updated",
            actor,
            collection,
            changes={
                "before": {k: v for k, v in before.items() if v != after[k]},
                "after": {k: v for k, v in after.items() if v != before[k]},
            },
        )
    if fields is not None:
        sort_indexes_prune(collection)  # a renamed or removed field's sort index is of no use any more
    pending = bool(collection.data_migration.get("steps"))
    if pending and not collection_records_migrate(collection=collection, limit=INLINE_RECORDS):
        transaction.on_commit(lambda: collection_records_migrate_queue(collection_id=collection.pk))
    return collection


def collection_records_migrate_queue(*, collection_id: int) -> None:
    """Hand the rest of a collection's field migration to a worker (records.tasks); a lost message is
    found again by the periodic resume (records.tasks.collection_migrations_resume)."""
    from records.tasks import collection_records_migrate_task  # the tasks module imports these services

    try:
        collection_records_migrate_task.delay(collection_id)
    except Exception:
        logger.exception(
            "could not queue the field migration of collection %s; the periodic resume will", collection_id
        )


def _fields_migrate(collection: Collection, old: list[dict], new: list[dict], *, actor: Actor) -> None:
    """Plan how record data follows a field change (a step of the collection's data migration, carried
    out record by record afterwards: collection_records_migrate), and check what must hold first: new
    required fields have a value or a default, new unique fields have no duplicates."""
    old_by_id = {f["id"]: f for f in old}
    new_by_id = {f["id"]: f for f in new}
    step = step_for(old, new)
    migration = migration_with(collection.data_migration, step, actor_stamp=actor.stamp()) if step else None
    live = Record.objects.filter(collection=collection, deleted_at=None)

    def live_data():
        for r in live.only("id", "data").iterator(chunk_size=2000):
            yield r, data_migrated(migration or collection.data_migration, r.data)

    for fid in old_by_id:
        if fid not in new_by_id:
            RecordUniqueValue.objects.filter(collection=collection, field_id=fid).delete()
    for fid, f in new_by_id.items():
        is_new = fid not in old_by_id
        if f["required"] and (is_new or not old_by_id[fid]["required"]) and "default" not in f:
            missing = sum(1 for _, data in live_data() if data.get(f["key"]) is None)
            if missing:
                raise RecordError(
                    f"{missing} existing record(s) have no `{f['key']}`: give the field a default.",
                    param="fields",
                    code="required_without_default",
                )
        if f["unique"] and (is_new or not old_by_id[fid]["unique"]):
            RecordUniqueValue.objects.filter(collection=collection, field_id=fid).delete()
            rows, seen = [], set()
            for r, data in live_data():
                value = data.get(f["key"])
                if value is None:
                    continue
                h = _value_hash(value)
                if h in seen:
                    raise UniqueViolation(
                        f"Existing records share values of `{f['key']}`: it cannot become unique.", param="fields"
                    )
                seen.add(h)
                rows.append(RecordUniqueValue(collection=collection, field_id=fid, value_hash=h, record=r))
            RecordUniqueValue.objects.bulk_create(rows, batch_size=2000)
        if not f["unique"] and not is_new and old_by_id[fid]["unique"]:
            RecordUniqueValue.objects.filter(collection=collection, field_id=fid).delete()
    if migration is not None:
        collection.data_migration = migration


# Records carried through a field change per transaction: the change lock is held for one batch only, so
# other writers get their turn between batches. The request that changed the fields carries the first
# INLINE_RECORDS itself (a small collection is done when it answers); a worker does the rest.
MIGRATION_BATCH = 500
INLINE_RECORDS = 1000


def _change_and_event(
    record: Record,
    collection: Collection,
    *,
    op: str,
    changed_fields: list[str],
    before: dict,
    actor: Actor,
    stamp: str,
    now: datetime,
    audited: bool,
) -> tuple[Change, RecordChanged]:
    """A batch's row in the change feed and its domain event, for a record already given its new
    version and sequence number: what `_record_commit` writes for one record."""
    change = Change(
        seq=record.seq,
        livemode=record.livemode,
        collection=collection,
        record_id=record.id,
        op=op,
        version=record.version,
        data=record.data,
        changed_fields=changed_fields,
        actor=stamp,
        occurred_at=now,
    )
    event = RecordChanged(
        actor=actor,
        livemode=record.livemode,
        occurred_at=now,
        batch=_notice_batch.get(),
        seq=record.seq,
        stream=_stream.get(),
        op=op,
        collection_id=collection.pk,
        collection_slug=collection.slug,
        record_id=record.id,
        version=record.version,
        data=record.data,
        changed_fields=changed_fields,
        before={k: before.get(k) for k in changed_fields},
        created_at=record.created_at,
        audited=audited,
    )
    return change, event


def _records_commit_migrated(
    *, actor: Actor, collection: Collection, changed: list[tuple[Record, dict, dict]], now: datetime
) -> None:
    """Steps 4–7 of the spine for a batch of records whose data a field change moved: new versions and
    sequence numbers, their changes in the feed, their events (not audited one by one). The same rows and
    events `_record_commit` writes, in a statement per step for the whole batch (the change lock is held)."""
    if not changed:
        return
    first = _seq_next(len(changed))
    stamp = actor.stamp()
    records, changes, events = [], [], []
    for offset, (record, before, data) in enumerate(changed):
        record.data, record.version, record.seq = data, record.version + 1, first + offset
        record.updated_at, record.updated_by = now, stamp
        fields_changed = sorted(k for k in set(before) | set(data) if before.get(k) != data.get(k))
        records.append(record)
        change, event = _change_and_event(
            record,
            collection,
            op=Change.Op.UPDATED,
            changed_fields=fields_changed,
            before=before,
            actor=actor,
            stamp=stamp,
            now=now,
            audited=False,
        )
        changes.append(change)
        events.append(event)
    records_rows_update(
        connection.ops.quote_name(Record._meta.db_table),
        [(r.key, r.data, r.version, r.seq, r.updated_at, r.updated_by) for r in records],
    )
    Change.objects.bulk_create(changes)
    for event in events:
        event_emit(event)


def collection_records_migrate(*, collection: Collection, limit: int | None = None) -> bool:
    """Carry the collection's records through its pending field changes, through the spine: each record
    whose data changes gets a new version, a change in the feed, its webhook event and its sync frame
    (audited once, as the field change that caused them). Batches of MIGRATION_BATCH records, each its
    own transaction. Stops after about `limit` records (None: all); True when nothing is left to do."""
    done = 0
    while limit is None or done < limit:
        with transaction.atomic(), _seq_locked_for_many():
            current = Collection.objects.select_for_update().filter(pk=collection.pk).first()
            migration = current.data_migration if current is not None else {}
            if not migration.get("steps"):
                return True
            batch = list(
                Record.objects.filter(collection=current, id__gt=migration.get("after_id", "")).order_by("id")[
                    :MIGRATION_BATCH
                ]
            )
            actor = Actor.from_stamp(migration.get("actor", ""))
            if not batch:
                current.data_migration = {}
                current.save(update_fields=["data_migration", "updated_at"])
                audit_event_record(
                    action="collection.records_migrated",
                    actor=actor,
                    target=("collection", str(current.pk), current.name),
                    changes={"records": migration.get("migrated", 0), "steps": migration["steps"]},
                )
                return True
            now = timezone.now()
            changed = []
            for record in batch:
                data = data_migrated(migration, record.data)
                if data == record.data:
                    continue
                if record.deleted_at is not None:  # a tombstone: its data follows, no event (nothing changed)
                    Record.objects.filter(pk=record.pk).update(data=data)
                    continue
                changed.append((record, record.data, data))
            _records_commit_migrated(actor=actor, collection=current, changed=changed, now=now)
            migrated = len(changed)
            current.data_migration = {
                **migration,
                "after_id": batch[-1].id,
                "migrated": migration.get("migrated", 0) + migrated,
            }
            current.save(update_fields=["data_migration", "updated_at"])
        done += len(batch)
    return False


# Records deleted per transaction when a collection goes with its records; the request that deletes it
# does the first batch itself (a small collection is gone when it answers), a worker does the rest.
DELETION_BATCH = 500


def collection_delete(*, actor: Actor | Principal, collection: Collection, with_records: bool = False) -> Collection:
    """Delete a collection. Without `with_records`, only an empty one (Conflict otherwise).

    With `with_records`, its records go too: the collection is gone at once (from the console, the
    API and phones; its slug is free again) and its records are deleted behind it, DELETION_BATCH at a
    time (collection_records_delete: the first batch now, the rest by a worker), each a tombstone with
    its own change, so the feed, webhooks and phones hear of every one. The audit log keeps one event,
    the collection's deletion with the number of records it held. `deletion` on the collection says
    how far it is."""
    _require(actor, "collections.manage")
    entitlements.writes_check()
    with transaction.atomic():
        _seq_lock()  # no record of it can be written between the count below and the deletion
        collection = Collection.objects.select_for_update().get(pk=collection.pk)
        if collection.deleted_at is not None:
            raise NotFound("No such collection.", param="collection")
        total = Record.objects.filter(collection=collection, deleted_at=None).count()
        if total and not with_records:
            raise Conflict(
                "Delete or move this collection's records first.", param="collection", code="collection_not_empty"
            )
        now = timezone.now()
        collection.deleted_at = now
        if total:
            collection.deletion = {
                "actor": Actor.of(actor).stamp(),
                "total": total,
                "deleted": 0,
                "started_at": now.isoformat(),
            }
        collection.save(update_fields=["deleted_at", "deletion", "updated_at"])
        _collection_event_emit("collection.deleted", actor, collection, changes={"records": total})
    if total:
        try:
            finished = collection_records_delete(collection=collection, limit=DELETION_BATCH)
        except Exception:  # the deletion is accepted and committed: a worker carries on from where this stopped
            logger.exception("deleting the first records of collection %s failed; a worker will go on", collection.pk)
            finished = False
        if not finished:
            transaction.on_commit(lambda: collection_records_delete_queue(collection_id=collection.pk))
        collection.refresh_from_db(fields=["deletion"])
    return collection


def collection_records_delete(*, collection: Collection, limit: int | None = None) -> bool:
    """Delete the records of a deleted collection, DELETION_BATCH per transaction (the change lock is
    held for one batch only, so other writers get their turn between batches), through the spine's
    batch step: tombstones, changes, events (not audited one by one: the collection's deletion was).
    Stops after about `limit` records (None: all); True when none is left."""
    done = 0
    while limit is None or done < limit:
        with _bulk_write():
            current = Collection.objects.select_for_update().filter(pk=collection.pk).first()
            deletion = current.deletion if current is not None and current.deleted_at is not None else {}
            if "total" not in deletion or "finished_at" in deletion:
                return True
            batch = list(Record.objects.filter(collection=current, deleted_at=None).order_by("id")[:DELETION_BATCH])
            now = timezone.now()
            if not batch:
                current.deletion = {**deletion, "finished_at": now.isoformat()}
                current.save(update_fields=["deletion", "updated_at"])
                return True
            actor = Actor.from_stamp(deletion.get("actor", ""))
            _records_commit_deleted(actor=actor, collection=current, records=batch, now=now)
            current.deletion = {**deletion, "deleted": deletion.get("deleted", 0) + len(batch)}
            current.save(update_fields=["deletion", "updated_at"])
        done += len(batch)
    return False


def collection_records_delete_queue(*, collection_id: int) -> None:
    """Hand the rest of a collection's deletion to a worker (records.tasks); a lost message is found
    again by the periodic resume (records.tasks.collection_migrations_resume_all_workspaces)."""
    from records.tasks import collection_records_delete_task  # the tasks module imports these services

    try:
        collection_records_delete_task.delay(collection_id)
    except Exception:
        logger.exception(
            "could not queue the deletion of collection %s's records; the periodic resume will", collection_id
        )


# --- records --------------------------------------------------------------------------------------------


@dataclass
class RecordWrite:
    record: Record
    created: bool = False
    changed: bool = True
    merged: bool = False  # a stale write was merged into newer changes
    conflicts: list[FieldConflict] = field(default_factory=list)  # resolved by the caller's rule


def _value_hash(value: Any) -> str:
    if isinstance(value, str):
        value = value.strip().lower()
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _unstorable(value: Any, path: str) -> dict | None:
    """Values JSON allows in Python but no database stores faithfully: NUL characters, NaN, ±Infinity."""
    if isinstance(value, str):
        if "\x00" in value:
            return {"param": path, "code": "invalid_character", "message": "Text cannot contain NUL characters."}
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return {"param": path, "code": "invalid_number", "message": "Numbers must be finite."}
    elif isinstance(value, dict):
        for key, item in value.items():
            found = _unstorable(key, path) or _unstorable(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _unstorable(item, f"{path}[{i}]")
            if found:
                return found
    return None


def _validate(collection: Collection, data: dict) -> None:
    bad = _unstorable(data, "data")
    if bad:
        raise ValidationFailed([bad])
    errors = data_errors(collection.fields, data, cache_key=collection.cache_key)
    if errors:
        raise ValidationFailed(errors)


def _references_validate(collection: Collection, data: dict) -> None:
    for f in collection.fields:
        value = data.get(f["key"])
        if f["type"] != "reference" or value is None:
            continue
        exists = Record.objects.filter(
            id=value,
            livemode=collection.livemode,
            collection__slug=f["collection"],
            collection__livemode=collection.livemode,
            deleted_at=None,
        ).exists()
        if not exists:
            raise ValidationFailed(
                [
                    {
                        "param": f"data.{f['key']}",
                        "code": "invalid_reference",
                        "message": f"No {f['collection']} record {value}.",
                    }
                ]
            )


def _unique_sync(collection: Collection, record: Record, *, created: bool = False, before: dict | None = None) -> None:
    """Keep the record's unique values; `before`: its data before an update that leaves it live (when no
    unique value changed, there is nothing to do)."""
    unique_fields = [f for f in collection.fields if f["unique"]]
    if not unique_fields:
        return
    unchanged = before is not None and all(before.get(f["key"]) == record.data.get(f["key"]) for f in unique_fields)
    if unchanged and not created and record.deleted_at is None:
        return
    if not created:  # a record just inserted has no values yet
        RecordUniqueValue.objects.filter(record=record).delete()
    if record.deleted_at is not None:
        return
    for f in unique_fields:
        value = record.data.get(f["key"])
        if value is None:
            continue
        # No savepoint of its own: the violation is raised at once, and the record write's transaction
        # (its savepoint, or the bulk item's) undoes the whole write.
        try:
            RecordUniqueValue.objects.create(
                collection=collection, field_id=f["id"], value_hash=_value_hash(value), record=record
            )
        except IntegrityError as exc:
            raise UniqueViolation(
                f"Another record already has this `{f['key']}`.", param=f"data.{f['key']}", code="unique_violation"
            ) from exc


def _defaults(collection: Collection, data: dict) -> dict:
    out = dict(data)
    for f in collection.fields:
        if out.get(f["key"]) is None and "default" in f:
            out[f["key"]] = f["default"]
    return {k: v for k, v in out.items() if v is not None}


def _record_commit(
    *,
    actor: Actor | Principal,
    collection: Collection,
    record: Record,
    op: str,
    before: dict | None,
    now: datetime,
    live_delta: int | None = None,
) -> None:
    """Steps 4–7 of the spine for one record whose new state is already on `record`. `live_delta`: how
    the live-record count moves (by default: created or undeleted +1, deleted -1, updated 0)."""
    if live_delta is None:
        live_delta = {Change.Op.CREATED: 1, Change.Op.DELETED: -1}.get(op, 0)
    record.seq = _seq_next(live_delta=live_delta)
    record.updated_at = now
    actor = Actor.of(actor)
    record.updated_by = actor.stamp()
    inserted = op == Change.Op.CREATED and record.version == 1
    if inserted:
        record.save(force_insert=True)
    else:
        record.save()
    _unique_sync(collection, record, created=inserted, before=before if op == Change.Op.UPDATED else None)
    changed = sorted(k for k in set(before or {}) | set(record.data) if (before or {}).get(k) != record.data.get(k))
    change, event = _change_and_event(
        record,
        collection,
        op=op,
        changed_fields=changed,
        before=before or {},
        actor=actor,
        stamp=record.updated_by,
        now=now,
        audited=_audited_one_by_one.get(),
    )
    change.save(force_insert=True)
    event_emit(event)


def _unrestricted_check(record: Record) -> None:
    """Refuse to change a record whose processing is restricted (only lifting the restriction may)."""
    if record.restricted_at is not None:
        raise SubjectRestricted(
            f"Record {record.id} is restricted: its data subject asked that it no longer be processed "
            "(GDPR art. 18). It is kept as it is until a compliance manager lifts the restriction.",
            param="id",
            record=record.id,
        )


def records_restriction_set(
    *, actor: Actor | Principal, records: Iterable[Record], restricted: bool, reason: str
) -> list[Record]:
    """Restrict the processing of records (GDPR art. 18), or lift the restriction. A restricted record is
    kept as it is: writes to it are refused (SubjectRestricted) except its erasure, and exports,
    analytics, webhook deliveries and phones leave it out. Each record changed takes a new sequence
    number (no new version: its data is unchanged), so phones pull it again, as a tombstone while
    restricted and whole once lifted; its `RecordRestricted` event is audited, holds or releases the
    webhook deliveries about it and reaches connected phones. Needs compliance.manage. Returns the
    records whose state changed (already so: left out)."""
    if not has_permission(actor, "compliance.manage"):
        raise WriteForbidden("Not allowed: this needs the compliance.manage permission.")
    keys = [r.pk for r in records]
    changed: list[Record] = []
    if not keys:
        return changed
    with transaction.atomic(), _seq_locked_for_many():
        rows = (
            Record.objects.select_related("collection")
            .filter(pk__in=keys, restricted_at__isnull=restricted)
            .order_by("seq")
        )
        now = timezone.now()
        for current in rows:
            current.restricted_at = now if restricted else None
            current.seq = _seq_next()
            Record.objects.filter(pk=current.pk).update(restricted_at=current.restricted_at, seq=current.seq)
            event_emit(
                RecordRestricted(
                    actor=Actor.of(actor),
                    livemode=current.livemode,
                    occurred_at=now,
                    target=("record", current.id, f"{current.collection.slug}/{current.id}"),
                    changes={"collection": current.collection.slug, "restricted": restricted, "reason": reason[:200]},
                    restricted=restricted,
                    seq=current.seq,
                    stream=_stream.get(),
                    collection_id=current.collection_id,
                    collection_slug=current.collection.slug,
                    record_id=current.id,
                    version=current.version,
                    updated_at=current.updated_at,
                )
            )
            changed.append(current)
    return changed


def record_create(
    *, actor: Actor | Principal, collection: Collection, data: dict, record_id: str | None = None
) -> Record:
    _require(actor, "records.edit")
    if collection.deleted_at is not None:
        raise NotFound("No such collection.", param="collection")
    if record_id is not None and not (isinstance(record_id, str) and _RECORD_ID.fullmatch(record_id)):
        raise RecordError("`id` must be 1–64 letters, digits, - or _.", param="id")
    if not isinstance(data, dict):
        raise ValidationFailed([{"param": "data", "code": "invalid_type", "message": "`data` must be an object."}])
    # Validation needs no lock, so it runs before it: the lock is held until commit and every writer of
    # the workspace queues for it (bench/api --vs-kinto, 16 concurrent writers). Its verdict still comes
    # after the plan's, as before.
    data = _defaults(collection, data)
    try:
        _validate(collection, data)
        invalid = None
    except ValidationFailed as exc:
        invalid = exc
    stamp = Actor.of(actor).stamp()
    with _record_atomic():
        live = _seq_lock(reserve=True, live_delta=1)
        _records_limit_check(live)
        if invalid is not None:
            raise invalid
        _references_validate(collection, data)
        if record_id is not None and Record.objects.filter(livemode=collection.livemode, id=record_id).exists():
            raise Conflict("A record with this id already exists.", param="id", code="duplicate_id")
        now = timezone.now()
        record = Record(
            id=record_id or record_id_new(),
            livemode=collection.livemode,
            collection=collection,
            data=data,
            version=1,
            created_at=now,
            created_by=stamp,
        )
        _record_commit(actor=actor, collection=collection, record=record, op=Change.Op.CREATED, before=None, now=now)
    return record


def _base_data(record: Record, base_version: int) -> dict | None:
    snapshot = (
        Change.objects.filter(livemode=record.livemode, record_id=record.id, version=base_version).only("data").first()
    )
    return snapshot.data if snapshot is not None else None


def record_update(
    *,
    actor: Actor | Principal,
    record: Record,
    data: dict,
    partial: bool = True,
    expected_version: int | None = None,
    base_version: int | None = None,
    base_data: dict | None = None,
    on_conflict: str = "raise",
    undelete: bool = False,
    keep_current: Iterable[str] = (),
    in_collection: str | None = None,
    precondition: Callable[[Record], int | None] | None = None,
) -> RecordWrite:
    """Update a record.

    - `partial`: `data` is a JSON merge patch (RFC 7396); otherwise the full new data.
    - `expected_version` (If-Match): refuse with VersionMismatch unless the record is at that version.
    - `base_version` / `base_data`: what the writer's change was made against. When the record moved on
      since, the writer's result is three-way merged field by field. Same field changed differently on
      both sides: MergeConflict (`on_conflict="raise"`), or `"incoming"` / `"current"` wins.
    - `keep_current`: fields whose stored value wins over the writer's (a person resolving a conflict
      chose "keep the saved value"), read inside this write's transaction.
    - `in_collection` (a slug): the record is read here, once, and must be a live record of that
      collection (NotFound names whichever is missing); `record` then needs only its key. The API's
      PATCH and PUT write this way instead of reading the record before the write reads it again.
    - `precondition`: given the record as read in the transaction, the version the write is pinned to
      (`expected_version` worked out from it, e.g. from If-Match); it may raise to refuse the write.
    """
    _require(actor, "records.edit")
    if not isinstance(data, dict):
        raise ValidationFailed([{"param": "data", "code": "invalid_type", "message": "`data` must be an object."}])
    with _record_atomic():
        _seq_lock(reserve=True)
        _writes_check()
        found = Record.objects.select_related("collection").filter(pk=record.pk)
        if in_collection is not None:
            found = found.filter(collection__slug=in_collection, collection__deleted_at=None)
        current = found.first()
        if current is None or (current.deleted_at is not None and not undelete):
            if in_collection is not None:
                collection = collection_get(livemode=record.livemode, slug=in_collection)
                raise NotFound(f"No record `{record.id}` in `{collection.slug}`.", param="id")
            raise NotFound("No such record.", param="id")
        _unrestricted_check(current)
        if precondition is not None:
            expected_version = precondition(current)
        collection = current.collection
        current.data = data_migrated(collection.data_migration, current.data)  # a field change not yet carried
        if expected_version is not None and current.version != expected_version:
            raise VersionMismatch(
                f"The record is at version {current.version}, not {expected_version}.",
                current_version=current.version,
            )
        if base_data is None and base_version is not None and base_version != current.version:
            base_data = _base_data(current, base_version)
            if base_data is None:
                raise VersionMismatch(f"Version {base_version} of this record is unknown.")
        if base_data is not None:
            base_data = data_migrated(collection.data_migration, base_data)
        if base_data is not None:
            incoming = merge_patch(base_data, data) if partial else data
        else:
            incoming = merge_patch(current.data, data) if partial else data
        kept = [key for key in keep_current if collection.field(key) is not None]
        if kept:
            incoming = dict(incoming)
            for key in kept:
                if key in current.data:
                    incoming[key] = current.data[key]
                else:
                    incoming.pop(key, None)
            if base_data is not None:  # what was kept is no longer a change of the writer's
                base_data = {**base_data, **{k: current.data[k] for k in kept if k in current.data}}
                for key in kept:
                    if key not in current.data:
                        base_data.pop(key, None)
        merged = False
        conflicts: list[FieldConflict] = []
        new_data = incoming
        if base_data is not None and base_data != current.data:
            new_data, conflicts = three_way_merge(base_data, current.data, incoming)
            merged = True
            if conflicts:
                if on_conflict == "raise":
                    raise MergeConflict(conflicts, current.version)
                if on_conflict == "incoming":
                    for c in conflicts:
                        if c.incoming is None:
                            new_data.pop(c.field, None)
                        else:
                            new_data[c.field] = c.incoming
        new_data = {k: v for k, v in new_data.items() if v is not None}
        if new_data == current.data and current.deleted_at is None:
            _seq_unreserve()
            return RecordWrite(current, changed=False, merged=merged, conflicts=conflicts)
        _validate(collection, new_data)
        _references_validate(collection, new_data)
        before = current.data
        was_deleted = current.deleted_at is not None
        current.data = new_data
        current.version += 1
        current.deleted_at = None
        _record_commit(
            actor=actor,
            collection=collection,
            record=current,
            op=Change.Op.CREATED if was_deleted else Change.Op.UPDATED,
            before=None if was_deleted else before,
            now=timezone.now(),
        )
    return RecordWrite(current, merged=merged, conflicts=conflicts)


def record_delete(*, actor: Actor | Principal, record: Record, expected_version: int | None = None) -> Record:
    """Soft delete: the record becomes a tombstone (kept for sync and the change feed)."""
    _require(actor, "records.edit")
    with _record_atomic():
        _seq_lock(reserve=True, live_delta=-1)
        _writes_check()
        current = Record.objects.select_related("collection").filter(pk=record.pk).first()
        if current is None or current.deleted_at is not None:
            raise NotFound("No such record.", param="id")
        _unrestricted_check(current)
        if expected_version is not None and current.version != expected_version:
            raise VersionMismatch(
                f"The record is at version {current.version}, not {expected_version}.",
                current_version=current.version,
            )
        now = timezone.now()
        before = data_migrated(current.collection.data_migration, current.data)
        current.data = before
        current.version += 1
        current.deleted_at = now
        _record_commit(
            actor=actor, collection=current.collection, record=current, op=Change.Op.DELETED, before=before, now=now
        )
    return current


def record_erase(
    *, actor: Actor | Principal, record: Record, fields: Iterable[str] | None = None, reason: str = ""
) -> Record:
    """Erase a record's values everywhere (GDPR art. 17, a retention policy), through the spine.

    Without `fields` the record becomes a tombstone without values (a `record.deleted` change with
    empty data goes to webhooks and phones like any deletion, so partners and devices drop it too).
    With `fields` it is anonymised: those fields are removed (a `record.updated` change) and the record
    lives on. Either way its change history loses those values, then `RecordErased` tells every store
    that keeps copies (the audit vault, the webhook outbox and delivery log, cached API responses) to
    forget them, in this transaction. An already deleted record can be erased (its tombstone and
    history still hold values). Whoever may edit records or handle data-subject requests may erase.
    """
    if not has_permission(actor, "compliance.manage"):
        _require(actor, "records.edit")
    only = tuple(sorted(set(fields))) if fields is not None else ()
    if fields is not None and not only:
        raise RecordError("Name at least one field to anonymise.", param="fields")
    with _record_atomic():
        _seq_lock()
        current = Record.objects.select_related("collection").filter(pk=record.pk).first()
        if current is None:
            raise NotFound("No such record.", param="id")
        now = timezone.now()
        before = data_migrated(current.collection.data_migration, current.data)
        if only:
            current.data = {k: v for k, v in before.items() if k not in only}
            if current.data != before:
                current.version += 1
                _record_commit(
                    actor=actor,
                    collection=current.collection,
                    record=current,
                    op=Change.Op.UPDATED,
                    before=before,
                    now=now,
                )
            history = Change.objects.filter(livemode=current.livemode, record_id=current.id).exclude(seq=current.seq)
            for change in history.only("seq", "data"):
                if any(k in change.data for k in only):
                    Change.objects.filter(seq=change.seq).update(
                        data={k: v for k, v in change.data.items() if k not in only}
                    )
        else:
            was_live = current.deleted_at is None
            current.data = {}
            current.version += 1
            current.deleted_at = current.deleted_at or now
            _record_commit(
                actor=actor,
                collection=current.collection,
                record=current,
                op=Change.Op.DELETED,
                before=None,
                now=now,
                live_delta=-1 if was_live else 0,
            )
            Change.objects.filter(livemode=current.livemode, record_id=current.id).exclude(seq=current.seq).update(
                data={}
            )
        event_emit(
            RecordErased(
                actor=Actor.of(actor),
                livemode=current.livemode,
                occurred_at=now,
                target=("record", current.id, f"{current.collection.slug}/{current.id}"),
                changes={"collection": current.collection.slug, "fields": list(only), "reason": reason[:200]},
                collection_slug=current.collection.slug,
                record_id=current.id,
                subject=record_subject(livemode=current.livemode, record_id=current.id),
                fields=only,
            )
        )
    return current


@dataclass(frozen=True)
class MergePreview:
    """What saving `data` (made against `base_version`) over the record as it is now would give: the
    merged data with the writer's value in each conflicting field, and those conflicts."""

    current: Record
    merged: dict
    conflicts: list[FieldConflict]


def record_merge_preview(*, record: Record, base_version: int, data: dict) -> MergePreview:
    """The three-way merge a write would do, without writing: for a conflict screen that shows each
    conflicting field's saved, original and new value and lets the person choose. The same merge and
    resolution rule as `record_update` (the writer's value wins where it is kept)."""
    current = Record.objects.select_related("collection").get(pk=record.pk)
    current.data = data_migrated(current.collection.data_migration, current.data)
    base = data_migrated(current.collection.data_migration, _base_data(current, base_version) or {})
    merged, conflicts = three_way_merge(base, current.data, data)
    for c in conflicts:
        if c.incoming is None:
            merged.pop(c.field, None)
        else:
            merged[c.field] = c.incoming
    return MergePreview(current=current, merged=merged, conflicts=conflicts)


@dataclass
class BulkItemResult:
    index: int
    status: str  # created | updated | unchanged | error
    record: Record | None = None
    error: RecordError | None = None


def record_bulk_upsert(*, actor: Actor | Principal, collection: Collection, items: list[dict]) -> list[BulkItemResult]:
    """Create or update up to 1,000 records, each independently: one bad item does not stop the rest.

    Each item is {"id"?: str, "data": {...}, "version"?: int}. With an id that exists, the item's data
    is a merge patch (and `version`, when given, must match, as If-Match does).
    """
    _require(actor, "records.edit")
    if not isinstance(items, list) or not 1 <= len(items) <= 1000:
        raise RecordError("Send between 1 and 1,000 items.", param="items")
    results: list[BulkItemResult] = []
    with transaction.atomic(), _seq_locked_for_many(), _bulk_entitled():
        for index, item in enumerate(items):
            try:
                with transaction.atomic():
                    if not isinstance(item, dict) or not isinstance(item.get("data"), dict):
                        raise ValidationFailed(
                            [
                                {
                                    "param": f"items[{index}].data",
                                    "code": "invalid_type",
                                    "message": "Each item needs a `data` object.",
                                }
                            ]
                        )
                    record_id = item.get("id")
                    existing = (
                        Record.objects.filter(id=record_id, collection=collection, deleted_at=None).first()
                        if record_id
                        else None
                    )
                    if existing is None:
                        record = record_create(
                            actor=actor, collection=collection, data=item["data"], record_id=record_id
                        )
                        results.append(BulkItemResult(index, "created", record))
                    else:
                        version = item.get("version")
                        write = record_update(
                            actor=actor,
                            record=existing,
                            data=item["data"],
                            expected_version=version if isinstance(version, int) else None,
                        )
                        results.append(BulkItemResult(index, "updated" if write.changed else "unchanged", write.record))
            except (RecordError, LimitExceeded) as exc:  # over the plan's records: this item only
                results.append(BulkItemResult(index, "error", error=exc))
    return results


# --- bulk edit and delete from the console ---------------------------------------------------------------

BULK_MAX = 5000


def _bulk_ids(record_ids: Iterable[str]) -> list[str]:
    ids = list(dict.fromkeys(i for i in record_ids if isinstance(i, str) and _RECORD_ID.fullmatch(i)))
    if not 1 <= len(ids) <= BULK_MAX:
        raise RecordError(f"Select between 1 and {BULK_MAX:,} records.", param="ids", code="bulk_size")
    return ids


@contextmanager
def _bulk_write() -> Iterator[None]:
    """One transaction for the whole selection: the change lock taken once, records audited as a whole."""
    token = _audited_one_by_one.set(False)
    try:
        with transaction.atomic(), _seq_locked_for_many():
            yield
    finally:
        _audited_one_by_one.reset(token)


def records_bulk_delete(*, actor: Actor | Principal, collection: Collection, record_ids: Iterable[str]) -> list[str]:
    """Delete the selected records of a collection, all or none. Each becomes a tombstone with its own
    change (the feed, webhooks and phones hear of each); the audit log keeps one event with the count and
    the ids. Ids already deleted or of another collection are left out. Returns the ids deleted."""
    _require(actor, "records.edit")
    ids = _bulk_ids(record_ids)
    deleted: list[str] = []
    with _bulk_write():
        rows = Record.objects.filter(collection=collection, id__in=ids, deleted_at=None).order_by("id")
        restricted = rows.filter(restricted_at__isnull=False).values_list("id", flat=True).first()
        if restricted is not None:
            _unrestricted_check(Record(id=restricted, restricted_at=timezone.now()))
        now = timezone.now()
        batch: list[Record] = []
        for current in rows.iterator(chunk_size=500):
            batch.append(current)
            if len(batch) == 500:
                _records_commit_deleted(actor=Actor.of(actor), collection=collection, records=batch, now=now)
                deleted += [r.id for r in batch]
                batch = []
        _records_commit_deleted(actor=Actor.of(actor), collection=collection, records=batch, now=now)
        deleted += [r.id for r in batch]
        if deleted:
            audit_event_record(
                action="records.bulk_deleted",
                actor=actor,
                target=("collection", str(collection.pk), collection.name),
                changes={"collection": collection.slug, "count": len(deleted), "ids": deleted},
            )
    return deleted


def _records_commit_deleted(*, actor: Actor, collection: Collection, records: list[Record], now: datetime) -> None:
    """Steps 4–7 of the spine for a batch of records being deleted: the same tombstones, changes and
    events `_record_commit` writes one by one, in a statement per step for the batch (the lock is held)."""
    if not records:
        return
    first = _seq_next(len(records), live_delta=-len(records))
    stamp = actor.stamp()
    changes, events = [], []
    for offset, record in enumerate(records):
        record.data = data_migrated(collection.data_migration, record.data)
        record.version, record.seq = record.version + 1, first + offset
        record.updated_at, record.updated_by, record.deleted_at = now, stamp, now
        change, event = _change_and_event(
            record,
            collection,
            op=Change.Op.DELETED,
            changed_fields=[],
            before={},
            actor=actor,
            stamp=stamp,
            now=now,
            audited=_audited_one_by_one.get(),
        )
        changes.append(change)
        events.append(event)
    records_rows_update(
        connection.ops.quote_name(Record._meta.db_table),
        [(r.key, r.data, r.version, r.seq, r.updated_at, r.updated_by) for r in records],
    )
    Record.objects.filter(pk__in=[r.pk for r in records]).update(deleted_at=now)
    RecordUniqueValue.objects.filter(record__in=[r.pk for r in records]).delete()
    Change.objects.bulk_create(changes)
    for event in events:
        event_emit(event)


def records_bulk_update(
    *, actor: Actor | Principal, collection: Collection, record_ids: Iterable[str], data: dict
) -> list[str]:
    """Apply one merge patch (`data`) to the selected records, all or none: a value one record refuses
    (a unique field, a required field cleared) fails the whole edit with that record's error. The audit
    log keeps one event with the count, the ids and the patch. Returns the ids changed."""
    _require(actor, "records.edit")
    ids = _bulk_ids(record_ids)
    if not isinstance(data, dict) or not data:
        raise ValidationFailed([{"param": "data", "code": "invalid_type", "message": "Choose a field and a value."}])
    changed: list[str] = []
    with _bulk_write():
        rows = Record.objects.filter(collection=collection, id__in=ids, deleted_at=None).order_by("id")
        for current in list(rows):
            write = record_update(actor=actor, record=current, data=data)
            if write.changed:
                changed.append(current.id)
        if changed:
            audit_event_record(
                action="records.bulk_updated",
                actor=actor,
                target=("collection", str(collection.pk), collection.name),
                changes={"collection": collection.slug, "count": len(changed), "ids": changed, "set": data},
            )
    return changed


# --- bulk edit and delete of large selections, by a worker -------------------------------------------

BULK_INLINE = 1000  # a bigger selection is carried out by a worker (records_bulk_job_start), with progress
BULK_JOB_MAX = 50_000  # "select all N matching": the most one job takes
BULK_JOB_BATCH = 500  # records per transaction: other writers get their turn between batches


def records_bulk_job_start(
    *,
    actor: Actor | Principal,
    collection: Collection,
    action: str,
    record_ids: Iterable[str],
    data: dict | None = None,
    label: str = "",
) -> BulkJob:
    """Accept a bulk delete (`action` "delete") or a bulk set of one patch (`action` "set", `data`) over
    up to BULK_JOB_MAX records, to be carried out by a worker in batches (records_bulk_job_run), each
    batch its own transaction through the spine's batch steps. The person sees its progress; the audit
    log keeps one event when it ends (the count and the ids; for a set that stopped on a refused value,
    what was changed before it and why it stopped)."""
    _require(actor, "records.edit")
    entitlements.writes_check()
    ids = list(dict.fromkeys(i for i in record_ids if isinstance(i, str) and _RECORD_ID.fullmatch(i)))
    if not 1 <= len(ids) <= BULK_JOB_MAX:
        raise RecordError(f"Select between 1 and {BULK_JOB_MAX:,} records.", param="ids", code="bulk_size")
    if action not in BulkJob.Action.values:
        raise RecordError("Choose what to do with the selected records.", param="action")
    if action == BulkJob.Action.SET:
        if not isinstance(data, dict) or not data:
            raise ValidationFailed(
                [{"param": "data", "code": "invalid_type", "message": "Choose a field and a value."}]
            )
        for key, value in data.items():  # one value on many records: a unique field can only be cleared
            spec = collection.field(key)
            if spec is not None and spec.get("unique") and value is not None and len(ids) > 1:
                raise UniqueViolation(
                    f"`{key}` is unique: one value cannot be set on many records.", param=f"data.{key}"
                )
    user = actor if getattr(actor, "pk", None) and not isinstance(actor, Actor) else None
    with transaction.atomic():
        job = BulkJob.objects.create(
            collection=collection,
            action=action,
            data=data or {},
            label=label[:200],
            ids=ids,
            total=len(ids),
            requested_by=user,
        )
        transaction.on_commit(lambda: records_bulk_job_queue(job_id=job.pk))
    return job


def records_bulk_job_queue(*, job_id: int) -> None:
    """Hand a bulk job to a worker (records.tasks); a lost message is found again by the periodic resume."""
    from records.tasks import records_bulk_job_task  # the tasks module imports these services

    try:
        records_bulk_job_task.delay(job_id)
    except Exception:
        logger.exception("could not queue bulk job %s; the periodic resume will", job_id)


def records_bulk_job_run(*, job_id: int, limit: int | None = None) -> bool:
    """Carry out a bulk job, BULK_JOB_BATCH records per transaction, as the person who asked for it (their
    role is checked again for each batch: someone who lost the right to edit stops their job). Two
    workers on one job take turns on its row lock. Stops after about `limit` records (None: all); True
    when the job has ended."""
    done = 0
    while limit is None or done < limit:
        try:
            with _bulk_write():
                job = BulkJob.objects.select_for_update().select_related("collection").get(pk=job_id)
                if job.status != BulkJob.Status.RUNNING:
                    return True
                user = job.requested_by
                if user is None or not has_permission(user, "records.edit"):
                    raise WriteForbidden("Stopped: whoever asked for it may no longer edit records.")
                chunk = job.ids[job.position : job.position + BULK_JOB_BATCH]
                collection = job.collection
                if chunk:
                    rows = list(
                        Record.objects.filter(collection=collection, id__in=chunk, deleted_at=None).order_by("id")
                    )
                    if job.action == BulkJob.Action.DELETE:
                        _records_commit_deleted(
                            actor=Actor.of(user), collection=collection, records=rows, now=timezone.now()
                        )
                        job.changed += [r.id for r in rows]
                    else:
                        for current in rows:
                            if record_update(actor=user, record=current, data=job.data).changed:
                                job.changed.append(current.id)
                    job.position += len(chunk)
                if job.position >= job.total:
                    job.status, job.finished_at = BulkJob.Status.DONE, timezone.now()
                    _bulk_job_audit(job, user)
                job.save(update_fields=["position", "changed", "status", "finished_at", "updated_at"])
                if job.status != BulkJob.Status.RUNNING:
                    return True
        except BulkJob.DoesNotExist:
            return True
        except (RecordError, LimitExceeded) as exc:  # the batch was rolled back: what came before stays
            _bulk_job_stop(job_id, exc.message)
            return True
        done += len(chunk)
    return False


def _bulk_job_audit(job: BulkJob, actor: Any, *, stopped: str = "") -> None:
    if not job.changed:
        return
    changes: dict[str, Any] = {
        "collection": job.collection.slug,
        "count": len(job.changed),
        "ids": job.changed,
        "job": job.pk,
        "selected": job.total,
    }
    if job.action == BulkJob.Action.SET:
        changes["set"] = job.data
    if stopped:
        changes["stopped"] = stopped[:500]
    audit_event_record(
        action="records.bulk_deleted" if job.action == BulkJob.Action.DELETE else "records.bulk_updated",
        actor=actor,
        target=("collection", str(job.collection.pk), job.collection.name),
        changes=changes,
    )


def _bulk_job_stop(job_id: int, message: str) -> None:
    """End a job whose batch was refused: it keeps what the earlier batches did (audited now) and why."""
    with transaction.atomic():
        job = BulkJob.objects.select_for_update().select_related("collection").filter(pk=job_id).first()
        if job is None or job.status != BulkJob.Status.RUNNING:
            return
        job.status, job.finished_at, job.error = BulkJob.Status.FAILED, timezone.now(), message[:1000]
        _bulk_job_audit(job, job.requested_by or Actor.system(), stopped=message)
        job.save(update_fields=["status", "finished_at", "error", "updated_at"])


# --- undo ---------------------------------------------------------------------------------------------

UNDO_MAX = 1000  # records one undo puts back (a bigger bulk action is not offered an undo)


def records_revert(
    *, actor: Actor | Principal, collection: Collection, versions: dict[str, int], undoes: str
) -> list[str]:
    """Put records back as they were before their last change (the console's Undo), all or none:
    `versions` maps each record id to the version that change made. A record changed again since (by
    anyone) stops the whole undo with a Conflict, so no later change is ever overwritten. Each record
    is written through the spine (a deleted one comes back with its id and data; feed, webhooks and
    phones hear of it); the audit log keeps one event naming what was undone. Returns the ids."""
    _require(actor, "records.edit")
    if not isinstance(versions, dict) or not 1 <= len(versions) <= UNDO_MAX:
        raise RecordError("There is nothing to undo.", param="versions", code="undo_empty")
    reverted: list[str] = []
    with _bulk_write():
        rows = {r.id: r for r in Record.objects.filter(collection=collection, id__in=list(versions))}
        for record_id, version in sorted(versions.items()):
            current = rows.get(record_id)
            if current is None or current.version != version or version < 2:
                raise Conflict(
                    "Not undone: a record has changed since (or is gone); nothing was put back.",
                    param="versions",
                    code="undo_stale",
                )
            before = Change.objects.filter(livemode=current.livemode, record_id=record_id, version=version - 1).first()
            if before is None or before.op == Change.Op.DELETED:
                raise Conflict("Not undone: this change cannot be undone.", param="versions", code="undo_stale")
            record_update(
                actor=actor,
                record=current,
                data=before.data,
                partial=False,
                expected_version=version,
                undelete=current.deleted_at is not None,
            )
            reverted.append(record_id)
        audit_event_record(
            action="records.undone",
            actor=actor,
            target=("collection", str(collection.pk), collection.name),
            changes={"collection": collection.slug, "count": len(reverted), "ids": reverted, "undoes": undoes[:64]},
        )
    return reverted
