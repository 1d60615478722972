"""The cells of the installation, as configured: this deployment's cell, every cell's region and
public site, and a workspace's address in a cell (settings.TESSERA_CELL, TESSERA_CELLS). Settings
only, no database: the desktop is one cell without a name and never has another."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

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

    def workspace_url(self, slug: str, path: str = "/") -> str:
        """`path` of workspace `slug` in this cell: <scheme>://<slug>.<public host>[:port]<path>."""
        parts = urlsplit(self.public_url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{slug}.{parts.hostname}{port}{path}"


def cells() -> list[Cell]:
    return [
        Cell(name=name, region=cell["region"], public_url=cell["public_url"])
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
