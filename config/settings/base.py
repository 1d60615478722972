"""Settings shared by both runtimes. Mode-specific files extend these lists and values."""

import os
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


SECRET_KEY = env("TESSERA_SECRET_KEY", "dev-insecure-change-me-" + "x" * 32)
DEBUG = env_bool("TESSERA_DEBUG", False)
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

# Apps with models that live in every tenant's data (a tenant schema in SaaS, the one SQLite file on
# the desktop). Order matters for management-command overrides: `tenants` comes first.
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "axes",
    "accounts",
    "rbac",
    "audit",
    "api",
    "records",
    "partners",
    "webhooks",
    "sync",
    "privacy",
    "analytics",
]
# Apps that live once per installation (the public schema in SaaS).
SHARED_APPS = [
    "tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "accounts",  # platform operators live in the public schema
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
]

MIDDLEWARE = [
    "config.middleware.RequestIdMiddleware",
    # Outside the tenant middleware too, so an unknown host's 404 on /api/ is a problem as well.
    "api.middleware.ApiProblemMiddleware",
    # the mode's tenant middleware is inserted here (index 2)
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.middleware.ContentSecurityPolicyMiddleware",
    "axes.middleware.AxesMiddleware",
    # A session from the workspace's OpenID provider ends when the provider no longer vouches for it
    # (accounts.oidc.WorkspaceSessionRefresh, loaded for such sessions only).
    "accounts.middleware.OIDCSessionRefresh",
    # Test mode: the console shows the sandbox (test-mode API keys' data) to whoever switched it on.
    "config.middleware.ConsoleModeMiddleware",
    # A service's refusal in a console view (read-only workspace, plan limit): a page saying why.
    "config.middleware.ConsoleRefusalMiddleware",
    # Last: /api/ views only, once the workspace and the caller are known (limits, usage metering).
    "partners.ratelimit.ApiRateLimitMiddleware",
]

# Who hears the domain events services emit (core.events): the one table of side effects.
# "in_transaction": run in the transaction of the change (they fail it if they fail);
# "on_commit": run once it has committed.
TESSERA_EVENT_SUBSCRIBERS = {
    "in_transaction": [
        "audit.services.event_audit",  # the hash-chained audit log
        "webhooks.outbox.event_outbox_write",  # the webhook outbox (events of webhooks.catalogue)
        # record.erased: every store holding copies of an erased record's values forgets them
        "audit.services.subject_erased_shred",  # the subject's audit vault keys (crypto-shredding)
        "webhooks.erasure.record_erased_forget",  # event bodies and the delivery log
        "api.idempotency.erased_responses_forget",  # cached idempotent responses
        "analytics.export_jobs.erased_export_files_forget",  # export files on disk (also subject/member.erased)
        "privacy.subject_index.record_index_update",  # where each person's identifiers occur (hashed)
        # record.restricted / record.restriction_lifted (GDPR art. 18): webhook deliveries about it held / sent
        "webhooks.restriction.record_restriction_deliveries",
        "sync.services.member_devices_revoke",  # a removed member's phones: revoked, sockets closed on commit
        # member.erased / subject.erased: a person's values held outside records are forgotten too
        "webhooks.erasure.subject_values_forget",  # member, invitation and device event bodies
        "records.stamps.member_erased_stamps_forget",  # who created / changed records
        "privacy.services.member_erased_stamps_forget",  # who opened requests and ran retention
        # analytics rollups: a changed record moves between cells; a collection's new fields make it stale
        "analytics.rollups.record_change_apply",
        "analytics.rollups.collection_change_apply",
    ],
    "on_commit": [
        "sync.fanout.change_publish",  # record changes to the phones connected to this workspace
        "accounts.notices.billing_admins_mail",  # payment failed / trial ending: e-mail the Admins
    ],
}

# Analytics: a collection with at least this many live records gets a rollup (analytics.rollups) built by a
# worker the first time it is queried; 0 turns that off (`manage.py analytics_rollups_build` still builds).
TESSERA_ANALYTICS_ROLLUP_MIN_RECORDS = int(os.environ.get("TESSERA_ANALYTICS_ROLLUP_MIN_RECORDS", "20000"))

