"""API keys remembered by a server process between requests, so a request made with a known key costs
no database query to authenticate (bench/api: the key query was a third of the API's own overhead on a
read).

An entry is trusted only while its workspace's *key generation* is unchanged: a counter next to the
rate-limit buckets (Redis in SaaS) that goes up after every committed change to the workspace's keys
(created, revoked, rotated, deleted: the post_save/post_delete receivers below). The rate-limit script
reads the counter in the round trip it makes anyway (partners.ratelimit), and the middleware drops an
entry whose generation is not the current one and reads the key again. Order matters when filling an
entry: the generation is read *before* the key, so a change committed in between makes the entry look
old at once rather than making a stale entry look current.

Where no generation can be read (the desktop's in-process buckets, Redis unreachable), nothing is
cached and every request reads its key, as before. An entry also expires after ENTRY_SECONDS, so even a
lost bump (Redis down at that moment) stops a revoked key within a minute.

`is_active` and `status` compare `expires_at` with the clock on every request, so expiry and the end
of a rotation's overlap need no bump.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from partners.models import ApiKey
from tenants.runtime import workspace_current_or_none

logger = logging.getLogger(__name__)

MAX_ENTRIES = 4096
ENTRY_SECONDS = 60.0

_entries: OrderedDict[tuple[object, str], tuple[ApiKey, str, float]] = OrderedDict()
_lock = threading.Lock()


def _buckets():
    from partners.ratelimit import token_buckets

    return token_buckets()


def generation_read(tenant_id) -> str | None:
    """The workspace's key generation now, or None where there is none (no caching then)."""
    try:
        return _buckets().key_generation(tenant_id)
    except Exception:
        logger.warning("API key generation unreadable; keys are read from the database", exc_info=True)
        return None


def entry_get(tenant_id, digest: str) -> tuple[ApiKey, str] | None:
    now = time.monotonic()
    with _lock:
        entry = _entries.get((tenant_id, digest))
        if entry is None:
            return None
        if now - entry[2] > ENTRY_SECONDS:
            del _entries[(tenant_id, digest)]
            return None
        _entries.move_to_end((tenant_id, digest))
        return entry[0], entry[1]


def entry_put(tenant_id, digest: str, key: ApiKey, generation: str) -> None:
    with _lock:
        _entries[(tenant_id, digest)] = (key, generation, time.monotonic())
        _entries.move_to_end((tenant_id, digest))
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)


def entry_drop(tenant_id, digest: str) -> None:
    with _lock:
        _entries.pop((tenant_id, digest), None)


def entries_clear() -> None:
    with _lock:
        _entries.clear()


def _bump(tenant_id) -> None:
    try:
        _buckets().key_generation_bump(tenant_id)
    except Exception:  # entries still expire after ENTRY_SECONDS
        logger.exception("API key generation not bumped for workspace %s", tenant_id)


@receiver(post_save, sender=ApiKey, dispatch_uid="partners.keycache.saved")
@receiver(post_delete, sender=ApiKey, dispatch_uid="partners.keycache.deleted")
def _api_key_changed(sender, instance: ApiKey, **kwargs) -> None:
    tenant = workspace_current_or_none()
    if tenant is None:
        return
    # This process forgets at once; every process (this one included) sees the bump after the commit.
    entries_clear()
    tenant_id = tenant.pk
    transaction.on_commit(lambda: _bump(tenant_id))
