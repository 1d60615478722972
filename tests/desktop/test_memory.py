"""The desktop settles its memory once started: free memory malloc holds goes back to the system."""

import gc
import os
import subprocess
import sys
import threading
from pathlib import Path

from desktop import memory

REPO = Path(__file__).resolve().parents[2]


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


# saml2: pysaml2, ~26 MB with xmlschema; mozilla_django_oidc (with PyJWT and cryptography) and
# scim2_models (with pydantic): ~23 MB together, loaded with the first OpenID or SCIM request
# (core/views_on_demand.py, accounts.backends.WorkspaceOIDCBackendOnDemand, accounts.middleware).
LOADED_ON_FIRST_USE = [
    "segno",
    "xlsxwriter",
    "fpdf",
    "saml2",
    "mozilla_django_oidc",
    "jwt",
    "cryptography",
    "scim2_models",
    "pydantic",
]
PROBE = """
import os, sys, django
django.setup()
from config.asgi import application
from django.urls import resolve
resolve("/api/v1/schema"), resolve("/settings/desktop/")  # the URL confs, as the first request loads them
print(" ".join(name for name in sys.argv[1:] if name in sys.modules))
"""


def test_the_desktop_loads_heavy_libraries_only_when_they_are_used(tmp_path):
    """A fresh desktop process, its settings, models, URLs and ASGI app loaded: the libraries behind
    webhook secrets and QR codes are not (they load with their first use), nor is the
    PostgreSQL backend of django_tenants. A stray top-level import would put them back in every app."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TESSERA_", "DJANGO_"))}
    env.update(TESSERA_MODE="desktop", DJANGO_SETTINGS_MODULE="config.settings", TESSERA_DATA_DIR=str(tmp_path))
    # nor anything of the SaaS cells (their directory, their moves)
    names = [*LOADED_ON_FIRST_USE, "django_tenants.postgresql_backend.introspection", "directory", "cells"]
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *names], capture_output=True, text=True, timeout=120, env=env, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []
