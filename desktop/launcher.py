"""The desktop app's entry point: one instance per data folder, Tessera served in-process, a window.

    tessera                 the tray icon and a window with the console; the system browser without a display
    tessera --minimized     the tray only (the autostart entry): the window opens from the tray
    tessera --server-only   headless: serve until SIGTERM/SIGINT
    tessera manage ...      Django management commands on this data folder (backup, restore, ...)

Start: take the instance lock (or hand over to the running instance), check the storage (a locked,
full or damaged one is named within seconds; the recovery page offers the latest backup), migrate
(pre-migration backup kept), serve on 127.0.0.1:<kernel-picked port>, wait for /health, write the
port file, start the background jobs, open the LAN sync hub if switched on. The window runs in a
process of its own (desktop.window) while it is open; closing it leaves Tessera in the tray unless
"quit on close" is chosen or there is no tray. Stop (Quit, SIGTERM): window closed, LAN hub and
console server stopped (requests in flight finish), jobs stopped warm, SQLite WAL checkpointed, port
file removed, exit 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import logging
import os
import secrets
import signal
import sqlite3
import subprocess
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
HEALTH_WAIT = 20.0
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


class StartupFailure(Exception):
    """Tessera cannot start because of its storage (desktop.storage.StorageFailure says what)."""

    def __init__(self, failure):
        super().__init__(failure.message)
        self.failure = failure


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
        self.window = None  # desktop.launcher.WindowHost while there is a display
        self.tray = None
        self.notifier = None
        self.portfile: PortFile | None = None
        self.timings: dict[str, float] = {}
        self._jobs_thread: threading.Thread | None = None
        self._lan = LanStatus(enabled=False)
        self._lan_lock = threading.Lock()
        self._mdns = None
        self._stop_lock = threading.Lock()
        self._stopped = False
        self._port = 0
        self._recovery = None

    # --- start ----------------------------------------------------------------------------------

    def start(self) -> str:
        """Check the storage, migrate, serve, wait for /health. A storage problem is a StartupFailure
        naming it, within seconds (a lock held elsewhere is waited for 2 s)."""
        started = time.perf_counter()
        import django

        django.setup()
        self.timings["django_setup"] = time.perf_counter() - started

        from django.conf import settings

        from desktop.storage import database_check, storage_failure_of
        from desktop.upgrade import database_upgrade

        db_path = Path(settings.DATABASES["default"]["NAME"])
        failure = database_check(db_path, self.data_dir)
        if failure is not None:
            raise StartupFailure(failure)
        try:
            upgrade = database_upgrade(data_dir=self.data_dir)
        except Exception as exc:
            failure = storage_failure_of(exc, self.data_dir)
            if failure is not None:
                raise StartupFailure(failure) from exc
            raise
        if upgrade.migrated:
            logger.info("database migrated (%d migrations; backup: %s)", upgrade.migrated, upgrade.backup)
        self.timings["database"] = time.perf_counter() - started

        from config.asgi import application
        from desktop.server import ControlRoutes

        sock = self._console_socket()
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

    def _console_socket(self):
        """The console's loopback socket: a kernel-picked port, the same one again after a recovery."""
        from desktop.server import loopback_socket

        sock = loopback_socket(self._port)
        self._port = sock.getsockname()[1]
        return sock

    # --- when it cannot start: the recovery page ----------------------------------------------------

    def recovery_serve(self, failure) -> str:
        """Serve the page that says what went wrong (and offers the latest automatic backup) on the
        console's address; returns its URL."""
        from desktop.backup import backup_latest_automatic
        from desktop.recovery import RecoveryApp, RecoveryState

        state = RecoveryState(failure, backup_latest_automatic(self.data_dir), str(self.data_dir))
        self._recovery = RecoveryApp(state, on_restore=self._recovery_restore)
        sock = self._console_socket()
        self.host.start()
        self.host.serve("recovery", self._recovery, sock)
        self.host.wait_started("recovery")
        url = f"http://127.0.0.1:{self._port}/"
        logger.error("Tessera could not start: %s (recovery page at %s)", failure.message, url)
        return url

    def _recovery_restore(self, name: str) -> None:
        threading.Thread(target=self._recovery_restore_run, args=(name,), name="recovery", daemon=True).start()

    def _recovery_restore_run(self, name: str) -> None:
        from desktop.backup import BackupError
        from desktop.services import backup_restore

        state = self._recovery.state
        path = paths.backups_dir(self.data_dir) / Path(name).name
        try:
            info = backup_restore(path=path, offline=True)
        except (BackupError, OSError, sqlite3.Error) as exc:
            state.result = f"The backup could not be restored: {getattr(exc, 'message', exc)}"
            state.restoring = False
            return
        logger.info("recovery: restored %s (made %s)", info.name, info.created_at.isoformat())
        self.host.stop("recovery", timeout=5)
        try:
            url = self.start()
        except StartupFailure as exc:
            self.recovery_serve(exc.failure)
            return
        except Exception as exc:
            logger.exception("Tessera could not start after the restore")
            state.result = str(exc)
            return
        if self.window is not None:
            self.window.show(url)

    def _jobs_start(self) -> None:
        from desktop.jobs import JobRunner

        runner = JobRunner()
        try:
            runner.start()
        except Exception:
            logger.exception("background jobs could not start")
            return
        self.jobs = runner
        from desktop.tasks import backup_daily

        backup_daily.delay()  # at every start: a day-old (or no) daily backup is made now, not in an hour

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
        """A second launch (or the tray) wants the window: open it, or bring it forward."""
        window = self.window
        if window is None:
            return False
        window.open_soon()
        return True

    def _tray_refresh(self) -> None:
        tray = self.tray
        if tray is not None:
            from gi.repository import GLib

            GLib.idle_add(lambda: tray.status_refresh() and False)

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
            logger.warning(
                "LAN sync hub: port %d is in use by another program; listening on %d for now", port_taken, port
            )
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
        if self.portfile is not None:  # it served: fold the WAL in (a start that failed left nothing)
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
            conn = sqlite3.connect(name, timeout=5)
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


