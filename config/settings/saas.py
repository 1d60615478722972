"""SaaS runtime: PostgreSQL with a schema per tenant (django-tenants), Redis, Celery workers."""

import json
from urllib.parse import urlsplit

import dj_database_url

from config.settings.base import *  # noqa: F403
from config.settings.base import (
    CELERY_BEAT_SCHEDULE,
    CONTENT_SECURITY_POLICY,
    DEBUG,
    MIDDLEWARE,
    SHARED_APPS,
    TENANT_APPS,
    env,
    env_bool,
    logging_config,
)

TESSERA_MULTI_TENANT = True
TESSERA_BASE_DOMAIN = env("TESSERA_BASE_DOMAIN", "tessera.localhost")
ALLOWED_HOSTS = [TESSERA_BASE_DOMAIN, "." + TESSERA_BASE_DOMAIN, "localhost", "127.0.0.1", "[::1]"]

SHARED_APPS = ["django_tenants", *SHARED_APPS, "billing", "django_prometheus"]  # billing: the public schema
TENANT_APPS = list(TENANT_APPS)
# `directory`: the cells' global directory, in a database of its own (not a schema: see DATABASES).
# `cells`: moving workspaces between cells, the operator's view of them.
INSTALLED_APPS = [
    *SHARED_APPS,
    *[app for app in TENANT_APPS if app not in SHARED_APPS],
    "channels",
    "directory",
    "cells",
]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_URLCONF = "config.urls_public"
TESSERA_TEMPLATE_SCHEMA = "tenant_template"
# Issue `SET search_path` once per connection and schema switch, not before every query (django-tenants
# forgets it on set_tenant/close/rollback). Halves the statements of a request: bench/api.
TENANT_LIMIT_SET_CALLS = True
# `migrate_schemas` skips schemas whose applied migrations already match the code (tenants/migration.py).
# TESSERA_STOCK_MIGRATE_EXECUTOR=1 leaves django-tenants' own executor in place (the benchmark's baseline).
if not env_bool("TESSERA_STOCK_MIGRATE_EXECUTOR", False):
    GET_EXECUTOR_FUNCTION = "tenants.migration.get_executor"
# The directory's router first: it alone decides for the `directory` database and app.
DATABASE_ROUTERS = ["directory.routers.DirectoryRouter", "django_tenants.routers.TenantSyncRouter"]
# Loaded with the workspace by the request's host lookup (tenants.middleware): its billing account, so
# the limit checks of a request read the standing without a query of their own (billing.middleware).
TESSERA_WORKSPACE_LOADED_WITH = ["billing_account"]
TESSERA_TENANCY = "tenants.backends.SchemaTenancy"

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    *MIDDLEWARE[:2],
    # Wraps the tenant middleware: a workspace of another cell is sent there (directory lookup).
    "config.middleware.WorkspaceCellMiddleware",
    "tenants.middleware.TenantHostMiddleware",
    # Each workspace's billing standing read once per request, shared by every limit check in it.
    "billing.middleware.StandingPerRequest",
    *MIDDLEWARE[2:],
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

DATABASES = {
    "default": dj_database_url.parse(
        env("TESSERA_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tessera"),
        engine="django_tenants.postgresql_backend",
        conn_max_age=int(env("TESSERA_DB_CONN_MAX_AGE", "0")),
    )
}
# The cells' directory (directory/): workspace slug -> cell and region, shared by every cell of the
# installation. Its own database (TESSERA_DIRECTORY_DATABASE_URL); by default the cell's database
# server's `<name>_directory`, so one cell alone runs as before plus one small database. Migrated with
# `manage.py migrate --database=directory`.
_directory_url = env("TESSERA_DIRECTORY_DATABASE_URL", "")
_directory_default = DATABASES["default"]["NAME"] + "_directory"
DATABASES["directory"] = (
    dj_database_url.parse(
        _directory_url,
        engine="django_tenants.postgresql_backend",  # `migrate` is django-tenants' (the public schema)
        conn_max_age=int(env("TESSERA_DB_CONN_MAX_AGE", "0")),
    )
    if _directory_url
    else {**DATABASES["default"], "NAME": _directory_default, "OPTIONS": dict(DATABASES["default"].get("OPTIONS", {}))}
)
DATABASES["directory"].setdefault("OPTIONS", {})["connect_timeout"] = 5
DATABASES["directory"]["TEST"] = {"NAME": "test_" + DATABASES["directory"]["NAME"]}

