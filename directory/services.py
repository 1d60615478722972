"""Writes to the directory: a slug reserved at sign-up, then active; a workspace moved to another cell.

The directory is another database than the cell's: its writes are not in the cell's transactions, so
provisioning reserves first, creates the workspace, then activates (or releases on failure), and a
move flips the location only once the copy is verified."""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import Conflict, NotFound
from directory.models import WorkspaceLocation, WorkspaceMove
from directory.routers import DIRECTORY_DB
from directory.selectors import workspace_location_forget

# A reservation this old whose sign-up never finished (its process died) may be taken again.
STALE_RESERVATION = timedelta(minutes=10)


class SlugTaken(Conflict):
    code = "slug_taken"


def workspace_location_reserve(*, slug: str, cell: str, region: str) -> WorkspaceLocation:
    """Reserve `slug` for a workspace being created in `cell`; SlugTaken when any cell holds it."""
    try:
        with transaction.atomic(using=DIRECTORY_DB):
            return WorkspaceLocation.objects.create(slug=slug, cell=cell, region=region)
    except IntegrityError:
        now = timezone.now()
        reclaimed = WorkspaceLocation.objects.filter(
            slug=slug, status=WorkspaceLocation.Status.PROVISIONING, updated_at__lt=now - STALE_RESERVATION
        ).update(cell=cell, region=region, updated_at=now)
        if reclaimed:
            return WorkspaceLocation.objects.get(slug=slug)
        raise SlugTaken("That address is already taken.", param="slug", status=409) from None


def workspace_location_activate(*, slug: str, cell: str) -> None:
    """The workspace reserved in `cell` exists now: requests for it may be sent there."""
    WorkspaceLocation.objects.filter(slug=slug, cell=cell).update(
        status=WorkspaceLocation.Status.ACTIVE, updated_at=timezone.now()
    )
    workspace_location_forget(slug)


def workspace_location_release(*, slug: str, cell: str) -> None:
    """The workspace is gone from `cell` (its sign-up failed, or it was deleted): the slug is free."""
    WorkspaceLocation.objects.filter(slug=slug, cell=cell).delete()
    workspace_location_forget(slug)


def workspace_location_register(*, slug: str, cell: str, region: str) -> WorkspaceLocation:
    """Record a workspace that exists in `cell` already (created before the directory, or by a
    cell that was joined to it); an existing location is left as it is."""
    location, _ = WorkspaceLocation.objects.get_or_create(
        slug=slug, defaults={"cell": cell, "region": region, "status": WorkspaceLocation.Status.ACTIVE}
    )
    return location


def workspace_location_customer_set(*, slug: str, stripe_customer_id: str) -> None:
    WorkspaceLocation.objects.filter(slug=slug).update(stripe_customer_id=stripe_customer_id)


def workspace_move_begin(*, slug: str, target_cell: str) -> WorkspaceMove:
    """Start moving `slug` to `target_cell`; Conflict while another move of it is under way."""
    with transaction.atomic(using=DIRECTORY_DB):
        location = WorkspaceLocation.objects.select_for_update().filter(slug=slug).first()
        if location is None:
            raise NotFound(f"No workspace {slug!r} in the directory.", param="slug")
        if location.status != WorkspaceLocation.Status.ACTIVE:
            raise Conflict(f"The workspace is {location.get_status_display().lower()}.", param="slug")
        if location.cell == target_cell:
            raise Conflict(f"The workspace is in cell {target_cell} already.", param="cell")
        location.status = WorkspaceLocation.Status.MOVING
        location.save(update_fields=["status", "updated_at"])
        return WorkspaceMove.objects.create(slug=slug, source_cell=location.cell, target_cell=target_cell)


def workspace_move_frozen(*, move: WorkspaceMove) -> None:
    move.status, move.frozen_at = WorkspaceMove.Status.FROZEN, timezone.now()
    move.save(update_fields=["status", "frozen_at"])


def workspace_move_finish(*, move: WorkspaceMove, region: str, rows_copied: int, freeze_seconds: float) -> None:
    """The copy is verified: the workspace lives in the target cell from now on."""
    with transaction.atomic(using=DIRECTORY_DB):
        WorkspaceLocation.objects.filter(slug=move.slug).update(
            cell=move.target_cell, region=region, status=WorkspaceLocation.Status.ACTIVE, updated_at=timezone.now()
        )
        move.status, move.finished_at = WorkspaceMove.Status.DONE, timezone.now()
        move.rows_copied, move.freeze_seconds = rows_copied, freeze_seconds
        move.save(update_fields=["status", "finished_at", "rows_copied", "freeze_seconds"])
    workspace_location_forget(move.slug)


def workspace_move_fail(*, move: WorkspaceMove, error: str) -> None:
    """The move stopped before the flip: the workspace stays (and keeps serving) where it was."""
    with transaction.atomic(using=DIRECTORY_DB):
        WorkspaceLocation.objects.filter(slug=move.slug, status=WorkspaceLocation.Status.MOVING).update(
            status=WorkspaceLocation.Status.ACTIVE, updated_at=timezone.now()
        )
        move.status, move.finished_at, move.error = WorkspaceMove.Status.FAILED, timezone.now(), error[:2000]
        move.save(update_fields=["status", "finished_at", "error"])
    workspace_location_forget(move.slug)
