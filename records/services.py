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
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from billing import entitlements
from core.actors import Actor, Principal
from core.events import DomainEvent, event_emit
from rbac.permissions import has_permission
from records.errors import (
    Conflict,
    MergeConflict,
    NotFound,
    RecordError,
    UniqueViolation,
    ValidationFailed,
    VersionMismatch,
    WriteForbidden,
)
from records.events import RecordChanged, collection_object
from records.fields import RECORD_ID_RE, FieldDefinitionError, data_errors, field_definitions_clean, storable
from records.merge import FieldConflict, merge_patch, three_way_merge
from records.models import Change, ChangeCounter, Collection, Record, RecordUniqueValue, record_id_new

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
# The bulk write's scratch shared by its events (DomainEvent.batch).
_notice_batch: ContextVar[dict | None] = ContextVar("tessera_notice_batch", default=None)
# The workspace's change stream name, as the last sequence number taken read it (events' ids).
_stream: ContextVar[str] = ContextVar("tessera_change_stream", default="")


def _seq_lock() -> None:
    """Take the tenant's change-counter lock (held until commit)."""
    if _seq_lock_held.get():
        return
    if not ChangeCounter.objects.select_for_update().filter(pk=1).exists():
        try:
            with transaction.atomic():
                ChangeCounter.objects.create(pk=1, value=0)
        except IntegrityError:
            pass
        ChangeCounter.objects.select_for_update().filter(pk=1).exists()


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


def _record_atomic():
    """A record write's transaction: its own savepoint, except inside a bulk write (see _seq_lock_held)."""
    return transaction.atomic(savepoint=not _seq_lock_held.get())


def _seq_next(n: int = 1) -> int:
    """Reserve n sequence numbers (lock already held); returns the first. One statement (RETURNING:
    PostgreSQL, and SQLite since 3.35), which also reads the workspace's change stream name."""
    table = connection.ops.quote_name(ChangeCounter._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET value = value + %s WHERE id = 1 RETURNING value, stream", [n])  # noqa: S608
        value, stream = cursor.fetchone()
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
            _fields_migrate(collection, collection.fields, cleaned)
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
    return collection


def _fields_migrate(collection: Collection, old: list[dict], new: list[dict]) -> None:
    """Carry record data through a field change: renames move values, removals drop them, new
    required fields are filled with their default, new unique fields are checked."""
    old_by_id = {f["id"]: f for f in old}
    new_by_id = {f["id"]: f for f in new}
    live = Record.objects.filter(collection=collection, deleted_at=None)
    for fid, f in old_by_id.items():
        if fid not in new_by_id:
            _data_key_drop(collection, f["key"])
            RecordUniqueValue.objects.filter(collection=collection, field_id=fid).delete()
        elif new_by_id[fid]["key"] != f["key"]:
            _data_key_rename(collection, f["key"], new_by_id[fid]["key"])
    for fid, f in new_by_id.items():
        is_new = fid not in old_by_id
        if f["required"] and (is_new or not old_by_id[fid]["required"]):
            missing = [r for r in live.only("id", "data") if r.data.get(f["key"]) is None]
            if missing and "default" not in f:
                raise RecordError(
                    f"{len(missing)} existing record(s) have no `{f['key']}`: give the field a default.",
                    param="fields",
                    code="required_without_default",
                )
            for r in missing:
                r.data[f["key"]] = f["default"]
            Record.objects.bulk_update(missing, ["data"], batch_size=1000)
        if f["unique"] and (is_new or not old_by_id[fid]["unique"]):
            RecordUniqueValue.objects.filter(collection=collection, field_id=fid).delete()
            rows, seen = [], set()
            for r in live.only("id", "data").iterator(chunk_size=2000):
                value = r.data.get(f["key"])
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


def _data_key_rename(collection: Collection, old: str, new: str) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "UPDATE records_record SET data = (data - %s) || jsonb_build_object(%s::text, data -> %s) "
                "WHERE collection_id = %s AND data ? %s",
                [old, new, old, collection.pk, old],
            )
        else:
            cursor.execute(
                "UPDATE records_record SET data = json_set(json_remove(data, %s), %s, json(data -> %s)) "
                "WHERE collection_id = %s AND json_type(data, %s) IS NOT NULL",
                [f'$."{old}"', f'$."{new}"', f'$."{old}"', collection.pk, f'$."{old}"'],
            )


