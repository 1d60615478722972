"""The window process's logic on Toga's dummy backend: starting page, the console once the app says
so, its error page, messages from the launcher, and the size and position kept across openings."""

from __future__ import annotations

import asyncio
import io
import json
import time

import pytest

pytestmark = pytest.mark.desktop_only


@pytest.fixture
def make_window(monkeypatch, tmp_path):
    monkeypatch.setenv("TOGA_BACKEND", "toga_dummy")
    monkeypatch.setenv("TESSERA_DATA_DIR", str(tmp_path))
    from desktop.window import WindowApp

    def make(**kwargs):
        out = io.StringIO()
        app = WindowApp(geometry_file=tmp_path / "window.json", out=out, **kwargs)
        return app, out

    return make


def pump(app, until, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.loop.run_until_complete(asyncio.sleep(0.01))
        if until():
            return
    raise AssertionError("condition not reached")


def test_the_window_shows_starting_then_the_console(make_window):
    app, _ = make_window()
    assert app.main_window.title == "Tessera"
    assert app.shown == "Tessera: Starting…"
    app.handle({"show": "http://127.0.0.1:5555/"})
    assert app.webview.url == "http://127.0.0.1:5555/"
    assert app.console_url == "http://127.0.0.1:5555/"


def test_reopened_from_the_tray_it_goes_straight_to_the_console(make_window):
    app, _ = make_window(url="http://127.0.0.1:5555/")
    assert app.webview.url == "http://127.0.0.1:5555/" and app.shown == "http://127.0.0.1:5555/"


def test_a_start_failure_is_explained_or_its_recovery_page_shown(make_window):
    app, _ = make_window()
    app.handle({"error": {"message": "The data folder is read-only"}})
    assert app.shown == "Tessera could not start: The data folder is read-only"
    app.handle({"error": {"message": "The database file is damaged.", "url": "http://127.0.0.1:5556/"}})
    assert app.webview.url == "http://127.0.0.1:5556/"


def test_messages_arrive_from_the_launcher_and_its_end_closes_the_window(make_window, monkeypatch):
    app, _ = make_window()
    exited = []
    monkeypatch.setattr(app, "request_exit", lambda: exited.append(True))
    stream = io.StringIO(json.dumps({"show": "http://127.0.0.1:5557/"}) + "\nnot json\n")
    app.listen(stream)
    pump(app, lambda: app.console_url == "http://127.0.0.1:5557/" and exited)


def test_closing_remembers_size_and_position_and_tells_the_launcher(make_window, tmp_path, monkeypatch):
    app, out = make_window()
    monkeypatch.setattr(app, "request_exit", lambda: None)
    app.main_window.size = (900, 700)
    app.main_window.position = (40, 60)
    app._on_close(app.main_window)
    assert json.loads(out.getvalue()) == {"closed": True}
    saved = json.loads((tmp_path / "window.json").read_text())
    assert saved == {"size": [900, 700], "position": [40, 60]}
    again, _ = make_window()
    assert tuple(again.main_window.size) == (900, 700) and tuple(again.main_window.position) == (40, 60)


def test_a_broken_or_tiny_geometry_file_gives_a_usable_window(tmp_path):
    from desktop.window import DEFAULT_SIZE, MIN_SIZE, geometry_load

    path = tmp_path / "window.json"
    path.write_text("{not json")
    assert geometry_load(path).size == DEFAULT_SIZE
    path.write_text(json.dumps({"size": [10, 10], "position": [-500, 20]}))
    geometry = geometry_load(path)
    assert geometry.size == MIN_SIZE and geometry.position == (0, 20)
