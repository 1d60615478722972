"""Where the desktop edition keeps its things, inside the data folder (core.data_folder). Imports no
Django: the launcher needs it first."""

from __future__ import annotations

from pathlib import Path

from core.data_folder import data_dir, database_file, files_dir, log_dir, private_folder, queue_dir

__all__ = ["data_dir", "database_file", "files_dir", "log_dir", "private_folder", "queue_dir"]


def webview_dir(base: Path | None = None) -> Path:
    """The window's own web data: the console's cookies (so a session outlives the window), caches."""
    return (base or data_dir()) / "webview"


def private_files(base: Path) -> None:
    """Tighten files an older version (or a `manage` run before the umask was set) left readable by all."""
    for name in ("tessera.sqlite3", "tessera.sqlite3-wal", "tessera.sqlite3-shm", "secret_key", "desktop.json"):
        path = base / name
        try:
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
        except OSError:
            pass


def port_file(base: Path | None = None) -> Path:
    return (base or data_dir()) / "tessera.port"


def instance_lock(base: Path | None = None) -> Path:
    return (base or data_dir()) / "tessera.lock"


def preferences_file(base: Path | None = None) -> Path:
    return (base or data_dir()) / "desktop.json"


def backups_dir(base: Path | None = None) -> Path:
    return (base or data_dir()) / "backups"
