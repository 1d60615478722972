"""Periodic jobs of partners/ (Celery beat, config.settings CELERY_BEAT_SCHEDULE): thin wrappers.

Beat sends the `*_all_workspaces` task once; it sends the per-workspace task from inside each
workspace, so the tenant-aware Celery app (SaaS) runs it in that workspace's schema.
"""

from celery import shared_task

from api.idempotency import idempotency_records_purge
from partners.services import api_key_expire_due
from partners.usage import usage_flush
from tenants.runtime import task_in_each_workspace


@shared_task(name="partners.usage_flush")
def usage_flush_task() -> int:
    return usage_flush()


@shared_task(name="partners.api_keys_expire")
def api_keys_expire_task() -> int:
    return len(api_key_expire_due())


@shared_task(name="partners.idempotency_records_purge")
def idempotency_records_purge_task() -> int:
    return idempotency_records_purge()


@shared_task(name="partners.usage_flush_all_workspaces")
def usage_flush_all_workspaces() -> int:
    return task_in_each_workspace(usage_flush_task)


@shared_task(name="partners.api_keys_expire_all_workspaces")
def api_keys_expire_all_workspaces() -> int:
    return task_in_each_workspace(api_keys_expire_task)


@shared_task(name="partners.idempotency_records_purge_all_workspaces")
def idempotency_records_purge_all_workspaces() -> int:
    return task_in_each_workspace(idempotency_records_purge_task)
