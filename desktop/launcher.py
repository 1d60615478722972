"""The desktop app's entry point: one instance per data folder, Tessera served in-process, a window.

    tessera                 window (Toga WebView) with the console; the system browser without a display
    tessera --server-only   headless: serve until SIGTERM/SIGINT
    tessera manage ...      Django management commands on this data folder (backup, restore, ...)

Start: take the instance lock (or hand over to the running instance), migrate (pre-migration backup
kept), serve on 127.0.0.1:<kernel-picked port>, wait for /health, write the port file, start the
background jobs, open the LAN sync hub if switched on. Stop (window closed, Quit, SIGTERM): LAN hub
and console server stopped (requests in flight finish), jobs stopped warm, SQLite WAL checkpointed,
port file removed, exit 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import os
import secrets
import signal
import sqlite3
import sys
import threading
import time
import webbrowser
from pathlib import Path

from desktop import paths
from desktop.instance import (
    InstanceLock,
    PortFile,
    health_ok,
    instance_activate,
    instance_find,
    portfile_remove,
    portfile_write,
)
from desktop.memory import arenas_limit, settle_later
from desktop.runtime import LanStatus, runtime_set
from desktop.version import app_version

logger = logging.getLogger("desktop.launcher")

HANDOVER_WAIT = 30.0
HEALTH_WAIT = 60.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def environment_defaults() -> None:
    os.environ.setdefault("TESSERA_MODE", "desktop")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("TESSERA_LOG_FORMAT", "text")
    os.environ.setdefault("TESSERA_LOG_LEVEL", "WARNING")


def icon_path() -> Path | None:
    base = Path(__file__).resolve().parent / "resources" / "tessera"
    return base if base.with_name("tessera-256.png").exists() or base.with_suffix(".png").exists() else None


def gui_available() -> bool:
    """A display to draw on and Toga's GTK backend to draw with (the .deb ships it)."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    return importlib.util.find_spec("toga_gtk") is not None


