"""Test tweaks on top of the mode chosen by TESSERA_MODE (the suite runs once per mode)."""

import os

from config.settings import *  # noqa: F403
from config.settings import SECRET_KEY, TESSERA_MODE

# Argon2 is the production hasher (asserted in tests/accounts); MD5 keeps the suite fast.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
LOGGING = {"version": 1, "disable_existing_loggers": False}

if TESSERA_MODE == "desktop":
    from config.settings import DATA_DIR, DATABASES

    # A file (not :memory:) so real-server tests in a subprocess see the same database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}

# API rate limits stay on (every API test sees the headers) but far above what a test sends;
# tests/partners runs them at their real size (TESSERA_RATE_LIMIT_SCALE = 1).
TESSERA_RATE_LIMIT_SCALE = 1000
# In-process usage counters flush only when a test says so (never in the middle of a query-count check).
TESSERA_USAGE_FLUSH_SECONDS = 10**9
# Webhook tests deliver to receivers on 127.0.0.1 over plain HTTP; tests/webhooks/test_ssrf.py checks the
# guard with an empty allow-list.
TESSERA_WEBHOOK_HTTPS_REQUIRED = False
TESSERA_OUTBOUND_ALLOWED_HOSTS = []

# Servers and workers the tests start as processes of their own run the production settings, which
# refuse to start SaaS without a secrets key (config.startup). They get this process's SECRET_KEY as
# the passphrase: the very key this process derives from it, so secrets written here decrypt there
# (this process keeps the derived key: tests/webhooks/test_signing.py rotates from it).
os.environ.setdefault("TESSERA_SECRETS_KEY", SECRET_KEY)
TESSERA_SECRETS_KEY_REQUIRED = False
