"""The master side of RxDB replication for one collection: changes since a checkpoint, and writes.

Writes go through the write spine (records.services) as the device. A write made against an older
state (`assumedMasterState` is not the current master) is merged three-way, field by field, with
`assumedMasterState` as the base: fields only the phone changed take the phone's value, fields only
changed on the server keep the server's. The rules when both sides changed the same thing:

- the same field changed differently: the server's value stays (first write to reach the server
  wins); the client gets the merged document back as a conflict and adopts it;
- a delete against an edit, either way round: the delete wins (a deleted record is only brought
  back by a client that knows it is deleted and writes it again).

Every row the server wrote is answered with the stored document, as RxDB answers a conflict: a
write gives the record a new `version` and `updated_at`, so the phone's `newDocumentState` is never
exactly the master afterwards, and a phone that were told `[]` would keep its old version until a
pull or stream event brought the new one — which RxDB skips while that push is in flight. The phone
adopts the answer (RxDB's default conflict handler takes the master) and pushes nothing more. Only
a row that already is exactly the master answers nothing (`[]`). A resent write whose data the
master already has (its first answer was lost) is not written again: it is answered with the
master.

A device's own accepted writes are never concurrent with its next one. RxDB stores the answer to a
write only if the user has not edited the document again meanwhile; when they have (two quick edits,
or a write whose answer was lost in a reconnect), the next push still names the old
`assumedMasterState`, and merged against that base the device's own first edit would look like a
server change that beats its second one (the second edit was lost). So the server remembers, per
device and record, the last document the device sent and the version it produced (`DeviceWrite`):
when that is newer than the push's `assumedMasterState`, it is the merge base. Writes of one device
are serialised (a lock on its row) so a push that arrives on a second socket or server process
after a reconnect sees the first one's outcome.

A row the server does not store (a Viewer's device, data that fails the collection's validation, a
limit) is answered with the current master document — or a tombstone if the record does not exist —
so the phone drops its change instead of retrying it forever.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from audit.services import audit_event_record
from core.actors import Actor, Principal
from core.errors import ServiceError
from rbac.permissions import has_permission
from records.errors import RecordError, SubjectRestricted
from records.fields import RECORD_ID_RE
from records.models import Collection, Record
from records.services import record_create, record_delete, record_update
from sync.documents import (
    DocumentText,
    checkpoint,
    document_deleted,
    document_fields,
    document_of,
    json_text,
    same_document,
    same_state,
    tombstone,
)
from sync.models import Device, DeviceWrite

MAX_BATCH = 10_000
MAX_ROWS = 1_000
_RECORD_ID = re.compile(RECORD_ID_RE)


class ProtocolError(ServiceError):
    """A request the server cannot answer with a result; sent back as an error frame."""

    status = 400

    def __init__(self, code: str, message: str):
        super().__init__(message, code=code)


def checkpoint_parse(value: Any) -> tuple[int, str]:
    if value is None:
        return 0, ""
    if not isinstance(value, dict):
        raise ProtocolError("invalid_params", 'The checkpoint must be null or an object {"seq": int, "id": str}.')
    seq, record_id = value.get("seq", 0), value.get("id", "")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0 or not isinstance(record_id, str):
        raise ProtocolError("invalid_params", 'The checkpoint must be null or an object {"seq": int, "id": str}.')
    return seq, record_id


@dataclass(frozen=True)
class Page:
    """A `masterChangesSince` answer: `{documents, checkpoint}` as JSON text, and what it holds."""

    text: str
    count: int
    checkpoint: tuple[int, str]


def batch_size_check(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ProtocolError("invalid_params", "batchSize must be a positive integer.")
    if batch_size > MAX_BATCH:
        # Never fewer documents than asked for while more exist: RxDB stops pulling at a short batch.
        raise ProtocolError("invalid_params", f"batchSize is at most {MAX_BATCH}.")
    return batch_size


def changes_since_page(*, collection: Collection, after: tuple[int, str], batch_size: Any) -> Page:
    """`masterChangesSince`: the next `batch_size` documents after the checkpoint, in commit order.

    The database writes each document's text (sync.documents.DocumentText: the stored data's own JSON
    text spliced between the server's keys, the timestamp formatted there too); this only joins them.
    Parsing, formatting and re-encoding each row here was most of the server's CPU of a large pull."""
    rows = list(
        Record.objects.filter(collection_id=collection.pk, livemode=True, seq__gt=after[0])
        .order_by("seq")
        .annotate(document=DocumentText())
        .values_list("document", "seq", "id")[: batch_size_check(batch_size)]
    )
    last = (rows[-1][1], rows[-1][2]) if rows else after
    documents = ",".join(row[0] for row in rows)
    text = f'{{"documents":[{documents}],"checkpoint":{json_text(checkpoint(*last))}}}'
    return Page(text=text, count=len(rows), checkpoint=last)


def changes_since(*, collection: Collection, after: tuple[int, str], batch_size: Any) -> dict:
    """`changes_since_page` as objects."""
    return json.loads(changes_since_page(collection=collection, after=after, batch_size=batch_size).text)