# Each server process keeps a pool of PostgreSQL connections (psycopg_pool, Django's OPTIONS["pool"]):
# under ASGI every request runs in a thread of its own, so persistent connections (CONN_MAX_AGE) are
# never reused, and opening one costs about half of a small API read (bench/api). A request borrows
# a connection and gives it back when it ends; django-tenants sets the search_path again on the next
# cursor (its close() forgets the schema it set). TESSERA_DB_POOL_MAX_SIZE=0 turns the pool off, as does
# TESSERA_DB_CONN_MAX_AGE > 0 (one persistent connection per thread, e.g. behind PgBouncer). Size the
# pools so that processes x max size stays under PostgreSQL's max_connections.
TESSERA_DB_POOL_MAX_SIZE = int(env("TESSERA_DB_POOL_MAX_SIZE", "10"))
if TESSERA_DB_POOL_MAX_SIZE > 0 and DATABASES["default"]["CONN_MAX_AGE"] == 0:
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": TESSERA_DB_POOL_MAX_SIZE,
        "timeout": float(env("TESSERA_DB_POOL_TIMEOUT", "10")),  # waiting for a free connection
        "max_idle": 300,
    }

REDIS_URL = env("TESSERA_REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
    }
}
TESSERA_HEALTH_CHECK_REDIS = True
# Rate-limit buckets and usage counters shared by every server process (partners/).
TESSERA_RATE_LIMIT_BACKEND = "core.token_buckets.RedisTokenBuckets"
TESSERA_USAGE_BACKEND = "partners.usage.RedisUsageCounters"
TESSERA_METRICS_ENABLED = True
# Scrapers send `Authorization: Bearer <token>`; without a token /metrics stays off (config.views.metrics).
TESSERA_METRICS_TOKEN = env("TESSERA_METRICS_TOKEN", "")

# Production SaaS delivers webhooks over HTTPS only (TESSERA_DEBUG or the variable turns it off).
TESSERA_WEBHOOK_HTTPS_REQUIRED = env_bool("TESSERA_WEBHOOK_HTTPS_REQUIRED", not env_bool("TESSERA_DEBUG", False))
# Web processes and workers share the Redis cache: a commit sends a delivery task only when none is on
# its way to that endpoint (webhooks/tasks.py), so one task carries many deliveries under load.
TESSERA_WEBHOOK_WAKE_FLAGS = env_bool("TESSERA_WEBHOOK_WAKE_FLAGS", True)

# Stripe (billing/): the secret API key, the webhook endpoints' signing secrets (comma-separated: during
# a rotation both the old and the new one verify), and the API's base URL (tests point it at a fake).
STRIPE_SECRET_KEY = env("TESSERA_STRIPE_SECRET_KEY", "")
STRIPE_WEBHOOK_SECRETS = [s.strip() for s in env("TESSERA_STRIPE_WEBHOOK_SECRETS", "").split(",") if s.strip()]
STRIPE_API_BASE = env("TESSERA_STRIPE_API_BASE", "")  # empty: Stripe's own
STRIPE_WEBHOOK_TOLERANCE_SECONDS = 300
CELERY_BEAT_SCHEDULE = {
    **CELERY_BEAT_SCHEDULE,
    # API calls above the included amount: the ledger's unreported entries as meter events (billing.metering).
    "billing-usage-report": {"task": "billing.usage_ledger_report", "schedule": 300.0},
    # Stripe events whose processing task was lost (the broker was away when they arrived).
    "billing-stripe-events-sweep": {"task": "billing.stripe_events_sweep", "schedule": 120.0},
    # Subscriptions whose events never came (endpoint down beyond Stripe's retries): read from Stripe again.
    "billing-subscriptions-resync": {"task": "billing.subscriptions_resync", "schedule": 3600.0},
}

