"""Checks the server and worker entry points run before serving: settings a production deployment
must not run without (config/asgi.py, config/celery_app.py)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def production_settings_check() -> None:
    """SaaS in production needs its own TESSERA_SECRETS_KEY: a key derived from SECRET_KEY means that
    whoever learns SECRET_KEY (or rotates it) also holds (or loses) every webhook and IdP secret."""
    if getattr(settings, "TESSERA_SECRETS_KEY_REQUIRED", False) and not settings.TESSERA_SECRETS_KEY:
        raise ImproperlyConfigured(
            "TESSERA_SECRETS_KEY is not set. SaaS in production encrypts webhook and identity-provider "
            "secrets with a key of its own: set TESSERA_SECRETS_KEY to a long random passphrase. An "
            "installation that ran without it so far sets TESSERA_SECRETS_KEY='<new passphrase>,<its "
            "TESSERA_SECRET_KEY>' (the first encrypts, all decrypt; README: 'Secrets at rest')."
        )
