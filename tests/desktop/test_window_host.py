"""The app's side of the window: a close by the person goes to the tray, or quits with the
quit-on-close preference or when there is no tray to come back from; a crash never quits the app."""

from __future__ import annotations

import pytest

from desktop.launcher import WindowHost

pytestmark = pytest.mark.desktop_only


class Proc:
    def poll(self):
        return 0


@pytest.mark.parametrize(
    ("quit_on_close", "tray", "closed", "quits"),
    [
        (False, True, True, False),  # the default: closed to the tray
        (True, True, True, True),  # the preference
        (False, False, True, True),  # no tray host: nothing to come back from
        (False, True, False, False),  # the window's process died: the app keeps serving
    ],
)
def test_what_closing_the_window_does(quit_on_close, tray, closed, quits):
    quit_calls = []
    host = WindowHost(
        on_quit=lambda: quit_calls.append(1), quit_on_close=lambda: quit_on_close, tray_available=lambda: tray
    )
    proc = Proc()
    host.proc = proc
    host._ended(proc, 0, closed)
    assert bool(quit_calls) is quits and host.proc is None