# Data-subject requests: days to answer (GDPR art. 12(3): one month; CCPA: 45 days), the one
# extension each allows, and how many days before the due date Admins are reminded.
TESSERA_DSR_DUE_DAYS = {"gdpr": 30, "ccpa": 45}
TESSERA_DSR_EXTENSION_DAYS = {"gdpr": 60, "ccpa": 45}
TESSERA_DSR_REMIND_DAYS = 7
# How long an access package's signed download link works.
TESSERA_DSR_PACKAGE_LINK_SECONDS = 7 * 24 * 3600

# Sections other apps add to the compliance report (privacy.reports): callables taking
# (date_from=, date_to=) and returning {"title", "columns", "rows"}.
TESSERA_COMPLIANCE_REPORT_SECTIONS = [
    "partners.selectors.compliance_api_keys_section",
    "webhooks.selectors.compliance_subprocessors_section",
]

# Built-in dashboards of Tessera's own data (analytics.builtin, which documents the panels a provider
# returns): slug → (title, provider taking (date_from=, date_to=, tz=)). Analytics imports none of these
# apps; they offer the data, this table connects them.
TESSERA_ANALYTICS_BUILTIN_DASHBOARDS = {
    "api-usage": ("API usage", "partners.selectors.api_usage_panels"),
    "webhook-deliveries": ("Webhook deliveries", "webhooks.selectors.webhook_delivery_panels"),
    "sync-status": ("Sync status", "sync.selectors.sync_status_panels"),
}

# Logs under retention policies (privacy.retention): name → (what it is, the callable taking
# (cutoff=, dry_run=) that deletes, or counts, the entries older than the cutoff). The idempotency cache
# is not here: it keeps answers 24 hours, less than any policy.
TESSERA_LOG_RETENTION = {
    "webhook_deliveries": (
        "Webhook deliveries and their attempt log",
        "webhooks.maintenance.webhook_deliveries_expire",
    ),
    "login_attempts": ("Log-in attempts (address, IP, browser)", "accounts.services.login_attempts_expire"),
}

# What other apps hold about a member, for an access package's member.json (privacy.selectors):
# callables taking the member's id and returning {section: value}.
TESSERA_SUBJECT_DATA_SOURCES = ["sync.selectors.member_devices_for_subject"]

# Plans and billing (Stripe) are the SaaS's; the desktop edition is unlimited and shows no Billing section.
TESSERA_BILLING_ENABLED = True
# Who counts what a plan limits (billing.entitlements asks them; billing knows no app above it).
TESSERA_USAGE_COUNTERS = {
    "members": "accounts.selectors.members_count",
    "records": "records.selectors.records_live_count",
    "api_calls_month": "partners.usage.api_calls_this_month",
    "devices": "sync.selectors.devices_paired_count",
    "webhook_endpoints": "webhooks.selectors.endpoints_live_count",
    "scheduled_reports": "analytics.selectors.report_schedules_count",
}
# Relations of the workspace row loaded with it by the request's host lookup (SaaS: billing's account).
TESSERA_WORKSPACE_LOADED_WITH: list[str] = []
# Past due: full service for this many days (with a banner and e-mails), then read-only.
TESSERA_BILLING_GRACE_DAYS = int(env("TESSERA_BILLING_GRACE_DAYS", "7"))
TESSERA_BILLING_TRIAL_DAYS = int(env("TESSERA_BILLING_TRIAL_DAYS", "14"))
# The scheme of links Tessera writes into answers and e-mails (billing page URLs).
TESSERA_PUBLIC_SCHEME = env("TESSERA_PUBLIC_SCHEME", "https")
# Cells (SaaS; config/settings/saas.py): this deployment's cell, every cell's region and public site,
# and whether the global directory (directory/) is installed. The desktop is one cell with no directory.
TESSERA_CELL = ""
TESSERA_REGION = ""
TESSERA_CELLS: dict[str, dict[str, str]] = {}
TESSERA_DIRECTORY_ENABLED = False
# More /health checks (dotted callables returning {name: {"ok": bool, ...}}); the desktop adds its storage.
TESSERA_HEALTH_CHECKS: list[str] = []

