"""This machine's desktop preferences (not the workspace's data): a small JSON file in the data folder.

Kept out of the database on purpose: whether this computer is a LAN hub, and on which port, belongs
to the machine, so restoring a backup made elsewhere does not turn it on here.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from desktop import paths


@dataclass
class Preferences:
    lan_hub_enabled: bool = False
    lan_port: int = 0
    # Closing the window keeps Tessera running in the tray (phones, jobs, LAN hub); or quits it.
    quit_on_close: bool = False
    # How many automatic daily backups are kept.
    backups_keep: int = 7
    # Where to look for a newer .deb (a JSON feed, signed); empty: never looks.
    update_feed_url: str = ""


def preferences_load(path: Path | None = None) -> Preferences:
    path = path or paths.preferences_file()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return Preferences()
    known = {f.name for f in fields(Preferences)}
    prefs = Preferences(**{k: v for k, v in data.items() if k in known})
    try:
        prefs.lan_hub_enabled = bool(prefs.lan_hub_enabled)
        prefs.lan_port = int(prefs.lan_port or 0)
        prefs.quit_on_close = bool(prefs.quit_on_close)
        prefs.backups_keep = min(max(int(prefs.backups_keep), 1), 365)
        prefs.update_feed_url = str(prefs.update_feed_url or "")
    except (TypeError, ValueError):
        return Preferences()
    return prefs


def preferences_save(prefs: Preferences, path: Path | None = None) -> None:
    path = path or paths.preferences_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(prefs), indent=2))
    os.replace(tmp, path)
