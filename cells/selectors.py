"""What the operator's cells page shows: every cell of the installation (configured, or only named by
the directory), its region, its workspaces by status, and the moves under way and done."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count

from directory.models import WorkspaceLocation, WorkspaceMove
from tenants.topology import cells, region_label


@dataclass
class CellRow:
    name: str
    region: str
    region_label: str
    public_url: str
    configured: bool  # in TESSERA_CELLS (a cell only the directory names is misconfigured)
    this_cell: bool
    workspaces: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    moves_in: int = 0  # moves into it under way
    moves_out: int = 0


def cells_overview() -> list[CellRow]:
    rows = {
        cell.name: CellRow(
            cell.name, cell.region, region_label(cell.region), cell.public_url, True, cell.name == settings.TESSERA_CELL
        )
        for cell in cells()
    }
    counts = WorkspaceLocation.objects.values("cell", "status").annotate(n=Count("id")).order_by()
    for item in counts:
        row = rows.get(item["cell"])
        if row is None:
            row = rows[item["cell"]] = CellRow(item["cell"], "", "unknown", "", False, False)
        row.workspaces += item["n"]
        row.by_status[item["status"]] = item["n"]
    under_way = (WorkspaceMove.Status.COPYING, WorkspaceMove.Status.FROZEN)
    for move in WorkspaceMove.objects.filter(status__in=under_way).values("source_cell", "target_cell"):
        if move["target_cell"] in rows:
            rows[move["target_cell"]].moves_in += 1
        if move["source_cell"] in rows:
            rows[move["source_cell"]].moves_out += 1
    return sorted(rows.values(), key=lambda r: (r.region, r.name))


def moves_under_way() -> list[WorkspaceMove]:
    return list(WorkspaceMove.objects.filter(status__in=(WorkspaceMove.Status.COPYING, WorkspaceMove.Status.FROZEN)))


def moves_finished(limit: int = 50) -> list[WorkspaceMove]:
    done = (WorkspaceMove.Status.DONE, WorkspaceMove.Status.FAILED)
    return list(WorkspaceMove.objects.filter(status__in=done).order_by("-finished_at")[:limit])
