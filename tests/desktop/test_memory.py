"""The desktop settles its memory once started: free memory malloc holds goes back to the system."""

import gc
import threading
from pathlib import Path

from desktop import memory


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_settle_gives_freed_memory_back_to_the_system():
    """40 MB allocated by a thread and mostly freed, with survivors scattered through it so malloc
    cannot simply shrink its heap: settling returns the free pages in between."""
    kept: list[bytes] = []

    def churn():
        blocks = [bytes(4096) + bytes([i % 251]) for i in range(10_000)]
        kept.extend(blocks[::64])  # one in 64 survives, spread over the whole range
        del blocks

    thread = threading.Thread(target=churn)
    thread.start()
    thread.join()
    gc.collect()
    before = _rss_mb()
    try:
        memory.settle()
        after = _rss_mb()
    finally:
        gc.unfreeze()
    assert len(kept) == 157
    assert before - after > 20, (before, after)


def test_settle_later_runs_once_in_the_background():
    timer = memory.settle_later(0.01)
    timer.join(5)
    gc.unfreeze()
    assert not timer.is_alive() and timer.daemon and timer.name == "memory-settle"