ROOT_URLCONF = "config.urls_tenant"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "config.context_processors.console",
            ],
        },
    },
]

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    # Axes first: it refuses locked-out credentials before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "accounts.backends.EmailPasswordBackend",
    # OpenID Connect on each workspace's own provider (mozilla-django-oidc, accounts/oidc.py, loaded
    # on demand: accounts.backends.WorkspaceOIDCBackendOnDemand)
    "accounts.backends.WorkspaceOIDCBackendOnDemand",
    # SAML 2.0 (pysaml2, accounts/saml.py): the session's backend after an assertion is verified
    "accounts.backends.SAMLSessionBackend",
]
# mozilla-django-oidc's own settings; the provider's (endpoints, client, scopes) come from the workspace.
OIDC_USE_PKCE = True
OIDC_USE_NONCE = True
OIDC_STORE_ID_TOKEN = True  # the id_token_hint that ends the IdP's session at log-out
OIDC_AUTHENTICATION_CALLBACK_URL = "accounts:oidc_callback"
OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS = 15 * 60  # then the session is re-checked at the IdP (prompt=none)
OIDC_TIMEOUT = 10
OIDC_EXEMPT_URLS: list[str] = ["/health", "/static/"]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "console:home"
LOGOUT_REDIRECT_URL = "accounts:login"

# Sessions and CSRF cookies are host-only (no Domain attribute): a cookie set on one tenant's host is
# never sent to another's, and sessions live in the tenant's own data anyway.
SESSION_ENGINE = "core.sessions"  # Django's database sessions, lighter per log-in (core/sessions.py)
SESSION_COOKIE_NAME = "tessera_session"
SESSION_COOKIE_DOMAIN = None
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 14 * 24 * 3600
CSRF_COOKIE_NAME = "tessera_csrftoken"
CSRF_COOKIE_DOMAIN = None
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)

# The proxies in front of the servers (load balancers) that append to X-Forwarded-For: the client's
# address is the one the outermost of them saw. 0 (no proxy): the connection's own address. Every
# user of a client address (audit, rate limits, login lockouts, pairing limits, devices' last seen)
# goes through config.middleware.client_ip.
TESSERA_TRUSTED_PROXIES = int(env("TESSERA_TRUSTED_PROXIES", "0"))

# Login throttling: 5 failures for one e-mail from one address lock that pair out for 15 minutes.
AXES_CLIENT_IP_CALLABLE = "config.middleware.client_ip"  # the same address, behind proxies too
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# The log-in form posts the e-mail as "username"; counted lower-cased so "Ann@x" and "ann@x" share a count.
AXES_USERNAME_FORM_FIELD = "username"
AXES_USERNAME_CALLABLE = "accounts.backends.login_throttle_username"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_VERBOSE = False
AXES_ENABLE_ACCESS_FAILURE_LOG = False

INVITATION_TTL = timedelta(days=7)
LOGIN_HANDOFF_TTL = timedelta(minutes=2)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