CELERY_BROKER_URL = env("TESSERA_CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
TESSERA_CELERY_APP_CLASS = "tenant_schemas_celery.app.CeleryApp"
CELERY_TASK_TENANT_CACHE_SECONDS = 30  # tenant_schemas_celery: look a task's tenant up once in 30 s, not per task

# channels-redis's Pub/Sub layer: a change to a group is one PUBLISH that each server process receives
# once and hands to its own sockets, where the list-based layer pops one message per socket per change
# (three round trips each). Messages are at most once; sync notices a missed one (sync/fanout.py).
# The socket timeout stays above the layer's own waits (redis-py 8 defaults it to 5 s).
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        # The prefix keeps servers that share one Redis apart (e.g. the test suite's live servers).
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
            "prefix": env("TESSERA_CHANNELS_PREFIX", "asgi"),
        },
    }
}

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env_bool("TESSERA_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Behind HTTPS (secure cookies), browsers must never try plain HTTP again: workspaces are subdomains.
SECURE_HSTS_SECONDS = int(env("TESSERA_HSTS_SECONDS", "31536000")) if SESSION_COOKIE_SECURE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# Servers and workers refuse to start in production without a secrets key of their own (config.startup).
TESSERA_SECRETS_KEY_REQUIRED = not DEBUG
# The public site's address: e-mailed and shown links (reset, invitation, sign-up hand-off) take
# their scheme and port from here, never from a request's Host header. A workspace is at
# <scheme>://<slug>.TESSERA_BASE_DOMAIN[:port].
TESSERA_PUBLIC_URL = env(
    "TESSERA_PUBLIC_URL", f"{'https' if SESSION_COOKIE_SECURE else 'http'}://{TESSERA_BASE_DOMAIN}"
)

# Cells (README "Cells"): this deployment is the cell TESSERA_CELL in region TESSERA_REGION; TESSERA_CELLS
# names every cell of the installation (JSON: {"<cell>": {"region": "eu", "public_url": "https://…"}}),
# this one included or not. A workspace of a cell is at <scheme>://<slug>.<its public URL's host>[:port].
TESSERA_CELL = env("TESSERA_CELL", "main")
TESSERA_REGION = env("TESSERA_REGION", "eu")
# A cell may also name an "internal_url": where the other cells reach it (forwarded Stripe events).
TESSERA_CELLS = {
    name: {
        "region": str(cell["region"]),
        "public_url": str(cell["public_url"]).rstrip("/"),
        "internal_url": str(cell.get("internal_url", "")).rstrip("/"),
    }
    for name, cell in json.loads(env("TESSERA_CELLS", "") or "{}").items()
}
TESSERA_CELLS[TESSERA_CELL] = {
    **TESSERA_CELLS.get(TESSERA_CELL, {}),
    "region": TESSERA_REGION,
    "public_url": TESSERA_PUBLIC_URL.rstrip("/"),
}
TESSERA_DIRECTORY_ENABLED = True
# Each cell's tasks on a queue of its own (beat's included): a worker consumes its cell's queue only,
# so cells that share a broker (or a broker pointed at the wrong cell) never run each other's work,
# which would write a workspace's data in a database of another region. `celery worker` without -Q
# consumes exactly this queue; TESSERA_CELERY_QUEUE overrides the name (e.g. to split a cell's work).
CELERY_TASK_DEFAULT_QUEUE = env("TESSERA_CELERY_QUEUE", f"tessera.{TESSERA_CELL}")

LOGGING = logging_config(env("TESSERA_LOG_FORMAT", "json"), env("TESSERA_LOG_LEVEL", "INFO"))
# Forms post to their own origin; the sign-up's answer redirects to the new workspace's subdomain (a
# redirect after a form post is checked against form-action too); a workspace's identity provider is
# added on its own pages (config.middleware).
_public = urlsplit(TESSERA_PUBLIC_URL)
# The Billing page's buttons answer with a redirect to Stripe Checkout and the Customer Portal; a stand-in
# for Stripe's API (TESSERA_STRIPE_API_BASE: stripe-mock, the tests' fake) serves them at its own address.
_stripe = urlsplit(STRIPE_API_BASE)
_stripe_pages = " https://checkout.stripe.com https://billing.stripe.com"
if _stripe.netloc:
    _stripe_pages += f" {_stripe.scheme}://{_stripe.netloc}"
CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace(
    "form-action 'self'",
    f"form-action 'self' {_public.scheme}://*.{TESSERA_BASE_DOMAIN}{f':{_public.port}' if _public.port else ''}"
    + _stripe_pages,
)
