"""Where the desktop edition keeps its things, inside the data folder (core.data_folder). Imports no
Django: the launcher needs it first."""

from __future__ import annotations

from pathlib import Path

from core.data_folder import data_dir, files_dir, log_dir, queue_dir

__all__ = ["data_dir", "files_dir", "log_dir", "queue_dir"]


def port_file(base: Path | None = None) -> Path:
    return (base or data_dir()) / "tessera.port"


def instance_lock(base: Path | None = None) -> Path:
    return (base or data_dir()) / "tessera.lock"


def preferences_file(base: Path | None = None) -> Path:
    return (base or data_dir()) / "desktop.json"


def backups_dir(base: Path | None = None) -> Path:
    return (base or data_dir()) / "backups"
