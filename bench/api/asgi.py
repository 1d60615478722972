"""ASGI entry point of the API benchmark's server: Tessera's application, the bench settings (baseline URLs)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.api.settings")

from config.asgi import application  # noqa: F401
