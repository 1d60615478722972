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
