"""Cursor pagination of API lists (Stripe's shape): `limit`, `starting_after`, `ending_before` in;
`{"object": "list", "data": [...], "has_more": bool, "url": ...}` out.

Pages are keyset queries (WHERE (sort key, id) > cursor ORDER BY … LIMIT n+1): one query whatever the
page number, and no row is skipped or repeated when rows are added between pages."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

from django.db.models import Q, QuerySet

from api.problems import ApiProblem

LIMIT_DEFAULT = 10
LIMIT_MAX = 100
PAGE_PARAMS = frozenset({"limit", "starting_after", "ending_before"})


@dataclass(frozen=True)
class PageRequest:
    limit: int
    starting_after: str | None = None
    ending_before: str | None = None


def page_request(query) -> PageRequest:
    raw = query.get("limit")
    if raw is None:
        limit = LIMIT_DEFAULT
    else:
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= LIMIT_MAX:
            raise ApiProblem(
                400, "invalid_request", f"`limit` must be a whole number from 1 to {LIMIT_MAX}.", param="limit"
            )
        limit = int(raw)
    after, before = query.get("starting_after"), query.get("ending_before")
    for name, value in (("starting_after", after), ("ending_before", before)):
        if value is not None and value == "":
            raise ApiProblem(400, "invalid_request", f"`{name}` must name an object.", param=name)
    return PageRequest(limit, after, before)


def _beyond(order: Sequence[str], values: dict[str, Any], *, forward: bool) -> Q:
    """Rows strictly after (forward) or before the cursor row in `order` (lexicographic)."""
    alternatives, equal = [], Q()
    for key in order:
        name, descending = key.lstrip("-"), key.startswith("-")
        op = "lt" if descending == forward else "gt"
        alternatives.append(equal & Q(**{f"{name}__{op}": values[name]}))
        equal &= Q(**{name: values[name]})
    return reduce(operator.or_, alternatives)


def keyset_page(
    qs: QuerySet, *, order: Sequence[str], limit: int, after: dict | None = None, before: dict | None = None
) -> tuple[list, bool]:
    """One page of `qs` in `order` (the last key must be unique) after and/or before cursor rows
    (their sort-key values). With `before` alone the page is the one just before it (read backwards,
    returned in order); with both, the rows between them from the start of that window."""
    if after is not None:
        qs = qs.filter(_beyond(order, after, forward=True))
    if before is not None:
        qs = qs.filter(_beyond(order, before, forward=False))
    if before is not None and after is None:
        flipped = [key[1:] if key.startswith("-") else "-" + key for key in order]
        rows = list(qs.order_by(*flipped)[: limit + 1])
        return rows[:limit][::-1], len(rows) > limit
    rows = list(qs.order_by(*order)[: limit + 1])
    return rows[:limit], len(rows) > limit


def list_body(request, data: list, *, has_more: bool) -> dict:
    return {"object": "list", "data": data, "has_more": has_more, "url": request.path}
