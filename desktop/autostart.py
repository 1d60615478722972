"""Start at log-in: an XDG autostart entry (~/.config/autostart/org.tessera.tessera.desktop) that starts
Tessera in the tray (`--minimized`), so phones sync and jobs run before anyone opens the window."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

ENTRY_NAME = "org.tessera.tessera.desktop"
INSTALLED = "/usr/bin/tessera"


def autostart_file() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "autostart" / ENTRY_NAME


def autostart_enabled() -> bool:
    try:
        text = autostart_file().read_text()
    except OSError:
        return False
    return "Hidden=true" not in text and "X-GNOME-Autostart-enabled=false" not in text


def _command() -> list[str]:
    if any(arg.startswith("/usr/lib/tessera/") for arg in sys.orig_argv) and Path(INSTALLED).exists():
        command = [INSTALLED]
    else:  # from a checkout: the same interpreter and module
        from desktop.launcher import self_command

        command = [arg for arg in self_command() if arg not in {"--server-only", "--minimized"}]
    data_dir = os.environ.get("TESSERA_DATA_DIR")
    if data_dir:
        command += ["--data-dir", data_dir]
    return [*command, "--minimized"]


def autostart_set(enabled: bool) -> Path:
    path = autostart_file()
    if not enabled:
        path.unlink(missing_ok=True)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    exec_line = " ".join(shlex.quote(arg) for arg in _command())
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=Tessera\n"
        "Comment=Keeps Tessera running in the tray: phone sync, jobs and backups\n"
        f"Exec={exec_line}\n"
        "Icon=org.tessera.tessera\n"
        "Terminal=false\n"
        "X-GNOME-Autostart-enabled=true\n"
    )
    os.replace(tmp, path)
    return path
