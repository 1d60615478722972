"""The subject index (privacy.models.SubjectKey): which records hold which identifier, as keyed hashes.

Kept in the write spine's transaction by an in-transaction subscriber of record events (so it is never
behind the records), rebuilt for a collection when its personal-data map changes, emptied for a record
when it is erased. A data-subject request looks people up here instead of scanning every record.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from django.conf import settings

from core.events import DomainEvent
from core.workspace_memo import workspace_memo
from privacy.models import PersonalDataField, SubjectKey
from records.events import RecordChanged
from records.models import Collection, Record, record_key
from tenants.runtime import workspace_current_or_none


def identifier_hash(value: Any) -> str:
    text = str(value).strip().lower()
    return hmac.new(settings.SECRET_KEY.encode(), b"subject:" + text.encode(), hashlib.sha256).hexdigest()


def _workspace_id():
    tenant = workspace_current_or_none()
    return tenant and tenant.pk


def _identifying(collection_id: int, batch: dict | None) -> list[str]:
    """The collection's identifying fields: read once per bulk write, and remembered by an API request's
    server process between requests (core.workspace_memo; personal_data_map_set makes it forget)."""
    cache_key = ("privacy.identifying", collection_id)
    if batch is not None and cache_key in batch:
        return batch[cache_key]
    keys = workspace_memo(
        _workspace_id,
        cache_key,
        lambda: list(
            PersonalDataField.objects.filter(collection_id=collection_id, identifies_subject=True).values_list(
                "field_key", flat=True
            )
        ),
    )
    if batch is not None:
        batch[cache_key] = keys
    return keys


def _rows(collection_id: int, key: str, data: dict, fields: list[str]) -> list[SubjectKey]:
    return [
        SubjectKey(collection_id=collection_id, record_key=key, value_hash=identifier_hash(data[f]))
        for f in fields
        if data.get(f) not in (None, "")
    ]


def record_index_update(event: DomainEvent) -> None:
    """Subscriber (in the transaction) of record changes and erasures, live records only."""
    if not event.livemode:
        return
    if event.type == "record.erased":
        if getattr(event, "fields", ()):  # anonymised: its record.updated change re-indexed what is left
            return
        SubjectKey.objects.filter(record_key=record_key(livemode=True, record_id=event.record_id)).delete()
        return
    if not isinstance(event, RecordChanged):
        return
    fields = _identifying(event.collection_id, event.batch)
    if not fields or (event.op != "created" and not set(fields) & set(event.changed_fields)):
        return
    key = record_key(livemode=True, record_id=event.record_id)
    if event.op != "created":
        SubjectKey.objects.filter(record_key=key).delete()
    SubjectKey.objects.bulk_create(_rows(event.collection_id, key, event.data, fields))


def subject_index_rebuild(collection: Collection) -> int:
    """Index every live record of the collection anew (its identifying fields changed); returns rows."""
    SubjectKey.objects.filter(collection=collection).delete()
    fields = _identifying(collection.pk, None)
    if not fields:
        return 0
    made = 0
    batch: list[SubjectKey] = []
    records = Record.objects.filter(collection=collection, livemode=True).values_list("key", "data")
    for key, data in records.iterator(chunk_size=2000):
        batch.extend(_rows(collection.pk, key, data, fields))
        if len(batch) >= 2000:
            made += len(SubjectKey.objects.bulk_create(batch))
            batch = []
    return made + len(SubjectKey.objects.bulk_create(batch))


def subject_record_keys(identifier: str) -> list[str]:
    return list(SubjectKey.objects.filter(value_hash=identifier_hash(identifier)).values_list("record_key", flat=True))
