"""The Celery app. SaaS uses the tenant-aware app (tenant carried on every task); desktop a plain one."""

import os

from django.utils.module_loading import import_string

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.conf import settings

app_class = import_string(getattr(settings, "TESSERA_CELERY_APP_CLASS", "celery.Celery"))
app = app_class("tessera")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
