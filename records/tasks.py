"""Celery tasks of records: thin wrappers around records.services."""

from __future__ import annotations

from celery import shared_task

from records.models import BulkJob, Collection
from records.services import (
    collection_records_delete,
    collection_records_delete_queue,
    collection_records_migrate,
    collection_records_migrate_queue,
    records_bulk_job_queue,
    records_bulk_job_run,
)
from records.sort_indexes import sort_index_ensure
from tenants.runtime import workspace_context, workspace_list


@shared_task(name="records.collection_records_migrate")
def collection_records_migrate_task(collection_id: int) -> bool:
    """Carry one collection's records through its pending field changes (in the task's workspace)."""
    collection = Collection.objects.filter(pk=collection_id).first()
    if collection is None:
        return True
    return collection_records_migrate(collection=collection)


@shared_task(name="records.collection_records_delete")
def collection_records_delete_task(collection_id: int) -> bool:
    """Delete the records of one deleted collection (in the task's workspace)."""
    collection = Collection.objects.filter(pk=collection_id).first()
    if collection is None:
        return True
    return collection_records_delete(collection=collection)


@shared_task(name="records.bulk_job_run")
def records_bulk_job_task(job_id: int) -> bool:
    """Carry out a bulk edit or delete of a large selection (in the task's workspace)."""
    return records_bulk_job_run(job_id=job_id)


@shared_task(name="records.collection_migrations_resume_all_workspaces")
def collection_migrations_resume_all_workspaces() -> int:
    """Queue again every field migration, collection deletion and bulk job left unfinished (a lost message, a
    killed worker), looking at each workspace itself (two queries) and sending tasks only for what it
    finds; one already running only finds less to do. Returns how many were queued."""
    queued = 0
    for workspace in workspace_list():
        with workspace_context(workspace):
            for collection_id in Collection.objects.exclude(data_migration={}).values_list("pk", flat=True):
                collection_records_migrate_queue(collection_id=collection_id)
                queued += 1
            deleting = Collection.objects.exclude(deleted_at=None).exclude(deletion={})
            for collection_id, deletion in deleting.values_list("pk", "deletion"):
                if "finished_at" not in deletion:
                    collection_records_delete_queue(collection_id=collection_id)
                    queued += 1
            for job_id in BulkJob.objects.filter(status=BulkJob.Status.RUNNING).values_list("pk", flat=True):
                records_bulk_job_queue(job_id=job_id)
                queued += 1
    return queued


@shared_task(name="records.sort_index_build")
def sort_index_build_task(collection_id: int, key: str) -> bool:
    """Build the sort index a page asked for (CREATE INDEX CONCURRENTLY: writers are not blocked)."""
    collection = Collection.objects.filter(pk=collection_id, deleted_at=None).first()
    return collection is not None and sort_index_ensure(collection, key)
