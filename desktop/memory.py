"""Keeping the desktop app's resident memory small: one business, one process, mostly idle.

glibc gives every thread that allocates its own malloc arena (up to 8 per core), each keeping its
freed memory; the app runs a dozen threads (server, worker, beat, GTK, WebKit's) that allocate a
little each. Two arenas are plenty for its load. Once started, the app settles: garbage collected,
the surviving start-up objects frozen out of later collections (they live as long as the app), and
the free memory malloc still holds given back to the system. Other C libraries: nothing happens.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import threading

M_ARENA_MAX = -8  # glibc's malloc.h
SETTLE_AFTER = 5.0  # seconds after the console answers: the window and the worker are up by then


@functools.cache
def _glibc():
    """The C library the process runs on, if it is glibc (the one with malloc_trim and mallopt)."""
    try:
        libc = ctypes.CDLL(None)
        libc.malloc_trim, libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def arenas_limit(arenas: int = 2) -> bool:
    """Before the app starts its threads: how many malloc arenas they share."""
    libc = _glibc()
    return bool(libc and libc.mallopt(M_ARENA_MAX, arenas))


def settle() -> None:
    gc.collect()
    gc.freeze()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def settle_later(delay: float = SETTLE_AFTER) -> threading.Timer:
    timer = threading.Timer(delay, settle)
    timer.name = "memory-settle"
    timer.daemon = True
    timer.start()
    return timer
