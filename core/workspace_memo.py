"""Small answers a server process remembers per workspace between API requests, so a record write does not
ask the database what almost never changes (bench/api --vs-kinto: "are there webhook endpoints?" and "which
fields identify a person?" were a query each on every write, usually answered "none").

An answer is trusted only under the workspace *generation* this request's rate limiter read in the round
trip it makes anyway (core.token_buckets; the counter that also guards tenants.hostcache and
partners.keycache), and for at most ENTRY_SECONDS. Whoever changes what an answer depends on calls
`workspace_memo_forget(tenant_id)` in that change's transaction: this process forgets everything at once,
the generation moves at once and again on commit (a request that read the generation in between may fill
an entry from rows without the change, under a generation nobody reads after the commit), and the
changing context stops filling entries (it may see its own rows, which might still roll back).

Without a generation (the desktop, Celery tasks, phone sync, the console, Redis unreachable) nothing is
remembered and every caller reads the database, as before.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import TypeVar

from django.db import transaction

from core.token_buckets import token_buckets

logger = logging.getLogger(__name__)

T = TypeVar("T")

ENTRY_SECONDS = 30.0
MAX_ENTRIES = 4096

# (workspace id, its generation) as the rate limiter read it for the current request
_generation: contextvars.ContextVar[tuple[object, str] | None] = contextvars.ContextVar(
    "tessera_workspace_generation", default=None
)
# Set once the current context changed something remembered here: it neither reads nor fills entries.
_changed: contextvars.ContextVar[bool] = contextvars.ContextVar("tessera_workspace_memo_changed", default=False)
_entries: dict[tuple[object, Hashable], tuple[object, str, float]] = {}
_lock = threading.Lock()


def workspace_generation_set(tenant_id, generation: str | None) -> None:
    """For the rate limiter: the workspace generation it has just read for this request (None: unknown),
    seen by the view it lets through; workspace_generation_clear when the request is answered."""
    _generation.set((tenant_id, generation) if generation is not None else None)
    _changed.set(False)


def workspace_generation_clear() -> None:
    """Not a token reset: under ASGI the view runs in a copy of the context the middleware's call runs in
    (a reset there fails), and where both share one (WSGI threads, the test client) the next request of
    the thread must not inherit this one's generation."""
    _generation.set(None)
    _changed.set(False)


def entries_clear() -> None:
    with _lock:
        _entries.clear()


def workspace_memo(workspace_id: Callable[[], object], key: Hashable, read: Callable[[], T]) -> T:
    """`read()`'s answer for `key` in the current workspace (`workspace_id()` names it; asked only when
    this request has a generation), remembered from an earlier request of this process when the
    workspace's generation is still the one it was read under."""
    current = _generation.get()
    if current is None or _changed.get():
        return read()
    tenant_id = workspace_id()
    if current[0] != tenant_id:
        return read()
    now = time.monotonic()
    with _lock:
        entry = _entries.get((tenant_id, key))
    if entry is not None and entry[1] == current[1] and now - entry[2] <= ENTRY_SECONDS:
        return entry[0]  # type: ignore[return-value]
    value = read()
    with _lock:
        if len(_entries) >= MAX_ENTRIES:
            _entries.clear()
        _entries[(tenant_id, key)] = (value, current[1], now)
    return value


def workspace_memo_forget(tenant_id) -> None:
    """In the transaction of a change to something remembered here (see the module's docstring)."""
    _changed.set(True)
    with _lock:
        _entries.clear()
    _bump(tenant_id)
    transaction.on_commit(lambda: _bump(tenant_id))


def _bump(tenant_id) -> None:
    try:
        token_buckets().key_generation_bump(tenant_id)
    except Exception:  # entries still expire after ENTRY_SECONDS
        logger.exception("workspace generation not bumped for workspace %s", tenant_id)
