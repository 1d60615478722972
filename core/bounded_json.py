"""JSON from strangers with a bounded nesting depth: Python's parser and every recursive walk after
it (serializers, JSON Schema, our own checks) would otherwise end in a `RecursionError` — a 500 on
the API, a socket dropped without a close frame on /sync/v1/ — for a few kilobytes of `[[[[...`."""

from __future__ import annotations

import json
from typing import Any

# No record, webhook filter or sync frame needs more; deep enough for any honest document.
MAX_DEPTH = 64


class JsonTooDeep(ValueError):
    """The text nests arrays/objects deeper than MAX_DEPTH (a ValueError, like any bad JSON)."""

    def __init__(self, max_depth: int = MAX_DEPTH):
        super().__init__(f"JSON nests deeper than {max_depth} levels.")
        self.max_depth = max_depth


def json_depth_check(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise JsonTooDeep if `value` (already parsed) nests deeper than `max_depth`; iterative, so
    checking cannot itself overflow the stack."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            raise JsonTooDeep(max_depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def json_loads_bounded(text: str | bytes, *, max_depth: int = MAX_DEPTH, **kwargs) -> Any:
    """`json.loads`, raising JsonTooDeep (a ValueError) instead of parsing or returning a document
    nested deeper than `max_depth`."""
    try:
        value = json.loads(text, **kwargs)
    except RecursionError:
        raise JsonTooDeep(max_depth) from None
    json_depth_check(value, max_depth=max_depth)
    return value
