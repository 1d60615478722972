"""The running desktop app, as the console sees it: set by the launcher, None under plain uvicorn.

Views ask here whether a change (the LAN hub switch) can take effect now or at the next start, and
what the tray shows; the launcher registers itself at start and clears it at exit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class LanStatus:
    enabled: bool
    listening: bool = False
    address: str | None = None
    port: int | None = None
    advertised: bool = False
    error: str = ""
    # The remembered port was taken by another program: listening elsewhere for now, the remembered
    # one kept (paired phones know it) and tried again at the next start.
    port_taken: int | None = None

    @property
    def sync_url(self) -> str | None:
        if not (self.listening and self.address and self.port):
            return None
        return f"ws://{self.address}:{self.port}/sync/v1/"


class DesktopRuntime(Protocol):
    def lan_hub_apply(self, enabled: bool) -> LanStatus: ...

    def lan_status(self) -> LanStatus: ...

    def jobs_running(self) -> bool: ...

    def notify(self, title: str, body: str) -> None: ...


_current: DesktopRuntime | None = None


def runtime_current() -> DesktopRuntime | None:
    return _current


def runtime_set(runtime: DesktopRuntime | None) -> None:
    global _current
    _current = runtime
