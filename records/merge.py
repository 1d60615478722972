"""JSON merge patch (RFC 7396) and the field-level three-way merge used when a writer is stale."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_MISSING = object()


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge recursively, null removes a member, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass(frozen=True)
class FieldConflict:
    field: str
    base: Any
    current: Any  # the master's value ("ours")
    incoming: Any  # the stale writer's value ("theirs")

    def as_dict(self) -> dict:
        return {"field": self.field, "base": self.base, "current": self.current, "incoming": self.incoming}


def three_way_merge(base: dict, current: dict, incoming: dict) -> tuple[dict, list[FieldConflict]]:
    """Merge a stale writer's full state into the current one, field by field.

    A field changed only by the writer takes the writer's value; changed only on the server keeps
    the server's; changed identically on both is fine; changed differently on both is a conflict
    (the result keeps the server's value and the conflict is reported).
    """
    merged: dict = {}
    conflicts: list[FieldConflict] = []
    for key in sorted(set(base) | set(current) | set(incoming)):
        b = base.get(key, _MISSING)
        c = current.get(key, _MISSING)
        i = incoming.get(key, _MISSING)
        if i in (b, c):
            value = c
        elif c == b:
            value = i
        else:
            conflicts.append(FieldConflict(key, _plain(b), _plain(c), _plain(i)))
            value = c
        if value is not _MISSING:
            merged[key] = value
    return merged, conflicts


def _plain(value: Any) -> Any:
    return None if value is _MISSING else value
