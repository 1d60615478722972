"""Field changes carried into record data: what a change of a collection's fields does to each record.

A change of fields that moves data (a rename, a removal, a new required field filled with its default)
is saved on the collection as one step of its `data_migration`; the write spine then carries each record
through it, in batches, as ordinary record updates (a new version, a change in the feed, a webhook event,
a sync frame: records.services.collection_records_migrate). Until a record's turn comes, anything that
reads or writes it sees its data as the steps make it (`data_migrated`), so the collection never looks
half-renamed.
"""

from __future__ import annotations

from typing import Any


def step_for(old_fields: list[dict], new_fields: list[dict]) -> dict[str, Any] | None:
    """The data step that takes records from `old_fields` to `new_fields` (fields keep their `id`), or
    None when their data need not change."""
    old_by_id = {f["id"]: f for f in old_fields}
    new_by_id = {f["id"]: f for f in new_fields}
    renames = {
        f["key"]: new_by_id[fid]["key"]
        for fid, f in old_by_id.items()
        if fid in new_by_id and new_by_id[fid]["key"] != f["key"]
    }
    drops = [f["key"] for fid, f in old_by_id.items() if fid not in new_by_id]
    defaults = {
        f["key"]: f["default"]
        for fid, f in new_by_id.items()
        if f["required"] and "default" in f and (fid not in old_by_id or not old_by_id[fid]["required"])
    }
    if not (renames or drops or defaults):
        return None
    return {"renames": renames, "drops": drops, "defaults": defaults}


def data_migrated(migration: dict | None, data: dict) -> dict:
    """`data` as the collection's pending steps make it (the same dict when there are none)."""
    steps = (migration or {}).get("steps")
    if not steps:
        return data
    out = dict(data)
    for step in steps:
        moved = {}
        for old, new in step["renames"].items():
            if old in out:
                moved[new] = out.pop(old)
        for key in step["drops"]:
            out.pop(key, None)
        for new, value in moved.items():
            out.setdefault(new, value)
        for key, value in step["defaults"].items():
            if out.get(key) is None:
                out[key] = value
    return out


def migration_with(migration: dict | None, step: dict, *, actor_stamp: str) -> dict:
    """The collection's data migration with one more step; every record is looked at again from the start."""
    steps = [*((migration or {}).get("steps") or []), step]
    return {"steps": steps, "after_id": "", "actor": actor_stamp, "migrated": 0}
