"""What a SaaS deployment's settings do with the environment it is given, read from a process of its
own (settings are read once, at start): HSTS behind HTTPS, where forms may post, and refusing to
start without a secrets key of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.saas_only

ROOT = Path(__file__).resolve().parents[2]
PRINT = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'hsts': s.SECURE_HSTS_SECONDS, 'sub': s.SECURE_HSTS_INCLUDE_SUBDOMAINS, "
    "'csp': s.CONTENT_SECURITY_POLICY}))"
)


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_", "TESSERA_SECRETS_KEY"))}
    return {**env, "DJANGO_SETTINGS_MODULE": "config.settings", "TESSERA_MODE": "saas", "TESSERA_DEBUG": "0", **extra}


def _run(code: str, **extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_env(**extra), capture_output=True, text=True, timeout=60
    )


def test_https_deployments_send_hsts_and_forms_post_only_to_our_own_hosts():
    done = _run(
        PRINT,
        TESSERA_SECURE_COOKIES="1",
        TESSERA_BASE_DOMAIN="tessera.example",
        TESSERA_PUBLIC_URL="https://tessera.example",
        TESSERA_SECRETS_KEY="k",
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["hsts"] >= 31536000 and found["sub"] is True
    form_action = next(d for d in found["csp"].split(";") if d.strip().startswith("form-action"))
    assert form_action.split()[1:] == [  # no bare http: / https:
        "'self'",
        "https://*.tessera.example",
        "https://checkout.stripe.com",
        "https://billing.stripe.com",
    ]


def test_server_and_worker_refuse_to_start_without_a_secrets_key():
    refused = _run("import config.asgi")
    assert refused.returncode != 0 and "TESSERA_SECRETS_KEY is not set" in refused.stderr
    assert _run("import config.asgi", TESSERA_SECRETS_KEY="a-long-random-passphrase").returncode == 0
    worker = _run(
        "from config.celery_app import app; from celery.signals import worker_init; worker_init.send(sender=None)"
    )
    assert worker.returncode != 0 and "TESSERA_SECRETS_KEY is not set" in worker.stderr
