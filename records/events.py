"""The events of records and collections (subscribers: settings.TESSERA_EVENT_SUBSCRIBERS).

A record change is one `RecordChanged`: the same id (`evt_<stream>_<seq>`: the workspace's change stream
and the change's sequence number) and the same body on `/api/v1/events`, in webhook deliveries and (as
an RxDB document) on the sync stream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.events import AuditEntry, DomainEvent, instant
from records.models import record_key

EVENT_ID_RE = re.compile(r"^evt_([0-9a-z]{1,16})_([0-9]{1,18})$")


def record_event_id(stream: str, seq: int) -> str:
    return f"evt_{stream}_{seq}"


def record_event_seq(event_id: str, stream: str) -> int | None:
    """The sequence number a record event id of this workspace names (None: not one of its ids)."""
    match = EVENT_ID_RE.match(event_id or "")
    if match is None or match.group(1) != stream:
        return None
    return int(match.group(2))


def record_body(
    *,
    record_id: str,
    collection_slug: str,
    version: int,
    data: dict,
    deleted: bool,
    livemode: bool,
    created_at: datetime,
    updated_at: datetime,
) -> dict[str, Any]:
    """The one shape of a record in JSON: the API's record (records.api.serializers.RecordOut documents
    it), the object of an event, a webhook body's record. Built as a plain dict: on the API's hot paths a
    serializer per record cost ten times as much."""
    return {
        "object": "record",
        "id": record_id,
        "collection": collection_slug,
        "version": version,
        "data": data,
        "deleted": deleted,
        "livemode": livemode,
        "created_at": instant(created_at),
        "updated_at": instant(updated_at),
    }


def record_event_body(
    *,
    stream: str,
    seq: int,
    op: str,
    livemode: bool,
    collection_slug: str,
    record_id: str,
    version: int,
    data: dict,
    changed_fields: list[str],
    occurred_at: datetime,
    created_at: datetime,
) -> dict[str, Any]:
    """The one shape of a record change as an event (the API's list of events builds it from the
    change feed, the outbox from the write itself)."""
    return {
        "id": record_event_id(stream, seq),
        "object": "event",
        "type": f"record.{op}",
        "created": instant(occurred_at),
        "livemode": livemode,
        "data": {
            "object": record_body(
                record_id=record_id,
                collection_slug=collection_slug,
                version=version,
                data=data,
                deleted=op == "deleted",
                livemode=livemode,
                created_at=created_at,
                updated_at=occurred_at,
            ),
            "changed_fields": list(changed_fields),
        },
    }


@dataclass(frozen=True, kw_only=True)
class RecordChanged(DomainEvent):
    """A record was created, updated or deleted (through the write spine, whoever wrote it)."""

    type: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # the record's data after the change
    seq: int
    stream: str  # the workspace's change stream name (records.models.ChangeCounter)
    op: str  # created | updated | deleted
    collection_id: int
    collection_slug: str
    record_id: str
    version: int
    changed_fields: list[str] = field(default_factory=list)
    before: dict[str, Any] = field(default_factory=dict)  # the changed fields' values before (audit)
    created_at: datetime
    # False for the records a bulk operation changes that is audited once as a whole (a field migration).
    audited: bool = True

    def __post_init__(self):
        object.__setattr__(self, "type", f"record.{self.op}")
        object.__setattr__(self, "id", record_event_id(self.stream, self.seq))

    def body(self) -> dict[str, Any]:
        return record_event_body(
            stream=self.stream,
            seq=self.seq,
            op=self.op,
            livemode=self.livemode,
            collection_slug=self.collection_slug,
            record_id=self.record_id,
            version=self.version,
            data=self.data,
            changed_fields=self.changed_fields,
            occurred_at=self.occurred_at,
            created_at=self.created_at,
        )

    def payload(self) -> dict[str, Any]:
        return self.body()["data"]

    def audit_entry(self) -> AuditEntry | None:
        if not self.audited:
            return None
        return AuditEntry(
            target=("record", self.record_id, f"{self.collection_slug}/{self.record_id}"),
            personal_subject=record_subject(livemode=self.livemode, record_id=self.record_id),
            changes={
                "collection": self.collection_slug,
                "version": self.version,
                "livemode": self.livemode,
                "before": dict(self.before) if self.op != "created" else {},
                "after": {k: self.data.get(k) for k in self.changed_fields} if self.op != "deleted" else {},
            },
        )


def record_subject(*, livemode: bool, record_id: str) -> str:
    """The audit vault subject a record's values are sealed under (erasing the record shreds it)."""
    return "record:" + record_key(livemode=livemode, record_id=record_id)


@dataclass(frozen=True, kw_only=True)
class RecordErased(DomainEvent):
    """A record's values were erased everywhere (a data-subject request or a retention policy): every
    store that keeps copies of them forgets them, in the transaction of the erasure. Its record.deleted
    change (the tombstone, without values) goes out to webhooks and phones as usual."""

    type: str = "record.erased"
    data: dict[str, Any] = field(default_factory=dict)
    collection_slug: str
    record_id: str
    subject: str  # the audit vault subject (record_subject)
    # The fields whose values were erased (anonymisation; the record lives on); empty: all of them.
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class RecordRestricted(DomainEvent):
    """A record's processing was restricted (`restricted`) or the restriction lifted: `seq` is the new
    sequence number the record took, so phones pulling from an older checkpoint see it again (as a
    tombstone while restricted, whole again once lifted). Not a change of its data: no change-feed row,
    no `record.*` webhook event; pending webhook deliveries about it are held, then released."""

    type: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    restricted: bool
    seq: int
    stream: str
    collection_id: int
    collection_slug: str
    record_id: str
    version: int
    updated_at: datetime

    def __post_init__(self):
        object.__setattr__(self, "type", "record.restricted" if self.restricted else "record.restriction_lifted")


def collection_object(collection) -> dict[str, Any]:
    """A collection as events carry it."""
    data = {
        "object": "collection",
        "slug": collection.slug,
        "name": collection.name,
        "description": collection.description,
        "fields": collection.fields,
        "livemode": collection.livemode,
    }
    if collection.deleted_at is not None:
        data["deleted"] = True
    return data