def _failure_say(desktop: Desktop, failure) -> None:
    from desktop.backup import backup_latest_automatic

    _say(f"Tessera could not start: {failure.message}")
    if failure.code in {"database_damaged", "database_unwritable"}:
        latest = backup_latest_automatic(desktop.data_dir)
        if latest is not None:
            _say(f"The latest automatic backup is {latest.path} (made {latest.created_at:%Y-%m-%d %H:%M} UTC).")
            _say(f"Restore it with: tessera --data-dir {desktop.data_dir} manage restore {latest.path}")


def run_headless(desktop: Desktop, *, open_browser: bool) -> int:
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    for signum in STOP_SIGNALS:
        signal.signal(signum, on_signal)
    try:
        url = desktop.start()
    except StartupFailure as exc:
        _failure_say(desktop, exc.failure)
        if not open_browser:  # --server-only: a service manager (or the person) acts on the message
            desktop.stop()
            return 1
        url = desktop.recovery_serve(exc.failure)
    except Exception as exc:
        logger.exception("Tessera could not start")
        _say(f"Tessera could not start: {exc}")
        desktop.stop()
        return 1
    _say(f"Tessera is running at {url}  (data: {desktop.data_dir})")
    if open_browser and not webbrowser.open(url):
        _say("Open that address in a browser.")
    while not stop.wait(1.0):
        pass
    desktop.stop()
    return 0


def self_command() -> list[str]:
    """How this process was started, without its own arguments: `python -m desktop` from a checkout,
    `/usr/bin/python3.11 -I /usr/lib/tessera/boot.py` installed. The window process is started so."""
    own = len(sys.argv) - 1
    return list(sys.orig_argv[: len(sys.orig_argv) - own] if own else sys.orig_argv)