def _data_key_drop(collection: Collection, key: str) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "UPDATE records_record SET data = data - %s WHERE collection_id = %s AND data ? %s",
                [key, collection.pk, key],
            )
        else:
            cursor.execute(
                "UPDATE records_record SET data = json_remove(data, %s) "
                "WHERE collection_id = %s AND json_type(data, %s) IS NOT NULL",
                [f'$."{key}"', collection.pk, f'$."{key}"'],
            )


def collection_delete(*, actor: Actor | Principal, collection: Collection) -> Collection:
    _require(actor, "collections.manage")
    with transaction.atomic():
        if Record.objects.filter(collection=collection, deleted_at=None).exists():
            raise Conflict(
                "Delete or move this collection's records first.", param="collection", code="collection_not_empty"
            )
        collection.deleted_at = timezone.now()
        collection.save(update_fields=["deleted_at", "updated_at"])
        _collection_event_emit("collection.deleted", actor, collection, changes={})
    return collection


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


def _unique_sync(collection: Collection, record: Record, *, created: bool = False) -> None:
    unique_fields = [f for f in collection.fields if f["unique"]]
    if not unique_fields:
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
    *, actor: Actor | Principal, collection: Collection, record: Record, op: str, before: dict | None, now: datetime
) -> None:
    """Steps 4–7 of the spine for one record whose new state is already on `record`."""
    record.seq = _seq_next()
    record.updated_at = now
    actor = Actor.of(actor)
    record.updated_by = actor.stamp()
    inserted = op == Change.Op.CREATED and record.version == 1
    if inserted:
        record.save(force_insert=True)
    else:
        record.save()
    _unique_sync(collection, record, created=inserted)
    changed = sorted(k for k in set(before or {}) | set(record.data) if (before or {}).get(k) != record.data.get(k))
    change = Change.objects.create(
        seq=record.seq,
        livemode=record.livemode,
        collection=collection,
        record_id=record.id,
        op=op,
        version=record.version,
        data=record.data,
        changed_fields=changed,
        actor=record.updated_by,
        occurred_at=now,
    )
    event_emit(
        RecordChanged(
            actor=actor,
            livemode=record.livemode,
            occurred_at=now,
            batch=_notice_batch.get(),
            seq=change.seq,
            stream=_stream.get(),
            op=op,
            collection_id=collection.pk,
            collection_slug=collection.slug,
            record_id=record.id,
            version=record.version,
            data=record.data,
            changed_fields=changed,
            before={k: (before or {}).get(k) for k in changed},
            created_at=record.created_at,
        )
    )


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
    with _record_atomic():
        _seq_lock()
        entitlements.records_check(creating=1)
        data = _defaults(collection, data)
        _validate(collection, data)
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
            created_by=Actor.of(actor).stamp(),
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
) -> RecordWrite:
    """Update a record.

    - `partial`: `data` is a JSON merge patch (RFC 7396); otherwise the full new data.
    - `expected_version` (If-Match): refuse with VersionMismatch unless the record is at that version.
    - `base_version` / `base_data`: what the writer's change was made against. When the record moved on
      since, the writer's result is three-way merged field by field. Same field changed differently on
      both sides: MergeConflict (`on_conflict="raise"`), or `"incoming"` / `"current"` wins.
    """
    _require(actor, "records.edit")
    if not isinstance(data, dict):
        raise ValidationFailed([{"param": "data", "code": "invalid_type", "message": "`data` must be an object."}])
    with _record_atomic():
        _seq_lock()
        current = Record.objects.select_related("collection").filter(pk=record.pk).first()
        if current is None or (current.deleted_at is not None and not undelete):
            raise NotFound("No such record.", param="id")
        collection = current.collection
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
            incoming = merge_patch(base_data, data) if partial else data
        else:
            incoming = merge_patch(current.data, data) if partial else data
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
        _seq_lock()
        current = Record.objects.select_related("collection").filter(pk=record.pk).first()
        if current is None or current.deleted_at is not None:
            raise NotFound("No such record.", param="id")
        if expected_version is not None and current.version != expected_version:
            raise VersionMismatch(
                f"The record is at version {current.version}, not {expected_version}.",
                current_version=current.version,
            )
        now = timezone.now()
        before = current.data
        current.version += 1
        current.deleted_at = now
        _record_commit(
            actor=actor, collection=current.collection, record=current, op=Change.Op.DELETED, before=before, now=now
        )
    return current


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
    with transaction.atomic(), _seq_locked_for_many():
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
            except RecordError as exc:
                results.append(BulkItemResult(index, "error", error=exc))
    return results
