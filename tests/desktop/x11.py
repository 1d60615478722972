"""Closing a window as a window manager asks it to (WM_DELETE_WINDOW), through Xlib with ctypes: the
tests' X server (Xvfb) runs no window manager, so nothing else would send the request a close
button sends. The model leaves out the window manager itself (decorations, focus)."""

from __future__ import annotations

import ctypes

_x = ctypes.CDLL("libX11.so.6")
_x.XOpenDisplay.restype = ctypes.c_void_p
_x.XOpenDisplay.argtypes = [ctypes.c_char_p]
_x.XDefaultRootWindow.restype = ctypes.c_ulong
_x.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
_x.XInternAtom.restype = ctypes.c_ulong
_x.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
_x.XQueryTree.argtypes = [
    ctypes.c_void_p,
    ctypes.c_ulong,
    ctypes.POINTER(ctypes.c_ulong),
    ctypes.POINTER(ctypes.c_ulong),
    ctypes.POINTER(ctypes.POINTER(ctypes.c_ulong)),
    ctypes.POINTER(ctypes.c_uint),
]
_x.XFetchName.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(ctypes.c_char_p)]
_x.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
_x.XFlush.argtypes = [ctypes.c_void_p]
_x.XCloseDisplay.argtypes = [ctypes.c_void_p]
_x.XFree.argtypes = [ctypes.c_void_p]
CLIENT_MESSAGE = 33


class _ClientMessage(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("serial", ctypes.c_ulong),
        ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("window", ctypes.c_ulong),
        ("message_type", ctypes.c_ulong),
        ("format", ctypes.c_int),
        ("data", ctypes.c_long * 5),
    ]


class _Event(ctypes.Union):
    _fields_ = [("client", _ClientMessage), ("pad", ctypes.c_long * 24)]


def _windows(dpy, window) -> list[int]:
    root, parent = ctypes.c_ulong(), ctypes.c_ulong()
    children, count = ctypes.POINTER(ctypes.c_ulong)(), ctypes.c_uint()
    if not _x.XQueryTree(
        dpy, window, ctypes.byref(root), ctypes.byref(parent), ctypes.byref(children), ctypes.byref(count)
    ):
        return []
    found = [children[i] for i in range(count.value)]
    if children:
        _x.XFree(children)
    return found + [w for child in list(found) for w in _windows(dpy, child)]


def window_close(display: str, title: str) -> int:
    """Ask every top-level window named `title` to close; returns how many were asked."""
    dpy = _x.XOpenDisplay(display.encode())
    if not dpy:
        raise OSError(f"cannot open display {display}")
    try:
        protocols = _x.XInternAtom(dpy, b"WM_PROTOCOLS", 0)
        delete = _x.XInternAtom(dpy, b"WM_DELETE_WINDOW", 0)
        asked = 0
        for window in _windows(dpy, _x.XDefaultRootWindow(dpy)):
            name = ctypes.c_char_p()
            if _x.XFetchName(dpy, window, ctypes.byref(name)) and name.value == title.encode():
                event = _Event()
                event.client.type = CLIENT_MESSAGE
                event.client.window = window
                event.client.message_type = protocols
                event.client.format = 32
                event.client.data[0] = delete
                event.client.data[1] = 0  # CurrentTime
                _x.XSendEvent(dpy, window, 0, 0, ctypes.byref(event))
                asked += 1
            if name.value is not None:
                _x.XFree(name)
        _x.XFlush(dpy)
        return asked
    finally:
        _x.XCloseDisplay(dpy)
