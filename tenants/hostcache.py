"""The workspace an API request's host names, remembered by a server process between requests, so an API
request costs no public-schema query (bench/api: switching to the public schema, reading the domain and
switching back was a fifth of a record read).

An entry is trusted only while its workspace's *generation* is unchanged: the counter next to its
rate-limit buckets (Redis in SaaS; core.token_buckets) that also guards the API-key cache
(partners.keycache). It goes up after every committed change to the workspace's row or domains (saved
or deleted: the receivers below; a queryset `update()` calls workspace_changed itself). The rate
limiter reads the counter in the round trip it makes anyway; partners.ratelimit then calls
host_entry_confirm, which re-reads the host when the generation moved and refuses the request if the
host no longer names an active workspace. Order matters when filling an entry, as for keys: the
generation is read *before* the domain row, so a change committed in between makes the entry look
old at once. Before the first read of a host a process does not know whose generation to read, so a
host is remembered from its second request on.

Only /api/ requests use the cache (the console reads the domain row every time: no limiter round trip
confirms it there). Where no generation can be read (the desktop, Redis unreachable) nothing is
remembered. An entry also expires after ENTRY_SECONDS, a backstop for a bump lost with Redis.
"""

from __future__ import annotations

import copy
import logging
import threading
import time

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from core.token_buckets import token_buckets
from tenants.backends import tenancy_backend
from tenants.models import Domain, Tenant

logger = logging.getLogger(__name__)

ENTRY_SECONDS = 30.0
MAX_ENTRIES = 4096

_entries: dict[str, tuple[Tenant, str, float]] = {}  # host -> (workspace, its generation, filled at)
_seen: dict[str, object] = {}  # host -> the workspace id it named when last read (whose generation to read)
_lock = threading.Lock()


def generation_read(tenant_id) -> str | None:
    try:
        return token_buckets().key_generation(tenant_id)
    except Exception:
        logger.warning("workspace generation unreadable; hosts are read from the database", exc_info=True)
        return None


def host_entry_get(host: str) -> tuple[Tenant, str] | None:
    """A private copy of the workspace remembered for `host` and the generation it was read under."""
    now = time.monotonic()
    with _lock:
        entry = _entries.get(host)
        if entry is None:
            return None
        if now - entry[2] > ENTRY_SECONDS:
            del _entries[host]
            return None
    return copy.copy(entry[0]), entry[1]


def host_generation_before_read(host: str) -> tuple[object, str | None]:
    """Before reading `host` from the database: the generation of the workspace it named last time
    (None when unknown), to fill the entry with afterwards (host_entry_fill)."""
    with _lock:
        tenant_id = _seen.get(host)
    return tenant_id, (generation_read(tenant_id) if tenant_id is not None else None)


def host_entry_fill(host: str, tenant: Tenant, read_before: tuple[object, str | None]) -> None:
    """Remember `tenant` for `host` if the generation read before the row was its own."""
    tenant_id, generation = read_before
    with _lock:
        _seen[host] = tenant.pk
        if generation is not None and tenant_id == tenant.pk:
            _entries[host] = (copy.copy(tenant), generation, time.monotonic())
        if len(_entries) > MAX_ENTRIES or len(_seen) > MAX_ENTRIES:
            _entries.clear()
            _seen.clear()


def host_entry_drop(host: str) -> None:
    with _lock:
        _entries.pop(host, None)


def entries_clear() -> None:
    with _lock:
        _entries.clear()
        _seen.clear()


def host_entry_confirm(request, generation: str | None) -> str | None:
    """For the rate limiter, which has just read the workspace's generation: if the request's workspace
    came from memory under another generation, read its host again. Returns why the request must be
    refused ("unknown_host": the host names no workspace now, or another; "inactive": the workspace is
    suspended), else None (the request's copy of the workspace is brought up to date in place)."""
    remembered = getattr(request, "tessera_host_generation", None)
    if remembered is None or remembered == generation:
        return None
    tenant = request.tenant
    host_entry_drop(tenant.domain_url)
    request.tessera_host_generation = None
    fresh = tenancy_backend().for_host(tenant.domain_url)
    if fresh is None or fresh.pk != tenant.pk:
        return "unknown_host"
    for name in ("name", "slug", "plan", "status", "timezone", "updated_at"):
        setattr(tenant, name, getattr(fresh, name))
    return None if tenant.is_active else "inactive"


def workspace_changed(tenant_id) -> None:
    """After a change to a workspace's row or domains: this process forgets at once, every process
    (this one included) once the change has committed."""
    entries_clear()
    transaction.on_commit(lambda: _bump(tenant_id))


def _bump(tenant_id) -> None:
    try:
        token_buckets().key_generation_bump(tenant_id)
    except Exception:  # entries still expire after ENTRY_SECONDS
        logger.exception("workspace generation not bumped for workspace %s", tenant_id)


@receiver(post_save, sender=Tenant, dispatch_uid="tenants.hostcache.tenant_saved")
@receiver(post_delete, sender=Tenant, dispatch_uid="tenants.hostcache.tenant_deleted")
def _tenant_changed(sender, instance: Tenant, **kwargs) -> None:
    workspace_changed(instance.pk)


@receiver(post_save, sender=Domain, dispatch_uid="tenants.hostcache.domain_saved")
@receiver(post_delete, sender=Domain, dispatch_uid="tenants.hostcache.domain_deleted")
def _domain_changed(sender, instance: Domain, **kwargs) -> None:
    workspace_changed(instance.tenant_id)
