"""The heartbeat's device re-check, for all of a server process's sockets at once.

Every socket re-checks its device on each heartbeat (revoked since? its user deactivated or demoted?)
and marks it seen. Done per socket, 1,000 connected phones cost about 80 database transactions a
second and 14 % of a core doing nothing (bench/sync, idle phase). Instead the heartbeats of all
sockets fall on the same ticks of the process's clock (`until_next_tick`), and the re-checks asked
for within a few milliseconds of each other are answered together: one read (and at most one write)
per workspace per tick, on one database thread trip.

Revocation does not wait for this: revoking closes the device's sockets at once through the channel
layer (sync.fanout.device_disconnect). The re-check catches what does not go through it.
"""

from __future__ import annotations

import asyncio
import time
import weakref

from channels.db import database_sync_to_async

from sync.models import Device
from sync.services import devices_recheck
from tenants.runtime import workspace_context, workspace_still_serving

GATHER_SECONDS = 0.05  # how long re-checks asked for are gathered before the database is asked


def until_next_tick(period: float) -> float:
    """Seconds until the process clock's next multiple of `period`: heartbeats of different sockets
    with the same period wake together."""
    return period - (time.monotonic() % period) or period


class DeviceRechecks:
    """One per event loop: gathers the sockets' re-checks and answers them per workspace."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.pending: dict[str, tuple[object, dict[int, list[tuple[asyncio.Future, str | None]]]]] = {}
        self.flush: asyncio.Task | None = None
        self.queries = 0  # database trips made (tests and figures)

    def recheck(self, tenant, device_id: int, ip: str | None) -> asyncio.Future:
        """A future of the device as it is now, or None once it may no longer sync."""
        future = self.loop.create_future()
        _tenant, devices = self.pending.setdefault(tenant.schema_name, (tenant, {}))
        devices.setdefault(device_id, []).append((future, ip))
        if self.flush is None:
            self.flush = self.loop.create_task(self._flush())
        return future

    async def _flush(self) -> None:
        await asyncio.sleep(GATHER_SECONDS)
        pending, self.pending, self.flush = self.pending, {}, None
        for tenant, devices in pending.values():
            seen_from = {pk: waiters[-1][1] for pk, waiters in devices.items()}
            try:
                self.queries += 1
                fresh = await database_sync_to_async(_recheck_in)(tenant, seen_from)
            except Exception as exc:  # each socket logs it and carries on, as with its own query
                for waiters in devices.values():
                    for future, _ip in waiters:
                        if not future.done():
                            future.set_exception(exc)
                continue
            for pk, waiters in devices.items():
                for future, _ip in waiters:
                    if not future.done():
                        future.set_result(fresh.get(pk))


def _recheck_in(tenant, seen_from: dict[int, str | None]) -> dict[int, Device | None]:
    # The socket's workspace first: deleted or suspended, every device is off — and after a deletion
    # the same schema name may hold another business that signed up with the freed slug.
    if not workspace_still_serving(tenant):
        return {}
    with workspace_context(tenant):
        return devices_recheck(seen_from)


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, DeviceRechecks] = weakref.WeakKeyDictionary()


def rechecks_for(loop: asyncio.AbstractEventLoop) -> DeviceRechecks:
    rechecks = _per_loop.get(loop)
    if rechecks is None:
        rechecks = _per_loop[loop] = DeviceRechecks(loop)
    return rechecks
