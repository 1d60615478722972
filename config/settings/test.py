"""Test tweaks on top of the mode chosen by TESSERA_MODE (the suite runs once per mode)."""

from config.settings import *  # noqa: F403
from config.settings import TESSERA_MODE

# Argon2 is the production hasher (asserted in tests/accounts); MD5 keeps the suite fast.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
LOGGING = {"version": 1, "disable_existing_loggers": False}

if TESSERA_MODE == "desktop":
    from config.settings import DATA_DIR, DATABASES

    # A file (not :memory:) so real-server tests in a subprocess see the same database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
