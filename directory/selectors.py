"""Reads of the directory. A cell asks it only about workspaces it does not hold itself (a request
that reached the wrong cell, a slug at sign-up), so the answers are kept a few seconds in memory:
a stream of misdirected requests costs one directory query per workspace and process every few
seconds, not one per request."""

from __future__ import annotations

import time
from dataclasses import dataclass

from directory.models import WorkspaceLocation, WorkspaceMove

CACHE_SECONDS = 5.0
_cache: dict[str, tuple[float, Location | None]] = {}


@dataclass(frozen=True)
class Location:
    slug: str
    cell: str
    region: str
    status: str


def workspace_location_of(slug: str) -> Location | None:
    """Where `slug` lives (None: no such workspace anywhere), as the directory said ≤ 5 s ago."""
    now = time.monotonic()
    hit = _cache.get(slug)
    if hit is not None and hit[0] > now:
        return hit[1]
    row = WorkspaceLocation.objects.filter(slug=slug).values_list("slug", "cell", "region", "status").first()
    location = Location(*row) if row else None
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[slug] = (now + CACHE_SECONDS, location)
    return location


def workspace_location_forget(slug: str) -> None:
    _cache.pop(slug, None)


def slug_reserved(slug: str) -> bool:
    """Whether any cell holds (or is creating) a workspace at `slug`: asked afresh, never cached."""
    return WorkspaceLocation.objects.filter(slug=slug).exists()


def workspace_of_customer(stripe_customer_id: str) -> str | None:
    """The slug of the workspace Stripe bills as `stripe_customer_id`, wherever it lives (not cached:
    asked once per Stripe event a cell does not bill itself)."""
    if not stripe_customer_id:
        return None
    return (
        WorkspaceLocation.objects.filter(stripe_customer_id=stripe_customer_id).values_list("slug", flat=True).first()
    )


def workspaces_per_cell() -> dict[str, int]:
    counts: dict[str, int] = {}
    for cell in WorkspaceLocation.objects.values_list("cell", flat=True):
        counts[cell] = counts.get(cell, 0) + 1
    return counts


def moves_recent(limit: int = 20) -> list[WorkspaceMove]:
    return list(WorkspaceMove.objects.all()[:limit])
