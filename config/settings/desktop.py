"""Desktop runtime: one business on SQLite (WAL) in the user's data folder; no servers to run."""

import secrets
from pathlib import Path

import platformdirs

from config.settings.base import *  # noqa: F403
from config.settings.base import MIDDLEWARE, SHARED_APPS, TENANT_APPS, env, logging_config

TESSERA_MULTI_TENANT = False
DATA_DIR = Path(env("TESSERA_DATA_DIR") or platformdirs.user_data_dir("Tessera", "Tessera"))
DATA_DIR.mkdir(parents=True, exist_ok=True)
LOG_DIR = Path(platformdirs.user_log_dir("Tessera", "Tessera")) if not env("TESSERA_DATA_DIR") else DATA_DIR / "logs"
LOG_DIR.mkdir(parents=True, exist_ok=True)


def _persistent_secret_key() -> str:
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env("TESSERA_SECRET_KEY") or _persistent_secret_key()

INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS] + ["channels"]
TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
TESSERA_TENANCY = "tenants.backends.SingleTenancy"

MIDDLEWARE = [MIDDLEWARE[0], "tenants.middleware.SingleTenantMiddleware", *MIDDLEWARE[1:]]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": env("TESSERA_SQLITE_PATH") or str(DATA_DIR / "tessera.sqlite3"),
        "OPTIONS": {
            # IMMEDIATE takes the write lock when a transaction starts, so two writers queue on
            # busy_timeout instead of failing with "database is locked" on lock upgrade.
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        },
    }
}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
TESSERA_HEALTH_CHECK_REDIS = False
TESSERA_METRICS_ENABLED = False

# No Redis on the desktop: the same Celery tasks on a broker kept in files of the data folder.
CELERY_BROKER_URL = "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "data_folder_in": str(DATA_DIR / "queue"),
    "data_folder_out": str(DATA_DIR / "queue"),
    "processed_folder": str(DATA_DIR / "queue-processed"),
}
TESSERA_CELERY_APP_CLASS = "celery.Celery"

CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

LOGGING = logging_config(env("TESSERA_LOG_FORMAT", "text"), env("TESSERA_LOG_LEVEL", "INFO"), LOG_DIR / "tessera.log")
