"""Thin Celery wrappers: the daily retention run and SLA reminders, in each workspace."""

from celery import shared_task

from privacy.retention import retention_apply_all
from privacy.services import subject_requests_remind
from tenants.runtime import task_in_each_workspace


@shared_task(name="privacy.retention_apply", ignore_result=True)
def retention_apply_task() -> int:
    return sum(run.applied for run in retention_apply_all())


@shared_task(name="privacy.subject_requests_remind", ignore_result=True)
def subject_requests_remind_task() -> int:
    return len(subject_requests_remind())


@shared_task(name="privacy.retention_apply_all_workspaces", ignore_result=True)
def retention_apply_all_workspaces() -> int:
    return task_in_each_workspace(retention_apply_task)


@shared_task(name="privacy.subject_requests_remind_all_workspaces", ignore_result=True)
def subject_requests_remind_all_workspaces() -> int:
    return task_in_each_workspace(subject_requests_remind_task)