def wait_health(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if health_ok(port, timeout=2.0):
            return True
        time.sleep(0.02)
    return False


class Desktop:
    """The running app: server, jobs, LAN hub, port file. The console reaches it via desktop.runtime."""

    def __init__(self, *, data_dir: Path, lock: InstanceLock, gui: bool = False, jobs: bool = True):
        from desktop.server import ServerHost

        self.data_dir = data_dir
        self.lock = lock
        self.gui = gui
        self.jobs_enabled = jobs
        self.host = ServerHost()
        self.jobs = None
        self.window = None
        self.notifier = None
        self.portfile: PortFile | None = None
        self.timings: dict[str, float] = {}
        self._jobs_thread: threading.Thread | None = None
        self._lan = LanStatus(enabled=False)
        self._lan_lock = threading.Lock()
        self._mdns = None
        self._stop_lock = threading.Lock()
        self._stopped = False

    # --- start ----------------------------------------------------------------------------------

    def start(self) -> str:
        started = time.perf_counter()
        import django

        django.setup()
        self.timings["django_setup"] = time.perf_counter() - started

        from desktop.upgrade import database_upgrade

        upgrade = database_upgrade(data_dir=self.data_dir)
        if upgrade.migrated:
            logger.info("database migrated (%d migrations; backup: %s)", upgrade.migrated, upgrade.backup)
        self.timings["database"] = time.perf_counter() - started

        from config.asgi import application
        from desktop.server import ControlRoutes, loopback_socket

        sock = loopback_socket()
        port = sock.getsockname()[1]
        token = secrets.token_urlsafe(24)
        self.host.start()
        self.host.serve("console", ControlRoutes(application, token=token, on_activate=self._activate), sock)
        self.host.wait_started("console")
        if not wait_health(port, HEALTH_WAIT):
            raise RuntimeError(f"The console did not answer /health within {HEALTH_WAIT:.0f} s.")
        self.timings["health"] = time.perf_counter() - started
        if self._stopped:  # quit while starting (window closed, SIGTERM): leave no port file behind
            raise RuntimeError("Tessera was asked to quit while starting.")
        self.portfile = PortFile(pid=os.getpid(), port=port, token=token, gui=self.gui, version=app_version())
        portfile_write(paths.port_file(self.data_dir), self.portfile)
        runtime_set(self)

        from desktop.preferences import preferences_load

        if preferences_load().lan_hub_enabled:
            self.lan_hub_apply(True)
        if self.jobs_enabled:
            # After /health: the console does not wait for the worker to come up.
            self._jobs_thread = threading.Thread(target=self._jobs_start, name="jobs-start", daemon=True)
            self._jobs_thread.start()
        logger.info("Tessera %s serving %s (data: %s)", app_version(), self.portfile.url, self.data_dir)
        settle_later()
        return self.portfile.url

    def _jobs_start(self) -> None:
        from desktop.jobs import JobRunner

        runner = JobRunner()
        try:
            runner.start()
        except Exception:
            logger.exception("background jobs could not start")
            return
        self.jobs = runner

    # --- runtime (what the console and the tray see) ---------------------------------------------

    def jobs_running(self) -> bool:
        return self.jobs is not None and self.jobs.running

    def lan_status(self) -> LanStatus:
        return self._lan

    def sync_status_text(self) -> str:
        lan = self._lan
        if lan.listening and lan.port_taken:
            return f"LAN sync hub: on at {lan.address}:{lan.port} (port {lan.port_taken} is in use)"
        if lan.listening:
            return f"LAN sync hub: on at {lan.address}:{lan.port}"
        if lan.enabled:
            return f"LAN sync hub: not listening ({lan.error or 'starting'})"
        return "LAN sync hub: off"

    def notify(self, title: str, body: str) -> None:
        if self.notifier is not None:
            self.notifier.notify(title, body)

    def _activate(self) -> bool:
        window = self.window
        if window is None:
            return False
        window.loop.call_soon_threadsafe(window.activate)
        return True

    def _tray_refresh(self) -> None:
        window = self.window
        if window is not None:
            window.loop.call_soon_threadsafe(window.sync_status_refresh)

    # --- LAN sync hub ---------------------------------------------------------------------------

    def lan_hub_apply(self, enabled: bool) -> LanStatus:
        with self._lan_lock:
            if enabled and not self._lan.listening:
                self._lan = self._lan_start()
                if self._lan.port_taken:
                    self.notify(
                        "LAN sync hub on another port",
                        f"Port {self._lan.port_taken} is in use by another program: phones paired with it cannot "
                        f"reach this computer until it is free. Listening on {self._lan.port} for now.",
                    )
                elif self._lan.listening:
                    self.notify("LAN sync hub on", f"Phones on this network can sync at {self._lan.address}.")
            elif not enabled and self._lan.enabled:
                self._lan_stop()
                self.notify("LAN sync hub off", "Phones sync again when it is switched on.")
            elif not enabled:
                self._lan = LanStatus(enabled=False)
        self._tray_refresh()
        return self._lan

    def _lan_start(self) -> LanStatus:
        from django.conf import settings

        from config.asgi import application
        from desktop.lan import LanOnlySync, MdnsAdvertiser, lan_address, lan_socket
        from desktop.preferences import preferences_load, preferences_save

        address = lan_address()
        if not address:
            return LanStatus(enabled=True, error="this computer has no network address")
        prefs = preferences_load()
        try:
            sock = lan_socket(address, prefs.lan_port)
        except OSError as exc:
            return LanStatus(enabled=True, address=address, error=str(exc))
        port = sock.getsockname()[1]
        port_taken = prefs.lan_port if prefs.lan_port and port != prefs.lan_port else None
        if not prefs.lan_port:  # the first port the hub gets is the one phones are paired with
            prefs.lan_port = port
            preferences_save(prefs)
        elif port_taken:
            logger.warning("LAN sync hub: port %d is in use by another program; listening on %d for now", port_taken, port)
        if address not in settings.ALLOWED_HOSTS:
            settings.ALLOWED_HOSTS.append(address)
        self.host.serve("lan", LanOnlySync(application), sock)
        try:
            self.host.wait_started("lan", timeout=10)
        except Exception as exc:
            return LanStatus(enabled=True, address=address, error=str(exc))
        self._mdns = MdnsAdvertiser(
            address=address, port=port, name=self._workspace_name(), properties={"version": app_version()}
        )
        threading.Thread(target=self._mdns_start, args=(self._mdns,), name="mdns", daemon=True).start()
        return LanStatus(enabled=True, listening=True, address=address, port=port, port_taken=port_taken)

    def _mdns_start(self, advertiser) -> None:
        if advertiser.start():
            with self._lan_lock:
                if self._mdns is advertiser and self._lan.listening:
                    self._lan = dataclasses.replace(self._lan, advertised=True)

    def _lan_stop(self) -> None:
        mdns, self._mdns = self._mdns, None
        if mdns is not None:
            mdns.stop()
        self.host.stop("lan", timeout=5)
        self._lan = LanStatus(enabled=False)

    def _workspace_name(self) -> str:
        try:
            from tenants.services import tenant_single_ensure

            return f"Tessera {tenant_single_ensure().name}"
        except Exception:
            return "Tessera"

    # --- stop -----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Idempotent. Order matters: nothing new comes in, work in hand finishes, then the database."""
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
        began = time.perf_counter()
        runtime_set(None)
        with self._lan_lock:
            if self._lan.enabled or self._mdns is not None:
                self._lan_stop()
        self.host.stop("console", timeout=10)
        self.timings["stop_server"] = time.perf_counter() - began
        if self._jobs_thread is not None:
            self._jobs_thread.join(60)
        if self.jobs is not None:
            self.jobs.stop(timeout=60)
        self.timings["stop_jobs"] = time.perf_counter() - began
        self.host.shutdown()
        self._database_checkpoint()
        portfile_remove(paths.port_file(self.data_dir), pid=os.getpid())
        self.lock.release()
        self.timings["stop"] = time.perf_counter() - began
        logger.info("Tessera stopped (%s)", ", ".join(f"{k} {v:.2f} s" for k, v in self.timings.items()))

    def _database_checkpoint(self) -> None:
        """Fold the WAL into the database file and truncate it: the data folder is whole at rest."""
        try:
            from django.conf import settings
            from django.db import connections

            connections.close_all()
            name = settings.DATABASES["default"]["NAME"]
        except Exception:
            return
        try:
            conn = sqlite3.connect(name, timeout=20)
            try:
                busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                conn.close()
            if busy:
                logger.warning("WAL checkpoint incomplete: the database was busy")
        except sqlite3.Error:
            logger.exception("WAL checkpoint failed")


# --- entry points -----------------------------------------------------------------------------------


def _hand_over(data_dir: Path, *, server_only: bool) -> int:
    """Another process holds the lock: find it through the port file and show it."""
    deadline = time.monotonic() + HANDOVER_WAIT
    info = None
    while time.monotonic() < deadline:
        info = instance_find(paths.port_file(data_dir))
        if info is not None:
            break
        time.sleep(0.2)
    if info is None:
        _say(f"Another Tessera holds {data_dir} but does not answer. Quit it, or wait and try again.")
        return 1
    _say(f"Tessera is already running at {info.url}")
    if not server_only and not instance_activate(info):
        webbrowser.open(info.url)
    return 0


def run_headless(desktop: Desktop, *, open_browser: bool) -> int:
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    for signum in STOP_SIGNALS:
        signal.signal(signum, on_signal)
    try:
        url = desktop.start()
    except Exception:
        logger.exception("Tessera could not start")
        desktop.stop()
        return 1
    _say(f"Tessera is running at {url}  (data: {desktop.data_dir})")
    if open_browser and not webbrowser.open(url):
        _say("Open that address in a browser.")
    while not stop.wait(1.0):
        pass
    desktop.stop()
    return 0


def run_window(desktop: Desktop) -> int:
    os.environ.setdefault("TOGA_BACKEND", "toga_gtk")
    os.environ.setdefault("NO_AT_BRIDGE", "1")
    from desktop.notify import Notifier
    from desktop.window import TesseraApp, signal_exit_install, window_process_gl_off

    window_process_gl_off()
    app = TesseraApp(desktop, icon=icon_path())
    desktop.window = app
    desktop.notifier = Notifier()
    signal_exit_install(app, STOP_SIGNALS)
    app.main_loop()
    desktop.window = None
    desktop.stop()
    return 0 if app.backend_error is None else 1


NEEDS_WORKSPACE = {"backup", "jobs_probe"}  # commands that read a workspace and must not create one


def manage(argv: list[str]) -> int:
    environment_defaults()
    data_dir = paths.data_dir()
    if argv[:1] and argv[0] in NEEDS_WORKSPACE and not paths.database_file(data_dir).is_file():
        _say(
            f"There is no Tessera workspace in {data_dir} yet. Start Tessera once to create one, "
            "or restore a backup there with `tessera manage restore FILE`."
        )
        return 1
    from django.core.management import execute_from_command_line

    execute_from_command_line(["tessera manage", *argv])
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tessera",
        description="Tessera desktop: your business data on this computer. `tessera manage --help` for admin commands.",
    )
    parser.add_argument("--server-only", action="store_true", help="serve without a window or browser (headless)")
    parser.add_argument("--minimized", action="store_true", help="start in the tray without opening the window")
    parser.add_argument("--data-dir", help="keep the data in this folder instead of your user data folder")
    parser.add_argument("--version", action="version", version=f"Tessera {app_version()}")
    return parser.parse_args(argv)


