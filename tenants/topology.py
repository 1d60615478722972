"""The cells of the installation, as configured: this deployment's cell, every cell's region and
public site, and a workspace's address in a cell (settings.TESSERA_CELL, TESSERA_CELLS); and, for a
workspace this cell does not hold, the cell that does (the directory, SaaS only: the desktop is one
cell without a name and never has another)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.db import DatabaseError

if settings.TESSERA_DIRECTORY_ENABLED:  # SaaS cells; the desktop has no directory
    from directory.selectors import workspace_location_of

logger = logging.getLogger(__name__)

REGION_NAMES = {
    "eu": "European Union",
    "us": "United States",
    "uk": "United Kingdom",
    "ca": "Canada",
    "au": "Australia",
}


@dataclass(frozen=True)
class Cell:
    name: str
    region: str
    public_url: str  # the cell's public site (sign-up), e.g. https://eu1.tessera.example
    # How other cells reach its public site (a private network's address), if not at public_url:
    # requests go there with the public site's Host header.
    internal_url: str = ""

    def public_site_request_target(self, path: str) -> tuple[str, str]:
        """(URL to connect to, Host header) for a request from another cell to `path` of the public site."""
        host = urlsplit(self.public_url).netloc
        return (self.internal_url or self.public_url) + path, host

    def workspace_url(self, slug: str, path: str = "/") -> str:
        """`path` of workspace `slug` in this cell: <scheme>://<slug>.<public host>[:port]<path>."""
        parts = urlsplit(self.public_url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{slug}.{parts.hostname}{port}{path}"

    def workspace_websocket_url(self, slug: str, path: str) -> str:
        """The same address for a websocket: ws:// or wss://."""
        url = self.workspace_url(slug, path)
        return "ws" + url[4:] if url.startswith("http") else url


def cells() -> list[Cell]:
    return [
        Cell(name=name, region=cell["region"], public_url=cell["public_url"], internal_url=cell.get("internal_url", ""))
        for name, cell in sorted(settings.TESSERA_CELLS.items())
    ]


def cell_named(name: str) -> Cell | None:
    return next((cell for cell in cells() if cell.name == name), None)


def cell_current() -> Cell | None:
    """This deployment's cell (None on the desktop)."""
    return cell_named(settings.TESSERA_CELL) if settings.TESSERA_CELL else None


def region_label(region: str) -> str:
    return REGION_NAMES.get(region, region.upper())


def regions() -> list[tuple[str, str]]:
    """(code, label) of every region served by some cell, this cell's first."""
    current = cell_current()
    codes = sorted({cell.region for cell in cells()}, key=lambda r: (current is None or r != current.region, r))
    return [(code, region_label(code)) for code in codes]


def cell_for_region(region: str) -> Cell | None:
    """The cell new workspaces of `region` are created in: this one when it serves the region, else
    the first (by name) that does."""
    current = cell_current()
    if current is not None and current.region == region:
        return current
    return next((cell for cell in cells() if cell.region == region), None)


@dataclass(frozen=True)
class Elsewhere:
    """A workspace held by another cell: which, in which region, and where its addresses are."""

    slug: str
    cell: Cell
    region: str


def workspace_elsewhere(slug: str) -> Elsewhere | None:
    """The other cell holding workspace `slug`, as the directory says (None: this cell, nobody, no
    directory, or the directory unreachable — callers then answer as for an unknown workspace)."""
    if not settings.TESSERA_DIRECTORY_ENABLED or not slug:
        return None
    try:
        location = workspace_location_of(slug)
    except DatabaseError:
        logger.exception("the cells' directory is unreachable")
        return None
    if location is None or location.cell == settings.TESSERA_CELL:
        return None
    cell = cell_named(location.cell)
    if cell is None:
        logger.error("the directory names cell %r, which TESSERA_CELLS does not", location.cell)
        return None
    return Elsewhere(slug=slug, cell=cell, region=location.region)


def workspace_elsewhere_for_host(hostname: str) -> Elsewhere | None:
    """workspace_elsewhere() of the workspace a host names (<slug>.TESSERA_BASE_DOMAIN, port ignored)."""
    hostname = hostname.rsplit(":", 1)[0] if not hostname.endswith("]") else hostname
    suffix = "." + getattr(settings, "TESSERA_BASE_DOMAIN", "")
    slug = hostname[: -len(suffix)] if hostname.endswith(suffix) and len(suffix) > 1 else ""
    if not slug or "." in slug:
        return None
    return workspace_elsewhere(slug)
