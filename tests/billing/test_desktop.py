"""The desktop edition has no billing: no billing models installed, nothing of Stripe's imported, and
every limit answers "unlimited" (tests/billing/test_entitlements.py checks the writes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.desktop_only

PROBE = """
import sys, django
django.setup()
from django.apps import apps
from config.asgi import application
from django.urls import resolve
resolve("/api/v1/schema"), resolve("/records/")  # the URL confs, as the first request loads them
import records.services, partners.usage, sync.services, accounts.services, webhooks.services  # every limit check
print("installed:", apps.is_installed("billing"))
print("loaded:", " ".join(name for name in sys.argv[1:] if name in sys.modules))
"""


def test_desktop_installs_no_billing_models_and_imports_nothing_of_stripe(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TESSERA_", "DJANGO_"))}
    env.update(TESSERA_MODE="desktop", DJANGO_SETTINGS_MODULE="config.settings", TESSERA_DATA_DIR=str(tmp_path))
    names = ["stripe", "billing.models", "billing.stripe_api", "billing.webhooks", "billing.metering"]
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *names], capture_output=True, text=True, timeout=120, env=env, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["installed: False", "loaded: "]
