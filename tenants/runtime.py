"""The tenant API for the rest of the code: which tenant is current, and running code inside one.

Nothing outside tenants/ asks which runtime it is in or touches django_tenants; it calls these.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection

from core.errors import ServiceError
from tenants.backends import tenancy_backend
from tenants.models import Tenant

logger = logging.getLogger(__name__)


class NoCurrentWorkspace(RuntimeError):
    """Raised when tenant data is touched outside any tenant (e.g. on the public site)."""


def workspace_current() -> Tenant:
    tenant = tenancy_backend().current()
    if tenant is None:
        raise NoCurrentWorkspace("No tenant is active here.")
    return tenant


def workspace_current_or_none() -> Tenant | None:
    try:
        return tenancy_backend().current()
    except Exception:  # e.g. before migrations on a fresh database
        return None


@contextlib.contextmanager
def workspace_context(tenant: Tenant) -> Iterator[Tenant]:
    """Run the block inside `tenant`'s data (its schema in SaaS)."""
    with tenancy_backend().inside(tenant):
        yield tenant


@contextlib.contextmanager
def public_context() -> Iterator[None]:
    """Run the block against the installation-wide data (the public schema in SaaS)."""
    with tenancy_backend().public():
        yield


def workspace_base_url(request=None) -> str:
    """Where links to the current workspace point (e-mails, invitations): its configured address;
    on the desktop (no configured address, loopback only) the address the request came to."""
    configured = workspace_current().base_url()
    if configured or request is None:
        return configured or ""
    return request.build_absolute_uri("/").rstrip("/")


def workspace_still_serving(tenant: Tenant) -> bool:
    """Whether `tenant` — this very workspace, not one that took its slug (and schema name) after it
    was deleted: row ids are never reused — still exists and is active (or being moved to another
    cell: it serves reads until it is there). Long-lived connections (phone sync) ask it again and again."""
    serving = (Tenant.Status.ACTIVE, Tenant.Status.MOVING)
    with public_context():
        return Tenant.objects.filter(pk=tenant.pk, schema_name=tenant.schema_name, status__in=serving).exists()


class WorkspaceMoving(ServiceError):
    """The workspace is being moved to another cell: writes wait until it is there (seconds)."""

    status, code = 503, "workspace_moving"
    retry_after = 5

    def __init__(self, message: str = "", **kwargs):
        super().__init__(
            message
            or "This workspace is moving to another data center: reading works, writing again in a few seconds.",
            retry_after=self.retry_after,
            **kwargs,
        )


def workspace_writes_open_check(tenant: Tenant | None = None) -> None:
    """Refuse a write while `tenant` is being moved. Read afresh (not the request's copy of the row):
    record writes ask it after taking the workspace's change-counter lock, which is what a move takes
    to wait for the writes already under way (cells.moves)."""
    if not tenancy_backend().multi_tenant:
        return
    tenant = tenant or workspace_current()
    # schema-qualified: one statement, inside the caller's transaction, without switching schemas
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT status FROM public.{Tenant._meta.db_table} WHERE id = %s", [tenant.pk])  # noqa: S608
        row = cursor.fetchone()
    if row is not None and row[0] == Tenant.Status.MOVING:
        raise WorkspaceMoving()


def workspace_sockets_group(tenant: Tenant) -> str:
    """The channel-layer group every open socket of `tenant` joins (by row id: never reused)."""
    return f"workspace.{tenant.pk}"


def workspace_sockets_close(tenant: Tenant) -> None:
    """Tell every open socket of `tenant`, in every server process, to close now (the workspace is
    deleted or suspended). Sockets also find out on their next re-check (workspace_still_serving)."""
    try:
        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(workspace_sockets_group(tenant), {"type": "workspace.closed"})
    except Exception:
        logger.exception("could not close the sockets of %s", tenant.pk)


def workspace_for_host(host: str) -> Tenant | None:
    return tenancy_backend().for_host(host)


def workspace_list():
    """Every business tenant (not the public row, not the template)."""
    return tenancy_backend().tenants()


def task_in_each_workspace(task) -> int:
    """Queue a Celery task once from inside each business tenant (a periodic job's fan-out: the
    tenant-aware Celery app of the SaaS runs each in its tenant's schema). Returns how many."""
    count = 0
    for tenant in workspace_list():
        with workspace_context(tenant):
            task.delay()
        count += 1
    return count


def is_multi_tenant() -> bool:
    """For tenants/ and config/ only: whether hosts pick the tenant (SaaS) or there is just one."""
    return tenancy_backend().multi_tenant