class WindowHost:
    """The window's process, seen from the app: opened on demand, told what to show, closed with the app.

    Its close is either "to the tray" (the app keeps serving) or, with the quit-on-close preference or
    no tray to come back from, the end of the app (`on_quit`). All methods but `open_soon` run on the
    GLib main loop's thread."""

    def __init__(self, *, on_quit, quit_on_close, tray_available):
        self.on_quit = on_quit
        self.quit_on_close = quit_on_close
        self.tray_available = tray_available
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self.error: dict | None = None
        self.opened_at = 0.0
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def open_soon(self) -> None:
        from gi.repository import GLib

        GLib.idle_add(lambda: self.open() and False)

    def open(self) -> None:
        with self._lock:
            if self.is_open:
                self._send({"present": True})
                return
            command = [*self_command(), "window", "--asked-at", repr(time.time())]
            if self.url:
                command += ["--url", self.url]
            self.opened_at = time.perf_counter()
            self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
            logger.info("window: opened (pid %d)", self.proc.pid)
            if self.error is not None:
                self._send({"error": self.error})
            threading.Thread(target=self._watch, args=(self.proc,), name="window-watch", daemon=True).start()

    def show(self, url: str) -> None:
        self.url, self.error = url, None
        self._send({"show": url})

    def show_error(self, message: str, url: str | None) -> None:
        self.error = {"message": message, "url": url}
        self.url = url
        self._send({"error": self.error})

    def _send(self, message: dict) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None or proc.stdin is None:
            return
        try:
            proc.stdin.write(json.dumps(message) + "\n")
            proc.stdin.flush()
        except (OSError, ValueError):
            pass

    def _watch(self, proc: subprocess.Popen) -> None:
        closed = False
        for line in proc.stdout:
            try:
                closed = closed or bool(json.loads(line).get("closed"))
            except (ValueError, AttributeError):
                continue
        code = proc.wait()
        from gi.repository import GLib

        GLib.idle_add(lambda: self._ended(proc, code, closed) and False)

    def _ended(self, proc: subprocess.Popen, code: int, closed: bool) -> None:
        if proc is not self.proc:
            return
        self.proc = None
        if closed and (self.quit_on_close() or not self.tray_available()):
            logger.info("window: closed; Tessera quits")
            self.on_quit()
        elif closed:
            logger.info("window: closed to the tray (its WebKit processes end with it)")
        else:
            logger.error("window: its process ended unexpectedly (exit %s); open it again from the tray", code)

    def close(self, timeout: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()  # end of its messages: the window closes
        except OSError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()


def run_gui(desktop: Desktop, *, minimized: bool) -> int:
    """The app with a display: the tray (D-Bus, no GTK here), the window in its own process, and a
    GLib loop on the main thread for both. The server starts on a thread meanwhile."""
    from gi.repository import GLib

    from desktop.preferences import preferences_load
    from desktop.tray import Notifier, Tray

    loop = GLib.MainLoop()
    exit_code = [0]

    def quit_app():
        if loop.is_running():
            loop.quit()

    tray = Tray(on_open=lambda: desktop.window.open(), on_quit=quit_app, status_text=desktop.sync_status_text)
    on_bus = tray.start()
    desktop.tray = tray if on_bus else None
    desktop.notifier = Notifier()
    # Closing the window keeps Tessera in the tray only while a panel shows the icon (one may start
    # after Tessera, or go away): otherwise nothing would be left to open it again.
    desktop.window = WindowHost(
        on_quit=quit_app,
        quit_on_close=lambda: preferences_load().quit_on_close,
        tray_available=lambda: tray.registered,
    )
    for signum in STOP_SIGNALS:
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, lambda *_: quit_app() or GLib.SOURCE_REMOVE)

    def start_backend():
        try:
            url = desktop.start()
        except StartupFailure as exc:
            failure = exc.failure
            _failure_say(desktop, failure)
            url = desktop.recovery_serve(failure)
            GLib.idle_add(lambda: desktop.window.show_error(failure.message, url) and False)
            GLib.idle_add(lambda: desktop.window.open() and False)
            return
        except Exception as exc:
            logger.exception("Tessera could not start")
            message = str(exc) or type(exc).__name__
            exit_code[0] = 1
            GLib.idle_add(lambda: desktop.window.show_error(message, None) and False)
            GLib.idle_add(lambda: desktop.window.open() and False)
            return
        GLib.idle_add(lambda: desktop.window.show(url) and False)
        if desktop.tray is not None:
            GLib.idle_add(lambda: tray.status_refresh() and False)

    threading.Thread(target=start_backend, name="backend-start", daemon=True).start()
    if not minimized or not tray.panel_present():
        desktop.window.open()  # shows "Starting…" until the console answers
    loop.run()
    desktop.window.close()
    tray.stop()
    desktop.window = None
    desktop.stop()
    return exit_code[0]


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
