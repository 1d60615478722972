"""The window's logic on Toga's dummy backend: starting page, console once healthy, tray, errors."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

pytestmark = pytest.mark.desktop_only


class FakeBackend:
    def __init__(self, url="http://127.0.0.1:5555/", error: Exception | None = None):
        self.url, self.error = url, error
        self.release = threading.Event()
        self.status = "LAN sync hub: off"

    def start(self) -> str:
        self.release.wait(10)
        if self.error:
            raise self.error
        return self.url

    def sync_status_text(self) -> str:
        return self.status


@pytest.fixture
def make_app(monkeypatch):
    monkeypatch.setenv("TOGA_BACKEND", "toga_dummy")
    from desktop.window import TesseraApp

    def make(backend, **kwargs):
        return TesseraApp(backend, **kwargs)

    return make


def pump(app, until, timeout=5.0):
    """Run the app's (dummy) event loop until `until()` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.loop.run_until_complete(asyncio.sleep(0.01))
        if until():
            return
    raise AssertionError("condition not reached")


def test_the_window_shows_starting_then_the_console(make_app):
    backend = FakeBackend()
    app = make_app(backend)
    webview = app.main_window.content
    assert app.main_window.title == "Tessera"
    assert app.shown == "Tessera: Starting…"
    assert app.console_url is None  # not before the server answers /health
    backend.release.set()
    pump(app, lambda: app.console_url is not None)
    assert webview.url == "http://127.0.0.1:5555/"


def test_the_tray_offers_open_sync_status_and_quit(make_app):
    backend = FakeBackend()
    app = make_app(backend)
    assert app.tray is not None
    texts = app.tray_texts
    assert "Open Tessera" in texts
    assert "LAN sync hub: off" in texts
    assert "Quit Tessera" in texts and "Exit" not in texts
    backend.status = "LAN sync hub: on at 192.168.1.20:47800"
    app.sync_status_refresh()
    assert "LAN sync hub: on at 192.168.1.20:47800" in app.tray_texts
    assert "LAN sync hub: off" not in app.tray_texts
    backend.release.set()


def test_a_server_that_cannot_start_is_explained_in_the_window(make_app):
    errors = []
    backend = FakeBackend(error=RuntimeError("The data folder is read-only"))
    app = make_app(backend, on_backend_error=errors.append)
    backend.release.set()
    pump(app, lambda: app.shown.startswith("Tessera could not start"))
    assert app.shown == "Tessera could not start: The data folder is read-only"
    assert app.console_url is None
    assert errors and str(errors[0]) == "The data folder is read-only"


def test_open_brings_the_window_back(make_app):
    backend = FakeBackend()
    app = make_app(backend)
    app.main_window.hide()
    assert not app.main_window.visible
    app.activate()
    assert app.main_window.visible
    backend.release.set()


def test_quit_in_the_tray_exits_the_app(make_app, monkeypatch):
    backend = FakeBackend()
    app = make_app(backend)
    exited = []
    monkeypatch.setattr(app, "exit", lambda: exited.append(True))
    app.status_icons.commands["tray-quit"].action()
    pump(app, lambda: exited)
    backend.release.set()