def _split_command(argv: list[str]) -> tuple[list[str], str | None, list[str]]:
    """`tessera [options] [manage|window] [args]`: the options before a subcommand are tessera's own."""
    for index, arg in enumerate(argv):
        if arg in SUBCOMMANDS and (index == 0 or argv[index - 1] != "--data-dir"):
            return argv[:index], arg, argv[index + 1 :]
    return argv, None, []


SUBCOMMANDS = ("manage", "window")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.umask(0o077)  # everything the app writes (database, logs, queue, backups) is this user's only
    options, command, rest = _split_command(argv)
    args = parse_args(options)
    if args.data_dir:
        os.environ["TESSERA_DATA_DIR"] = str(Path(args.data_dir).expanduser().resolve())
    if command == "manage":
        return manage(rest)
    if command == "window":
        from desktop.window import window_main

        return window_main(rest)
    environment_defaults()
    arenas_limit()
    data_dir = paths.private_folder(paths.data_dir())
    paths.private_files(data_dir)
    lock = InstanceLock(paths.instance_lock(data_dir))
    if not lock.acquire():
        return _hand_over(data_dir, server_only=args.server_only)
    gui = not args.server_only and gui_available()
    desktop = Desktop(data_dir=data_dir, lock=lock, gui=gui)
    if gui:
        return run_gui(desktop, minimized=args.minimized)
    return run_headless(desktop, open_browser=not args.server_only)