EMAIL_BACKEND = env("TESSERA_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_FILE_PATH = env("TESSERA_EMAIL_FILE_PATH")  # the file backend's folder (django.core.mail.backends.filebased)
DEFAULT_FROM_EMAIL = env("TESSERA_FROM_EMAIL", "Tessera <no-reply@tessera.localhost>")
# Whether mail reaches people: pages say "we e-mailed it" only then. The desktop keeps its mail in an
# outbox folder an Admin reads in the console unless SMTP is configured (config/settings/desktop.py).
TESSERA_MAIL_DELIVERED = True
# Pairing: a function (dotted path) giving the base URL phones reach sync at when it is not the console's
# own (the desktop's LAN hub), and the page where that is turned on. None: the console's address.
TESSERA_PAIRING_BASE_URL = None
TESSERA_PAIRING_SETUP_URL = None

# Bulk writes carry up to 1,000 records.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "partners.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",  # the console's own calls, with CSRF
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "api.problems.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tessera API",
    "DESCRIPTION": (
        "Records, collections and events of one Tessera workspace, at `https://<workspace host>/api/v1/`.\n\n"
        "Authenticate with `Authorization: Bearer <api key>`: a test key (`tsk_test_…`) reads and writes the "
        "workspace's sandbox data, a live key (`tsk_live_…`) its live data; the two never mix. Errors are "
        "`application/problem+json` (RFC 9457) with a `code` (see [the errors page](/api/v1/docs/errors/)) and "
        "the `request_id`. Lists are cursor-paginated (`limit`, `starting_after`, `ending_before`). POSTs take an "
        "`Idempotency-Key`; records carry an `ETag` for `If-Match` / `If-None-Match`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The console's session works on the API too (with CSRF), but partners use keys: document those.
    "AUTHENTICATION_WHITELIST": ["partners.auth.ApiKeyAuthentication"],
    "PATH_CONVERTER_OVERRIDES": {
        "collection_slug": {"type": "string", "pattern": r"^[a-z][a-z0-9_-]{0,62}$", "example": "customers"},
        "record_id": {"type": "string", "pattern": r"^[A-Za-z0-9_-]{1,64}$", "example": "01JD3X8Q6N2ZK4F7T9W1B5C8HY"},
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.strict_request_bodies",
        "webhooks.api.schema.webhooks_section",  # last: OpenAPI 3.1 with `webhooks` (every event type)
    ],
    "ENUM_NAME_OVERRIDES": {
        "FieldType": "records.fields.FIELD_TYPES",
        **{
            f"{name.title().replace('_', '')}Object": [name]
            for name in (
                "record",
                "collection",
                "event",
                "list",
                "bulk_result",
                "webhook_endpoint",
                "webhook_endpoint_secret",
                "webhook_delivery",
            )
        },
        "AnalyticsExportStatus": ["queued", "running", "done", "failed"],
    },
    "TAGS": [
        {"name": "Collections", "description": "Typed collections of records (their fields define the records)."},
        {"name": "Records", "description": "The records of a collection: read, write, bulk upsert."},
        {"name": "Events", "description": "The change feed: every record change, in commit order."},
        {"name": "Webhook endpoints", "description": "Where Tessera sends signed webhooks; their secrets, deliveries."},
    ],
}

# API rate limits and usage metering (partners.ratelimit, partners.usage). The limits themselves are
# one table in partners/ratelimit.py; where buckets and counters live is up to each runtime.
TESSERA_RATE_LIMIT_BACKEND = "core.token_buckets.LocalTokenBuckets"
TESSERA_USAGE_BACKEND = "partners.usage.LocalUsageCounters"
TESSERA_RATE_LIMIT_SCALE = float(env("TESSERA_RATE_LIMIT_SCALE", "1"))  # multiplies every limit (load tests)
TESSERA_COUNTERS_NAMESPACE = "tessera"  # prefix of the buckets' and counters' keys
TESSERA_USAGE_FLUSH_SECONDS = 30  # in-process counters flush themselves this often
TESSERA_DEMO_CREDENTIALS_FILE = None  # seed_demo keeps its password here between runs (desktop: the data folder)
# Background exports (analytics.export_jobs) write their files here; every web process and worker must see
# the same folder (SaaS: a shared volume). Files and their signed links expire after TESSERA_EXPORT_TTL_HOURS.
TESSERA_EXPORTS_DIR = Path(env("TESSERA_EXPORTS_DIR", str(BASE_DIR / "var" / "exports")))
TESSERA_EXPORT_TTL_HOURS = int(env("TESSERA_EXPORT_TTL_HOURS", "24"))

CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BEAT_SCHEDULE = {
    "partners-usage-flush": {"task": "partners.usage_flush_all_workspaces", "schedule": 60.0},
    "partners-api-keys-expire": {"task": "partners.api_keys_expire_all_workspaces", "schedule": 300.0},
    # Idempotency keys are kept 24 h (api.idempotency); hourly keeps the table small.
    "partners-idempotency-purge": {"task": "partners.idempotency_records_purge_all_workspaces", "schedule": 3600.0},
    "webhooks-sweep": {
        "task": "webhooks.deliveries_sweep_all_workspaces",
        "schedule": float(env("TESSERA_WEBHOOK_SWEEP_SECONDS", "30")),
    },
    "webhooks-retention": {"task": "webhooks.retention_clean_all_workspaces", "schedule": 6 * 3600.0},
    # Field changes and collection deletions a worker did not finish (records.tasks).
    "records-migrations-resume": {"task": "records.collection_migrations_resume_all_workspaces", "schedule": 300.0},
    # Compliance (privacy/): retention policies applied and Admins reminded of requests falling due.
    "privacy-retention": {"task": "privacy.retention_apply_all_workspaces", "schedule": 6 * 3600.0},
    "privacy-dsr-reminders": {"task": "privacy.subject_requests_remind_all_workspaces", "schedule": 3600.0},
    # What each phone last wrote per record, kept for the merge of its next push (sync.services).
    "sync-device-writes-prune": {"task": "sync.device_writes_prune_all_workspaces", "schedule": 6 * 3600.0},
    # Scheduled reports (analytics.reports): one entry for every workspace, each sends its due reports.
    "analytics-reports-due": {
        "task": "analytics.reports_due_all_workspaces",
        "schedule": float(env("TESSERA_REPORTS_DUE_SECONDS", "60")),
    },
    # Background exports' files removed once their links have expired (analytics.export_jobs).
    "analytics-export-files-expire": {"task": "analytics.export_files_expire_all_workspaces", "schedule": 3600.0},
}

# Phone sync: days a device's last write of a record is kept as the base of its next push's merge
# (sync.services.device_writes_prune).
TESSERA_SYNC_DEVICE_WRITE_DAYS = int(env("TESSERA_SYNC_DEVICE_WRITE_DAYS", "30"))
# Sync sockets: a heartbeat frame (and the device's re-check: revoked, workspace gone or moved to another
# cell) this often; a socket streaming nothing and silent this long is closed (sync.consumers).
TESSERA_SYNC_HEARTBEAT_SECONDS = float(env("TESSERA_SYNC_HEARTBEAT_SECONDS", "25"))
TESSERA_SYNC_IDLE_SECONDS = float(env("TESSERA_SYNC_IDLE_SECONDS", "300"))

# Outbound webhooks (webhooks/). Attempt n waits RETRY_SCHEDULE[n] seconds (±10 % jitter) after the
# previous one: now, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, 24 h, 24 h — 10 attempts over 3.2 days.
TESSERA_WEBHOOK_RETRY_SCHEDULE = [0, 5, 300, 1800, 7200, 18000, 36000, 36000, 86400, 86400]
TESSERA_WEBHOOK_TIMEOUT_SECONDS = float(env("TESSERA_WEBHOOK_TIMEOUT_SECONDS", "15"))
TESSERA_WEBHOOK_DISABLE_AFTER = timedelta(days=5)  # of continuous failure: the endpoint is disabled
# A removed workspace's address is kept from new sign-ups this many days (0: released at once).
TESSERA_SLUG_HOLD_DAYS = int(env("TESSERA_SLUG_HOLD_DAYS", "90"))
# A worker holds a delivery this long per attempt; after that the sweeper hands it to another worker.
TESSERA_WEBHOOK_LOCK_SECONDS = float(env("TESSERA_WEBHOOK_LOCK_SECONDS", "60"))
# The sweeper re-enqueues deliveries due for this long (their own task should have taken them by then).
TESSERA_WEBHOOK_SWEEP_GRACE_SECONDS = float(env("TESSERA_WEBHOOK_SWEEP_GRACE_SECONDS", "30"))
# SSRF guard: hosts (names) and networks (CIDR) delivered to even though they are not public addresses.
# (core/ssrf.py: webhooks, and an identity provider's discovery, keys and metadata). The old name
# TESSERA_WEBHOOK_ALLOWED_HOSTS is still read.
_outbound = env("TESSERA_OUTBOUND_ALLOWED_HOSTS", env("TESSERA_WEBHOOK_ALLOWED_HOSTS", ""))
TESSERA_OUTBOUND_ALLOWED_HOSTS = [h.strip() for h in _outbound.split(",") if h.strip()]
TESSERA_WEBHOOK_HTTPS_REQUIRED = env_bool("TESSERA_WEBHOOK_HTTPS_REQUIRED", False)
# Wake-up flags in the cache (webhooks/tasks.py): only where every process shares it (SaaS: Redis).
TESSERA_WEBHOOK_WAKE_FLAGS = False
TESSERA_SECRETS_KEY = env("TESSERA_SECRETS_KEY")  # Fernet key(s) for secrets at rest; unset: derived from SECRET_KEY

LOG_FORMAT = env("TESSERA_LOG_FORMAT", "json")
LOG_LEVEL = env("TESSERA_LOG_LEVEL", "INFO")


def logging_config(log_format: str, level: str, log_file: Path | None = None) -> dict:
    handlers: dict = {
        "console": {"class": "logging.StreamHandler", "formatter": log_format, "filters": ["request_id"]},
    }
    if log_file is not None:
        handlers["file"] = {
            "class": "logging.handlers.RotatingFileHandler",
            "filename": str(log_file),
            "maxBytes": 5 * 1024 * 1024,
            "backupCount": 3,
            "formatter": "json",
            "filters": ["request_id"],
        }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "config.logging.RequestContextFilter"}},
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(tenant)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            },
            "text": {"format": "%(asctime)s %(levelname)s [%(request_id)s %(tenant)s] %(name)s: %(message)s"},
        },
        "handlers": handlers,
        "root": {"handlers": list(handlers), "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            "uvicorn.access": {"level": "WARNING"},
        },
    }
