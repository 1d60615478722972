"""When the data folder's storage fails: a locked database, a full disk, a damaged or unwritable file.

SQLite reports these as OperationalError/DatabaseError with a message; this module names them once
(`storage_failure_of`), so the API, the console, /health and the start-up checks say the same thing.
Requests that meet one get a 503 with the reason (desktop.middleware); /health probes for them.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# Below this much free space the next write may well fail half-way: /health says so before it does.
DISK_FULL_BYTES = 8 * 1024 * 1024
RECENT_SECONDS = 30.0


@dataclass(frozen=True)
class StorageFailure:
    code: str  # database_locked | disk_full | database_damaged | database_unwritable
    message: str

    @property
    def retry_after(self) -> int:
        return 5 if self.code == "database_locked" else 60


def _free_text(path: Path) -> str:
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return ""
    return f" ({free / 1e6:.1f} MB free)" if free < 1e9 else ""


def storage_failure_of(exc: BaseException, data_dir: Path | None = None) -> StorageFailure | None:
    """The storage failure behind an exception (Django's or sqlite3's), or None for anything else."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        failure = _classify(exc, data_dir)
        if failure is not None:
            return failure
        exc = exc.__cause__ or exc.__context__
    return None


def _classify(exc: BaseException, data_dir: Path | None) -> StorageFailure | None:
    where = str(data_dir) if data_dir else "Tessera's data folder"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFailure("disk_full", f"The disk holding {where} is full{_free_text(data_dir or Path('/'))}.")
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StorageFailure("database_unwritable", f"Tessera may not write to {where} ({exc.strerror}).")
    name = type(exc).__name__
    if name not in {"OperationalError", "DatabaseError", "IntegrityError"} and not isinstance(exc, sqlite3.Error):
        return None
    text = str(exc).lower()
    if "database is locked" in text or "database table is locked" in text or "database schema is locked" in text:
        return StorageFailure(
            "database_locked",
            "The database is locked by another program (a backup tool, a database browser, or another "
            "Tessera using the same files). Close it, then try again.",
        )
    if "disk is full" in text or "database or disk is full" in text:
        return StorageFailure(
            "disk_full",
            f"The disk holding {where} is full{_free_text(data_dir or Path('/'))}. Free some space, then try again.",
        )
    if "malformed" in text or "not a database" in text or "database corrupt" in text:
        return StorageFailure(
            "database_damaged",
            "The database file is damaged. Restore a backup (Tessera keeps automatic ones in its backups folder).",
        )
    if "readonly database" in text or "unable to open database" in text or "disk i/o error" in text:
        if data_dir is not None and _disk_nearly_full(data_dir):
            return StorageFailure("disk_full", f"The disk holding {where} is full{_free_text(data_dir)}.")
        return StorageFailure("database_unwritable", f"Tessera cannot write its database in {where} ({exc}).")
    return None


def _disk_nearly_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(path).free < DISK_FULL_BYTES
    except OSError:
        return False


# --- what this process has met lately (for /health) ---------------------------------------------

_recent: tuple[float, StorageFailure] | None = None
_recent_lock = threading.Lock()


def storage_failure_note(failure: StorageFailure) -> None:
    global _recent
    with _recent_lock:
        _recent = (time.monotonic(), failure)


def storage_failure_recent() -> StorageFailure | None:
    with _recent_lock:
        if _recent is None or time.monotonic() - _recent[0] > RECENT_SECONDS:
            return None
        return _recent[1]


def storage_failure_clear() -> None:
    global _recent
    with _recent_lock:
        _recent = None


# --- probes -------------------------------------------------------------------------------------


# SQLite's locks are POSIX record locks: the writer of a WAL database holds byte 120 of the -shm
# file (WAL_WRITE_LOCK), a database in exclusive locking mode the RESERVED byte of the file itself.
_WRITER_LOCKS = (("-shm", 120), ("", 0x40000001))


def locked_by_another_process(db_path: Path) -> bool:
    """Does another process hold the database's write lock now? Read from the kernel's table of
    record locks (/proc/locks), which names each lock's process: the app's own writes in flight are
    never "locked". The files are not opened: closing any descriptor of a database file would drop
    every lock this process's SQLite connections hold on it (POSIX locks belong to the process)."""
    wanted: dict[tuple[str, int], int] = {}
    for suffix, offset in _WRITER_LOCKS:
        try:
            st = os.stat(f"{db_path}{suffix}")
        except OSError:
            continue
        wanted[(f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}", st.st_ino)] = offset
    if not wanted:
        return False
    me = str(os.getpid())
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        # "3: POSIX  ADVISORY  WRITE 4821 00:2a:1234567 120 120"; a waiter's line has "->" after the number
        parts = line.split()
        if len(parts) < 8 or parts[1] != "POSIX" or parts[3] != "WRITE" or parts[4] == me:
            continue
        device, _, inode = parts[5].rpartition(":")
        offset = wanted.get((device, int(inode) if inode.isdigit() else -1))
        if offset is None:
            continue
        start, end = int(parts[6]), parts[7]
        if start <= offset and (end == "EOF" or offset <= int(end)):
            return True
    return False


def storage_probe(db_path: Path, data_dir: Path) -> StorageFailure | None:
    """Can Tessera write now? Free space, and whether another program holds the database's write lock.
    Waits for nothing and writes nothing: cheap enough for every /health."""
    if _disk_nearly_full(data_dir):
        return StorageFailure(
            "disk_full", f"The disk holding {data_dir} is full{_free_text(data_dir)}. Free some space, then try again."
        )
    if db_path.exists() and locked_by_another_process(db_path):
        return StorageFailure(
            "database_locked",
            "The database is locked by another program (a backup tool, a database browser, or another "
            "Tessera using the same files). Close it, then try again.",
        )
    return None


def database_check(db_path: Path, data_dir: Path, *, lock_timeout: float = 2.0) -> StorageFailure | None:
    """At start, before Django touches the database: is it whole, writable and not locked? Answers in
    a few seconds at most (a lock held elsewhere is waited for `lock_timeout`, not for minutes)."""
    if not db_path.exists():
        try:  # a new workspace: the folder must take a file
            probe = data_dir / f".write-check-{os.getpid()}"
            probe.write_bytes(b"\0" * 4096)
            probe.unlink()
        except OSError as exc:
            return storage_failure_of(exc, data_dir) or StorageFailure("database_unwritable", str(exc))
        return None
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=rw", uri=True, timeout=lock_timeout, isolation_level=None)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            row = conn.execute("PRAGMA quick_check(1)").fetchone()
            if not row or row[0] != "ok":
                return StorageFailure(
                    "database_damaged", f"The database file is damaged ({row[0] if row else 'no answer'})."
                )
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    except (sqlite3.Error, OSError) as exc:
        return storage_failure_of(exc, data_dir) or StorageFailure("database_unwritable", str(exc))
    if _disk_nearly_full(data_dir):
        return StorageFailure(
            "disk_full", f"The disk holding {data_dir} is full{_free_text(data_dir)}. Free some space, then try again."
        )
    return None


def health_storage() -> dict[str, dict]:
    """/health's storage check: writable now (free space, write lock), no damage met lately."""
    from django.conf import settings

    data_dir = Path(settings.DATA_DIR)
    failure = storage_probe(Path(settings.DATABASES["default"]["NAME"]), data_dir)
    if failure is None:
        recent = storage_failure_recent()
        failure = recent if recent is not None and recent.code in {"database_damaged", "database_unwritable"} else None
    if failure is None:
        return {"storage": {"ok": True}}
    return {"storage": {"ok": False, "error": failure.code, "detail": failure.message}}
