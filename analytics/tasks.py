"""Periodic jobs of analytics (Celery beat, config.settings CELERY_BEAT_SCHEDULE): thin wrappers.

Beat sends `analytics.reports_due_all_workspaces` once a minute; it sends the per-workspace task from
inside each workspace, so the tenant-aware Celery app (SaaS) runs it in that workspace's schema. The
desktop runs the same tasks on its own broker and worker."""

from celery import shared_task

from analytics.export_jobs import export_job_run, export_jobs_expired_delete
from analytics.reports import reports_due_run
from analytics.rollups import rollup_build
from records.models import Collection
from tenants.runtime import task_in_each_workspace


@shared_task(name="analytics.reports_due")
def reports_due_task() -> int:
    return reports_due_run()


@shared_task(name="analytics.reports_due_all_workspaces")
def reports_due_all_workspaces() -> int:
    return task_in_each_workspace(reports_due_task)


@shared_task(name="analytics.export_job_run", acks_late=True)
def export_job_task(token: str) -> str:
    job = export_job_run(token=token)
    return job.status if job else "missing"


@shared_task(name="analytics.export_files_expire")
def export_files_expire_task() -> int:
    return export_jobs_expired_delete()


@shared_task(name="analytics.export_files_expire_all_workspaces")
def export_files_expire_all_workspaces() -> int:
    return task_in_each_workspace(export_files_expire_task)


@shared_task(name="analytics.rollup_build")
def rollup_build_task(collection_id: int, time_zone: str) -> str:
    collection = Collection.objects.filter(pk=collection_id).first()
    if collection is None:
        return "missing"
    return rollup_build(collection=collection, time_zone=time_zone).status