def _rows_check(rows: Any) -> list[dict]:
    if not isinstance(rows, list):
        raise ProtocolError("invalid_params", "masterWrite takes a list of rows.")
    if len(rows) > MAX_ROWS:
        raise ProtocolError("invalid_params", f"masterWrite takes at most {MAX_ROWS} rows at once.")
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("newDocumentState"), dict):
            raise ProtocolError("invalid_params", f"rows[{index}] needs a newDocumentState object.")
        assumed = row.get("assumedMasterState")
        if assumed is not None and not isinstance(assumed, dict):
            raise ProtocolError("invalid_params", f"rows[{index}].assumedMasterState must be an object or absent.")
        record_id = row["newDocumentState"].get("id")
        if not isinstance(record_id, str) or not _RECORD_ID.fullmatch(record_id):
            raise ProtocolError(
                "invalid_params", f"rows[{index}].newDocumentState.id must be 1–64 letters, digits, - or _."
            )
    return rows


def master_write(
    *, actor: Actor | Principal, collection: Collection, rows: Any, refused: list[str] | None = None
) -> list[dict]:
    """`masterWrite`: apply each row; answer the master documents of the rows that differ from it.
    The ids of rows refused because the record's processing is restricted are added to `refused` (the
    consumer follows the answer with a `subject_restricted` error frame naming them)."""
    conflicts = []
    for row in _rows_check(rows):
        answer = _row_write(actor, collection, row["newDocumentState"], row.get("assumedMasterState"), refused)
        if answer is not None:
            conflicts.append(answer)
    return conflicts


def _master(collection: Collection, record_id: str) -> tuple[Record | None, dict | None]:
    record = Record.objects.filter(livemode=True, id=record_id).first()
    if record is None:
        return None, None
    if record.collection_id != collection.pk or not record.livemode:
        return record, tombstone(record_id)  # the id belongs to another collection: never to this one
    return record, document_of(record)


def _conflict_record(actor: Actor | Principal, record: Record, conflicts: list) -> None:
    """The phone and the server changed the same fields: the server's values stayed and the phone's
    were dropped. Recorded, so someone can look (the audit log; the desktop tells its owner)."""
    audit_event_record(
        action="record.sync_conflict",
        actor=actor,
        target=record,
        # field names only: record values stay out of the audit chain
        changes={"collection": record.collection.slug, "fields": sorted(c.field for c in conflicts)},
    )


def _device_of(actor: Actor | Principal) -> Device | None:
    if isinstance(actor, Device):
        return actor
    principal = getattr(actor, "principal", None)
    return principal if isinstance(principal, Device) else None


def _version_of(doc: dict | None) -> int:
    version = (doc or {}).get("version")
    return version if isinstance(version, int) and not isinstance(version, bool) else 0


def _row_write(
    actor: Actor | Principal, collection: Collection, new: dict, assumed: dict | None, refused: list[str] | None
) -> dict | None:
    device = _device_of(actor)
    if device is None:
        return _row_merge(actor, collection, new, assumed, None, refused)
    with transaction.atomic():
        # One device's writes one after another, whichever socket or process they came through.
        Device.objects.select_for_update().filter(pk=device.pk).values_list("pk", flat=True).first()
        own = DeviceWrite.objects.filter(device_id=device.pk, record_id=new["id"]).first()
        if own is not None and own.version > _version_of(assumed):
            # The device wrote this record since the state it names: that write is its own, not a
            # concurrent one (the module docstring says why). Its document is the merge base.
            assumed = {"id": new["id"], **own.data, "version": own.version, "_deleted": own.deleted}
        answer = _row_merge(actor, collection, new, assumed, device, refused)
    return answer


def _own_write_note(device: Device | None, record: Record, new: dict) -> None:
    if device is None:
        return
    DeviceWrite.objects.update_or_create(
        device_id=device.pk,
        record_id=record.id,
        defaults={"version": record.version, "data": document_fields(new), "deleted": document_deleted(new)},
    )


def _row_merge(
    actor: Actor | Principal,
    collection: Collection,
    new: dict,
    assumed: dict | None,
    device: Device | None,
    refused: list[str] | None = None,
) -> dict | None:
    record_id = new["id"]
    record, master = _master(collection, record_id)
    if same_document(new, master) or (master is None and document_deleted(new)):
        return None  # the phone holds the master already, or created and deleted a record offline
    if same_state(new, master):
        return master  # already so (a resent write whose answer was lost): no second write
    if record is not None and (record.collection_id != collection.pk or not record.livemode):
        return master
    if not has_permission(actor, "records.edit"):
        return master or tombstone(record_id)
    try:
        if record is None:
            record = record_create(actor=actor, collection=collection, data=document_fields(new), record_id=record_id)
        elif record.deleted_at is not None:
            if not (assumed is None or document_deleted(assumed)):
                return master  # edited offline, deleted on the server: the delete wins
            record = record_update(
                actor=actor, record=record, data=document_fields(new), partial=False, undelete=True
            ).record
        elif document_deleted(new):
            record = record_delete(actor=actor, record=record)
        else:
            written = record_update(
                actor=actor,
                record=record,
                data=document_fields(new),
                partial=False,
                base_data=document_fields(assumed),
                on_conflict="current",
            )
            record = written.record
            if written.conflicts:
                _conflict_record(actor, record, written.conflicts)
    except RecordError as exc:
        if isinstance(exc, SubjectRestricted) and refused is not None:
            refused.append(record_id)
        _, master = _master(collection, record_id)
        return master or tombstone(record_id)
    _own_write_note(device, record, new)
    stored = document_of(record)
    return None if same_document(new, stored) else stored
