"""The window: the console in a WebView, in a process of its own that lives only while it is open.

The app (server, jobs, LAN hub, tray) runs in the launcher's process; `tessera window` is started by
it when the window is wanted and exits when the window is closed, taking WebKit's processes (web
content, network) with it: closed to the tray, Tessera holds no browser engine at all. The session
survives because the WebView keeps its cookies in the data folder (webview/cookies.sqlite).

The launcher talks to the window over its stdin, one JSON object a line: {"show": url} (the console
is up), {"error": {...}} (it could not start: the page says why), {"present": true} (come forward).
End of stdin (the app quit or died) closes the window. The window says {"closed": true} on stdout
when the person closes it. Size and position are remembered in window.json.

Downloads (a backup, an export) ask where to save with the desktop's own file dialog; file fields
(restore, import) open the desktop's own file chooser. Toga's GTK backend ships in the .deb; unit
tests run this with Toga's dummy backend.
"""

from __future__ import annotations

import ctypes
import glob
import html
import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import toga
from toga.style import Pack

from desktop import paths
from desktop.version import app_version

logger = logging.getLogger("desktop.window")

APP_ID = "org.tessera.tessera"
DEFAULT_SIZE = (1200, 800)
MIN_SIZE = (640, 480)

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Tessera</title><style>
body{{font-family:system-ui,sans-serif;display:flex;align-items:center;justify-content:center;height:90vh;
color:#333;background:#f6f7f9}}main{{text-align:center;max-width:40rem}}h1{{font-weight:600}}p{{color:#666}}
@media (prefers-color-scheme:dark){{body{{background:#1d1f23;color:#eee}}p{{color:#aaa}}}}
</style></head><body><main><h1>{title}</h1><p>{body}</p></main></body></html>"""


def page(title: str, body: str) -> str:
    return _PAGE.format(title=html.escape(title), body=html.escape(body))


# --- where the window was --------------------------------------------------------------------------


@dataclass(frozen=True)
class Geometry:
    size: tuple[int, int] = DEFAULT_SIZE
    position: tuple[int, int] | None = None


def geometry_load(path: Path | None = None) -> Geometry:
    path = path or paths.data_dir() / "window.json"
    try:
        data = json.loads(path.read_text())
        width, height = (int(v) for v in data["size"])
        size = (max(width, MIN_SIZE[0]), max(height, MIN_SIZE[1]))
        position = data.get("position")
        pos = (max(int(position[0]), 0), max(int(position[1]), 0)) if position else None
        return Geometry(size, pos)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return Geometry()


def geometry_save(geometry: Geometry, path: Path | None = None) -> None:
    path = path or paths.data_dir() / "window.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"size": list(geometry.size), "position": list(geometry.position or (0, 0))}))
    os.replace(tmp, path)


# --- WebKit, set up for a small local console ------------------------------------------------------


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


def web_context_persistent(folder: Path):
    """A WebKit context whose cookies (the console's session) and storage live in `folder`, not in
    memory: a log-in outlives the window and the app. Pages are not cached (the console comes from
    this computer's own server: the "document viewer" model keeps one page, not a history)."""
    from gi.repository import WebKit2

    paths.private_folder(folder)
    manager = WebKit2.WebsiteDataManager(
        base_data_directory=str(folder / "data"), base_cache_directory=str(folder / "cache")
    )
    context = WebKit2.WebContext.new_with_website_data_manager(manager)
    context.set_cache_model(WebKit2.CacheModel.DOCUMENT_VIEWER)
    cookies = manager.get_cookie_manager()
    cookies.set_persistent_storage(str(folder / "cookies.sqlite"), WebKit2.CookiePersistentStorage.SQLITE)
    cookies.set_accept_policy(WebKit2.CookieAcceptPolicy.NO_THIRD_PARTY)
    return context


def webview_tune(native) -> None:
    """Without a GPU, WebKit's accelerated mode runs its GL on Mesa's CPU rasterizer (llvmpipe) and the
    web process keeps that rasterizer's buffers and compiled shaders (about 65 MB at idle) for nothing
    WebKit's CPU painter does not draw as well. Media, WebGL and WebAudio are off: the console has none."""
    get_settings = getattr(native, "get_settings", None)
    if get_settings is None:  # not a WebKit2.WebView (Toga's dummy backend in tests)
        return
    from gi.repository import WebKit2

    settings = get_settings()
    if not gpu_render_node_present():
        settings.set_hardware_acceleration_policy(WebKit2.HardwareAccelerationPolicy.NEVER)
    for name in ("enable-webgl", "enable-webaudio", "enable-media", "enable-media-stream", "enable-mediasource"):
        if settings.find_property(name) is not None:
            settings.set_property(name, False)
    settings.set_property("enable-developer-extras", False)


def caret_blink_off() -> None:
    """A blinking caret in a focused field repaints the page twice a second for as long as the window
    is open (about 0.6 % CPU on the log-in page, bench/desktop): the caret stays, steady."""
    try:
        from gi.repository import Gtk
    except ImportError:  # Toga's dummy backend in tests
        return
    settings = Gtk.Settings.get_default()
    if settings is not None:
        settings.set_property("gtk-cursor-blink", False)


class ConsoleWebView(toga.WebView):
    """Toga's WebView, on GTK built on the persistent context above (Toga's own uses WebKit's default,
    which keeps cookies in memory only), with the desktop's own dialogs for downloads and file fields."""

    def _create(self):
        impl_class = self.factory.WebView
        if getattr(self.factory, "__name__", "") != "toga_gtk.factory":
            return impl_class(interface=self)
        from gi.repository import WebKit2

        context = web_context_persistent(paths.webview_dir())
        dialogs = NativeDialogs()
        context.connect("download-started", dialogs.download_started)

        class PersistentWebView(impl_class):
            def create(impl):
                impl.native = WebKit2.WebView.new_with_context(context)
                impl.native.connect("load-changed", impl.gtk_on_load_changed)
                impl.native.connect("run-file-chooser", dialogs.file_chooser)
                impl.load_future = None

        return PersistentWebView(interface=self)


class NativeDialogs:
    """The desktop's own file dialogs (GTK's native chooser: the portal where there is one)."""

    def download_started(self, context, download) -> None:
        download.connect("decide-destination", self.download_destination)
        download.connect("failed", lambda d, error: logger.warning("download failed: %s", error.message))
        download.connect("finished", lambda d: logger.info("window: saved %s", d.get_destination()))

    def download_destination(self, download, suggested: str) -> bool:
        from gi.repository import GLib, Gtk

        chooser = Gtk.FileChooserNative.new("Save as", None, Gtk.FileChooserAction.SAVE, "_Save", "_Cancel")
        chooser.set_do_overwrite_confirmation(True)
        chooser.set_current_name(suggested or "download")
        downloads = GLib.get_user_special_dir(GLib.UserDirectory.DIRECTORY_DOWNLOAD) or str(Path.home())
        chooser.set_current_folder(downloads)
        if chooser.run() == Gtk.ResponseType.ACCEPT:
            download.set_destination(chooser.get_uri())
        else:
            download.cancel()
        chooser.destroy()
        return True

    def file_chooser(self, webview, request) -> bool:
        from gi.repository import Gtk

        chooser = Gtk.FileChooserNative.new("Open", None, Gtk.FileChooserAction.OPEN, "_Open", "_Cancel")
        chooser.set_select_multiple(request.get_select_multiple())
        file_filter = request.get_mime_types_filter()
        if file_filter is not None:
            chooser.add_filter(file_filter)
        if chooser.run() == Gtk.ResponseType.ACCEPT:
            request.select_files([f.get_path() for f in chooser.get_files()])
        else:
            request.cancel()
        chooser.destroy()
        return True


# --- the window app ------------------------------------------------------------------------------


class WindowApp(toga.App):
    """One main window with the console; closing it ends this process."""

    def __init__(
        self, *, url: str | None = None, icon=None, geometry_file: Path | None = None, out=None, asked_at=None
    ):
        self.asked_at = asked_at or time.time()
        self.console_url: str | None = None
        self.shown = ""
        self._initial_url = url
        self._geometry_file = geometry_file
        self._out = out if out is not None else sys.stdout
        super().__init__(
            formal_name="Tessera",
            app_id=APP_ID,
            app_name="tessera",
            icon=icon,
            version=app_version(),
            description="Your business data, on this computer.",
            author="Tessera",
        )

    def startup(self) -> None:
        caret_blink_off()
        geometry = geometry_load(self._geometry_file)
        self.main_window = toga.MainWindow(
            id="main", title="Tessera", size=geometry.size, position=geometry.position or (100, 100)
        )
        self.main_window.on_close = self._on_close
        self.webview = ConsoleWebView(style=Pack(flex=1), on_webview_load=self._loaded)
        webview_tune(getattr(self.webview._impl, "native", None))
        self.main_window.content = self.webview
        if self._initial_url:
            self.show_console(self._initial_url)
        else:
            self.show_page("Tessera", "Starting…")
        self.main_window.show()

    # --- what the launcher says --------------------------------------------------------------------

    def handle(self, message: dict) -> None:
        """One message from the launcher (main thread)."""
        if "show" in message:
            self.show_console(str(message["show"]))
        elif "error" in message:
            error = message["error"] or {}
            self.show_error(str(error.get("message") or "unknown error"), url=error.get("url"))
        elif message.get("present"):
            self.activate()
        elif message.get("quit"):
            self.request_exit()

    def show_console(self, url: str) -> None:
        self.console_url = url
        self.shown = url
        self.webview.url = url

    def _loaded(self, widget, **kwargs) -> None:
        native = getattr(widget._impl, "native", None)
        if native is not None and hasattr(native, "is_loading") and native.is_loading():
            # Toga fakes a "finished" for the WebView's first, empty page; it arrives while the
            # console's own load is still under way, and says nothing about what is on screen.
            return
        url = widget.url or ""
        if self.console_url and url.startswith(self.console_url):
            logger.info("window: console shown (%s) %.3f s after it was asked for", url, time.time() - self.asked_at)

    def show_page(self, title: str, body: str) -> None:
        """A page of the window's own (starting, errors): `shown` remembers what it says."""
        self.shown = f"{title}: {body}"
        self.webview.set_content("http://127.0.0.1/", page(title, body))

    def show_error(self, message: str, url: str | None = None) -> None:
        if url:  # the launcher serves a recovery page (it offers the latest backup): show it
            self.console_url = url
            self.shown = f"Tessera could not start: {message}"
            self.webview.url = url
            return
        self.show_page("Tessera could not start", message)

    def activate(self) -> None:
        """Bring the window forward (the tray's Open, a second launch)."""
        logger.info("window: brought forward")
        self.main_window.show()
        native = getattr(self.main_window._impl, "native", None)
        if native is not None and hasattr(native, "present"):
            native.present()

    def _on_close(self, window, **kwargs) -> bool:
        try:
            geometry_save(Geometry(tuple(window.size), tuple(window.position)), self._geometry_file)
        except (OSError, TypeError, ValueError):
            logger.warning("window: size and position not saved", exc_info=True)
        self.tell({"closed": True})
        self.request_exit()
        return False

    def tell(self, message: dict) -> None:
        try:
            self._out.write(json.dumps(message) + "\n")
            self._out.flush()
        except (OSError, ValueError):
            pass

    def listen(self, stream) -> threading.Thread:
        """Read the launcher's messages on a thread; its end (EOF) closes the window."""

        def read():
            for line in stream:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if isinstance(message, dict):
                    self.loop.call_soon_threadsafe(self.handle, message)
            self.loop.call_soon_threadsafe(self.request_exit)

        thread = threading.Thread(target=read, name="launcher-messages", daemon=True)
        thread.start()
        return thread


def window_main(argv: list[str]) -> int:
    """`tessera window [--url URL]`: the window process (started by the launcher, never by people)."""
    import argparse

    parser = argparse.ArgumentParser(prog="tessera window")
    parser.add_argument("--url")
    parser.add_argument("--asked-at", type=float, help="when the app asked for the window (time.time())")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("TESSERA_LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    os.environ.setdefault("TOGA_BACKEND", "toga_gtk")
    os.environ.setdefault("NO_AT_BRIDGE", "1")
    window_process_gl_off()
    from desktop.launcher import icon_path
    from desktop.memory import arenas_limit, settle_later

    arenas_limit()
    settle_later()  # once the page is up: collect, freeze, give freed malloc memory back

    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever the toolkit prints goes to the log, not into the launcher's messages
    app = WindowApp(url=args.url, icon=icon_path(), out=out, asked_at=args.asked_at)
    app.listen(sys.stdin)
    app.main_loop()
    return 0
