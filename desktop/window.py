"""The native window (Toga): the console in a WebView, a tray icon (Open, sync status, Quit).

The window appears at once with a "Starting" page; the server starts on a background thread and the
WebView navigates to the console as soon as /health answers. Closing the window quits the app; the
launcher then shuts the server and jobs down. Toga's GTK backend ships in the .deb; unit tests run
this with Toga's dummy backend.
"""

from __future__ import annotations

import asyncio
import ctypes
import glob
import html
import logging
import os
import threading
from collections.abc import Callable
from typing import Protocol

import toga
from toga.style import Pack

from desktop.version import app_version

logger = logging.getLogger(__name__)

APP_ID = "org.tessera.tessera"

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Tessera</title><style>
body{{font-family:system-ui,sans-serif;display:flex;align-items:center;justify-content:center;height:90vh;
color:#333;background:#f6f7f9}}main{{text-align:center}}h1{{font-weight:600}}p{{color:#666}}
@media (prefers-color-scheme:dark){{body{{background:#1d1f23;color:#eee}}p{{color:#aaa}}}}
</style></head><body><main><h1>{title}</h1><p>{body}</p></main></body></html>"""


def page(title: str, body: str) -> str:
    return _PAGE.format(title=html.escape(title), body=html.escape(body))


class MainThreadLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """The GUI toolkit's loop policy for the main thread only; plain asyncio (uvloop) everywhere else.

    Toga's GTK backend installs GLib's policy process-wide, and that refuses non-GLib loops in any
    thread: the server's uvloop thread and asgiref's async_to_sync loops would fail."""

    def __init__(self, main_policy: asyncio.AbstractEventLoopPolicy):
        super().__init__()
        self.main_policy = main_policy

    @staticmethod
    def _main() -> bool:
        return threading.current_thread() is threading.main_thread()

    def get_event_loop(self):
        return self.main_policy.get_event_loop() if self._main() else super().get_event_loop()

    def set_event_loop(self, loop):
        if self._main():
            self.main_policy.set_event_loop(loop)
        else:
            super().set_event_loop(loop)

    def new_event_loop(self):
        return self.main_policy.new_event_loop() if self._main() else super().new_event_loop()


def gpu_render_node_present() -> bool:
    """A GPU the web engine can render with (a DRM render node). Without one, Mesa draws on the CPU."""
    return bool(glob.glob("/dev/dri/renderD*")) and os.environ.get("LIBGL_ALWAYS_SOFTWARE", "") in ("", "0", "false")


def window_process_gl_off() -> bool:
    """Without a GPU, keep GL out of the window's own process. Call before the toolkit starts.

    With hardware acceleration off (webview_tune) WebKit's web process paints on the CPU and hands the
    window shared-memory buffers, so the window's process draws no GL; yet GTK (GLX) and WebKit (EGL)
    would load Mesa's software driver and its LLVM into it (about 60 MB RSS, 25 MB PSS at idle,
    bench/desktop --gui). GTK is told to use no GL. EGL's vendor lookup (libglvnd, which reads its vendor
    list once per process) is pointed at nothing and initialised here, then the variable is put back, so
    the web process, which needs EGL, still finds Mesa. X11 only: Wayland windows take no chances."""
    if gpu_render_node_present() or os.environ.get("WAYLAND_DISPLAY") or not os.environ.get("DISPLAY"):
        return False
    os.environ.setdefault("GDK_GL", "disable")
    try:
        egl = ctypes.CDLL("libEGL.so.1")
    except OSError:
        return False
    key, saved = "__EGL_VENDOR_LIBRARY_FILENAMES", os.environ.get("__EGL_VENDOR_LIBRARY_FILENAMES")
    os.environ[key] = os.devnull
    try:
        egl.eglQueryString.restype = ctypes.c_char_p
        egl.eglQueryString.argtypes = [ctypes.c_void_p, ctypes.c_int]
        egl.eglQueryString(None, 0x3055)  # EGL_EXTENSIONS of EGL_NO_DISPLAY: glvnd loads its vendors now
    finally:
        if saved is None:
            del os.environ[key]
        else:
            os.environ[key] = saved
    return True


def webview_tune(native) -> None:
    """WebKit set for a small local console's memory. Pages are not cached. Without a GPU, WebKit's
    accelerated mode runs its GL on Mesa's CPU rasterizer (llvmpipe) and the web process keeps that
    rasterizer's buffers and compiled shaders (about 65 MB at idle, bench/desktop --gui) for nothing
    WebKit's CPU painter does not draw as well. With a GPU, WebKit keeps its default."""
    get_settings = getattr(native, "get_settings", None)
    if get_settings is None:  # not a WebKit2.WebView (Toga's dummy backend in tests)
        return
    from gi.repository import WebKit2

    # The console comes from this computer's own server: no page cache or memory cache of pages
    # already left (the "document viewer" model), so the web process holds one page, not a history.
    native.get_context().set_cache_model(WebKit2.CacheModel.DOCUMENT_VIEWER)
    if not gpu_render_node_present():
        get_settings().set_hardware_acceleration_policy(WebKit2.HardwareAccelerationPolicy.NEVER)


def loop_policy_per_thread() -> None:
    policy = asyncio.get_event_loop_policy()
    if not isinstance(policy, asyncio.DefaultEventLoopPolicy):
        asyncio.set_event_loop_policy(MainThreadLoopPolicy(policy))


class Backend(Protocol):
    """What the window needs from the launcher."""

    def start(self) -> str: ...  # blocks until the console answers; returns its URL

    def sync_status_text(self) -> str: ...


class TesseraApp(toga.App):
    def __init__(self, backend: Backend, *, icon=None, on_backend_error: Callable[[BaseException], None] | None = None):
        self.backend = backend
        self.console_url: str | None = None
        self.tray: toga.MenuStatusIcon | None = None
        self._status_command: toga.Command | None = None
        self._on_backend_error = on_backend_error
        self.backend_error: BaseException | None = None
        self.shown = ""
        super().__init__(
            formal_name="Tessera",
            app_id=APP_ID,
            app_name="tessera",
            icon=icon,
            version=app_version(),
            description="Your business data, on this computer.",
            author="Tessera",
        )

    # --- lifecycle ------------------------------------------------------------------------------

    def startup(self) -> None:
        self.main_window = toga.MainWindow(id="main", title="Tessera", size=(1200, 800))
        self.webview = toga.WebView(style=Pack(flex=1), on_webview_load=self._loaded)
        webview_tune(getattr(self.webview._impl, "native", None))  # before the first page starts WebKit
        self.show_page("Tessera", "Starting…")
        self.main_window.content = self.webview
        self.open_command = toga.Command(self._open_action, text="Open Tessera", id="tessera-open")
        self.commands.add(self.open_command)
        self.tray_install()
        self.main_window.show()
        loop_policy_per_thread()  # before any other thread makes an event loop
        threading.Thread(target=self._start_backend, name="backend-start", daemon=True).start()

    def _start_backend(self) -> None:
        try:
            url = self.backend.start()
        except BaseException as exc:  # shown in the window; the launcher logs it
            self.backend_error = exc
            self.loop.call_soon_threadsafe(self.show_error, exc)
            if self._on_backend_error is not None:
                self._on_backend_error(exc)
            return
        self.loop.call_soon_threadsafe(self.show_console, url)

    def show_console(self, url: str) -> None:
        self.console_url = url
        self.shown = url
        self.webview.url = url
        self.sync_status_refresh()

    def _loaded(self, widget, **kwargs) -> None:
        if self.console_url and (widget.url or "").startswith(self.console_url):
            logger.info("window: console shown (%s)", widget.url)

    def show_page(self, title: str, body: str) -> None:
        """A page of the window's own (starting, errors): `shown` remembers what it says."""
        self.shown = f"{title}: {body}"
        self.webview.set_content("http://127.0.0.1/", page(title, body))

    def show_error(self, exc: BaseException) -> None:
        self.show_page("Tessera could not start", str(exc) or type(exc).__name__)

    def activate(self) -> None:
        """Bring the window forward (a second launch asked for it). Main thread only."""
        logger.info("window: brought forward")
        self.main_window.show()
        native = getattr(self.main_window._impl, "native", None)
        if native is not None and hasattr(native, "present"):
            native.present()

    def _open_action(self, command, **kwargs) -> None:
        self.activate()

    # --- tray -----------------------------------------------------------------------------------

    def tray_install(self) -> None:
        """A status icon with Open, the sync status and Quit, where the desktop offers a tray."""
        try:
            tray = toga.MenuStatusIcon(id="tessera-tray", icon=self.icon, text="Tessera")
            self.status_icons.add(tray)
        except Exception as exc:  # no tray support (e.g. libxapp missing): the window is enough
            logger.info("no tray icon: %s", exc)
            self.tray = None
            return
        self.tray = tray
        commands = self.status_icons.commands
        commands.add(toga.Command(self._open_action, text="Open Tessera", group=tray, section=0, id="tray-open"))
        if toga.Command.EXIT in commands:  # Toga's standard item says "Exit"; desktops say Quit
            commands.remove(commands[toga.Command.EXIT])
        commands.add(toga.Command(self._quit_action, text="Quit Tessera", group=tray, section=9, id="tray-quit"))
        self.sync_status_refresh()

    def _quit_action(self, command, **kwargs) -> None:
        self.request_exit()

    def sync_status_refresh(self) -> None:
        if self.tray is None:
            return
        text = self.backend.sync_status_text()
        if self._status_command is not None and self._status_command.text == text:
            return
        if self._status_command is not None:
            self.status_icons.commands.remove(self._status_command)
        self._status_command = toga.Command(None, text=text, group=self.tray, section=1, enabled=False, id=None)
        self.status_icons.commands.add(self._status_command)

    @property
    def tray_texts(self) -> list[str]:
        """The tray menu's items, in order (separators left out)."""
        if self.tray is None:
            return []
        groups = (self.tray, toga.Group.COMMANDS)
        return [c.text for c in self.status_icons.commands if isinstance(c, toga.Command) and c.group in groups]


def signal_exit_install(app: TesseraApp, signals: tuple[int, ...]) -> None:
    """SIGTERM/SIGINT quit the window app through its own loop (GLib handles them natively)."""
    try:
        from gi.repository import GLib
    except ImportError:  # pragma: no cover - only the GTK backend reaches here
        return

    def on_signal(*_):
        app.request_exit()
        return GLib.SOURCE_REMOVE

    for signum in signals:
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, on_signal)
