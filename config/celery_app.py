"""The Celery app. SaaS uses the tenant-aware app (tenant carried on every task); desktop a plain one."""

import os
import sys

from celery.signals import beat_init, worker_init, worker_process_init
from django.utils.module_loading import import_string

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.conf import settings

from config.startup import production_settings_check

app_class = import_string(getattr(settings, "TESSERA_CELERY_APP_CLASS", "celery.Celery"))
app = app_class("tessera")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

_PARENT_PID = os.getpid()
_POSTGRESQL_BACKEND = "django.db.backends.postgresql.base"


@worker_process_init.connect
def _database_pools_forget(**kwargs) -> None:
    """A prefork child must not use a connection pool (its sockets, its threads) inherited from the
    parent: forget it without closing it (closing would end the parent's connections), and let the
    child open its own on first use.

    The solo pool sends the same signal in the worker's own process (the desktop app, `-P solo`): its
    pool is its own and stays. A process that never loaded the PostgreSQL backend has no pool to forget
    (the desktop ships without it)."""
    backend = sys.modules.get(_POSTGRESQL_BACKEND)
    if backend is None or os.getpid() == _PARENT_PID:
        return
    backend.DatabaseWrapper._connection_pools.clear()


@worker_init.connect
@beat_init.connect
def _production_settings_check(**kwargs) -> None:
    """A worker or beat refuses to start on settings production must not run with (config.startup).
    SystemExit, since Celery logs and swallows a signal handler's ordinary exceptions."""
    try:
        production_settings_check()
    except Exception as exc:
        raise SystemExit(f"Refusing to start: {exc}") from exc
