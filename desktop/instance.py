"""One running Tessera per data folder: the instance lock, the port file, and finding the live one.

The lock (flock on `tessera.lock`, held for the life of the process) decides who runs; the port file
(`tessera.port`, JSON, written atomically) tells a second launch where the running one listens and
the token that lets it ask the running one to show its window. Imports no Django.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class PortFile:
    pid: int
    port: int
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    gui: bool = False
    version: str = ""
    started_at: float = field(default_factory=time.time)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


def portfile_write(path: Path, info: PortFile) -> None:
    """Write atomically (temporary file in the same folder, fsync, rename): readers never see half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, json.dumps(asdict(info)).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def portfile_read(path: Path) -> PortFile | None:
    try:
        data = json.loads(path.read_text())
        return PortFile(
            pid=int(data["pid"]),
            port=int(data["port"]),
            token=str(data.get("token", "")),
            gui=bool(data.get("gui", False)),
            version=str(data.get("version", "")),
            started_at=float(data.get("started_at", 0)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def portfile_remove(path: Path, *, pid: int) -> bool:
    """Remove the port file if it is this process's (a newer instance's file is left alone)."""
    info = portfile_read(path)
    if info is None or info.pid != pid:
        return False
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return True


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def health_ok(port: int, timeout: float = 1.0) -> bool:
    try:
        with _NO_PROXY.open(f"http://127.0.0.1:{port}/health", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def instance_find(path: Path) -> PortFile | None:
    """The running instance described by the port file, if its process lives and /health answers."""
    info = portfile_read(path)
    if info is None or not pid_alive(info.pid) or not health_ok(info.port):
        return None
    return info


def instance_activate(info: PortFile, timeout: float = 2.0) -> bool:
    """Ask a running instance to show its window. False when it has none (server-only, no display)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{info.port}/_desktop/activate",
        method="POST",
        headers={"X-Tessera-Token": info.token},
        data=b"",
    )
    try:
        with _NO_PROXY.open(request, timeout=timeout) as response:
            return response.status == 204
    except (urllib.error.URLError, OSError, ValueError):
        return False


class InstanceLock:
    """An exclusive, non-blocking flock held while this process runs; the kernel drops it if we die."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None
