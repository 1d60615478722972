"""Periodic jobs of sync/ (Celery beat, config.settings CELERY_BEAT_SCHEDULE): thin wrappers.

Beat sends the `*_all_workspaces` task once; it sends the per-workspace task from inside each
workspace, so the tenant-aware Celery app (SaaS) runs it in that workspace's schema.
"""

from celery import shared_task

from sync.services import device_writes_prune
from tenants.runtime import task_in_each_workspace


@shared_task(name="sync.device_writes_prune")
def device_writes_prune_task() -> int:
    return device_writes_prune()


@shared_task(name="sync.device_writes_prune_all_workspaces")
def device_writes_prune_all_workspaces() -> int:
    return task_in_each_workspace(device_writes_prune_task)
