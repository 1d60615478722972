"""The Celery app. SaaS uses the tenant-aware app (tenant carried on every task); desktop a plain one."""

import os

from celery.signals import worker_process_init
from django.utils.module_loading import import_string

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.conf import settings

app_class = import_string(getattr(settings, "TESSERA_CELERY_APP_CLASS", "celery.Celery"))
app = app_class("tessera")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _database_pools_forget(**kwargs) -> None:
    """A prefork child must not use a connection pool (its sockets, its threads) inherited from the
    parent: forget it without closing it (closing would end the parent's connections), and let the
    child open its own on first use."""
    from django.db.backends.postgresql.base import DatabaseWrapper

    DatabaseWrapper._connection_pools.clear()
