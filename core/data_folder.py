"""Where an installation that keeps its data on this computer (the desktop edition) puts it: the
platform's user data folder, or TESSERA_DATA_DIR. Imports no Django: the launcher needs it first."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "Tessera"


def data_dir() -> Path:
    """Database, files, queue, backups, port file. TESSERA_DATA_DIR overrides the platform folder."""
    override = os.environ.get("TESSERA_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, APP_NAME))


def log_dir() -> Path:
    """The platform's log folder, or `logs` inside an overridden data folder (keeps it self-contained)."""
    if os.environ.get("TESSERA_DATA_DIR"):
        return data_dir() / "logs"
    return Path(platformdirs.user_log_dir(APP_NAME, APP_NAME))


def files_dir(base: Path | None = None) -> Path:
    return (base or data_dir()) / "files"


def queue_dir(base: Path | None = None) -> Path:
    return (base or data_dir()) / "queue"


def database_file(base: Path | None = None) -> Path:
    """The workspace's SQLite database (TESSERA_SQLITE_PATH overrides: tests hand in a copy)."""
    override = os.environ.get("TESSERA_SQLITE_PATH")
    return Path(override) if override else (base or data_dir()) / "tessera.sqlite3"


def private_folder(path: Path) -> Path:
    """Create (or tighten) a folder only this user can enter: the business's data, its logs (0700)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        if path.stat().st_mode & 0o077:
            path.chmod(0o700)
    except OSError:
        pass
    return path
