"""Desktop runtime: one business on SQLite (WAL) in the user's data folder; no servers to run."""

import secrets
from pathlib import Path

from config.settings.base import *  # noqa: F403
from config.settings.base import MIDDLEWARE, SHARED_APPS, TENANT_APPS, env, env_bool, logging_config
from core.data_folder import data_dir, database_file, files_dir, log_dir, private_folder, queue_dir

TESSERA_MULTI_TENANT = False
TESSERA_BILLING_ENABLED = False  # one business on its own computer: no plans, no Billing section
DATA_DIR = data_dir()  # platformdirs' user data folder; TESSERA_DATA_DIR overrides
private_folder(DATA_DIR)  # the business's data and logs: this user's only (0700)
LOG_DIR = log_dir()
private_folder(LOG_DIR)
MEDIA_ROOT = files_dir(DATA_DIR)
TESSERA_EXPORTS_DIR = Path(env("TESSERA_EXPORTS_DIR", str(MEDIA_ROOT / "exports")))  # the business's own files
TESSERA_DEMO_CREDENTIALS_FILE = DATA_DIR / "demo-password"  # seed_demo keeps the demo password here


# Mail: a desktop has no mail server. Unless one is configured (TESSERA_EMAIL_BACKEND, e.g. Django's
# SMTP backend with EMAIL_HOST...), messages are written to the data folder's outbox, which an Admin
# reads on the Desktop page (desktop.views.outbox); pages then show links instead of saying "we
# e-mailed it", and an owner who forgot the password runs `tessera manage reset-password EMAIL`.
TESSERA_MAIL_DELIVERED = bool(env("TESSERA_EMAIL_BACKEND"))
if not TESSERA_MAIL_DELIVERED:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(DATA_DIR / "outbox")
EMAIL_HOST = env("TESSERA_EMAIL_HOST", "localhost")
EMAIL_PORT = int(env("TESSERA_EMAIL_PORT", "25"))
EMAIL_HOST_USER = env("TESSERA_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("TESSERA_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("TESSERA_EMAIL_USE_TLS")


# Phones pair through the LAN hub when it listens (the console itself stays on 127.0.0.1).
TESSERA_PAIRING_BASE_URL = "desktop.selectors.lan_pairing_base_url"
TESSERA_PAIRING_SETUP_URL = "/settings/desktop/#lan-hub"


def _persistent_secret_key() -> str:
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env("TESSERA_SECRET_KEY") or _persistent_secret_key()

INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS] + ["channels", "desktop"]
ROOT_URLCONF = "config.urls_desktop"  # the workspace URLs plus the Desktop page (backups, LAN hub)
TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
TESSERA_TENANCY = "tenants.backends.SingleTenancy"

MIDDLEWARE = [
    MIDDLEWARE[0],
    # A locked database, a full disk: a 503 with the reason (API problem, console page), never a 500.
    "desktop.middleware.StorageFailureMiddleware",
    MIDDLEWARE[1],
    "tenants.middleware.SingleTenantMiddleware",
    "accounts.middleware.FirstRunSetupMiddleware",
    *MIDDLEWARE[2:],
]
# /health also says whether Tessera can write now (free space, the database's write lock).
TESSERA_HEALTH_CHECKS = ["desktop.storage.health_storage"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(database_file(DATA_DIR)),
        "OPTIONS": {
            # IMMEDIATE takes the write lock when a transaction starts, so two writers queue on
            # busy_timeout instead of failing with "database is locked" on lock upgrade. The app's own
            # writes take milliseconds; a lock held longer is another program's, and the request
            # gets a 503 saying so after 5 s instead of waiting 20 s for a 500.
            "transaction_mode": "IMMEDIATE",
            "timeout": 5,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        },
    }
}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
TESSERA_HEALTH_CHECK_REDIS = False
# One process serves the one business: rate-limit buckets and usage counters in its memory.
TESSERA_RATE_LIMIT_BACKEND = "core.token_buckets.LocalTokenBuckets"
TESSERA_USAGE_BACKEND = "partners.usage.LocalUsageCounters"
TESSERA_METRICS_ENABLED = False

# No Redis on the desktop: the same Celery tasks on a broker kept in files of the data folder
# (kombu's filesystem transport, made crash-safe in desktop.broker), run by the app's own worker and
# beat (desktop.jobs). A job queued before quitting runs after the next start.
CELERY_BROKER_URL = "filesystem://localhost/"
CELERY_BROKER_TRANSPORT = "desktop.broker:Transport"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "data_folder_in": str(queue_dir(DATA_DIR)),
    "data_folder_out": str(queue_dir(DATA_DIR)),
    "control_folder": str(DATA_DIR / "queue-control"),
    "polling_interval": 0.5,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    **globals().get("CELERY_BEAT_SCHEDULE", {}),
    "desktop-heartbeat": {"task": "desktop.heartbeat", "schedule": 60.0},
    # Hourly look, a backup when the last daily one is a day old (a computer is not always on at 3 am).
    "desktop-backup-daily": {"task": "desktop.backup_daily", "schedule": 3600.0},
    "desktop-notices": {"task": "desktop.notices", "schedule": 60.0},
}
TESSERA_CELERY_APP_CLASS = "celery.Celery"
# Webhooks (and the identity provider) of a desktop are the business's own machines too: its LAN and
# this computer are allowed unless TESSERA_OUTBOUND_ALLOWED_HOSTS says otherwise (cloud metadata
# addresses never are).
TESSERA_OUTBOUND_ALLOWED_HOSTS = [
    h.strip()
    for h in env(
        "TESSERA_OUTBOUND_ALLOWED_HOSTS",
        env(
            "TESSERA_WEBHOOK_ALLOWED_HOSTS",
            "localhost,127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7",
        ),
    ).split(",")
    if h.strip()
]

CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

LOGGING = logging_config(env("TESSERA_LOG_FORMAT", "text"), env("TESSERA_LOG_LEVEL", "INFO"), LOG_DIR / "tessera.log")
