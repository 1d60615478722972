"""The records table's bulk jobs: a bulk edit or delete of a selection too big to finish before the
answer (records.services.records_bulk_job_start) is shown above the table with a progress bar, which
the page polls until the job ends."""

from __future__ import annotations

from datetime import timedelta

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from core.actors import Actor
from rbac.permissions import permission_required
from records.models import BulkJob, Collection
from records.views.common import _collection, _htmx, _page

# How long a finished job stays above the table (so whoever watched it sees it end).
JOB_SHOWN_FOR = timedelta(minutes=10)


def bulk_jobs_context(collection: Collection) -> dict:
    """The collection's running jobs and those finished a short while ago, newest first."""
    recent = timezone.now() - JOB_SHOWN_FOR
    jobs = []
    rows = BulkJob.objects.filter(collection=collection).exclude(finished_at__lt=recent).select_related("requested_by")
    for job in rows.defer("ids", "changed")[:5]:
        done = job.total if job.status == BulkJob.Status.DONE else min(job.position, job.total)
        who = Actor.of(job.requested_by).display if job.requested_by else "someone"
        jobs.append(
            {
                "pk": job.pk,
                "what": "Deleting" if job.action == BulkJob.Action.DELETE else job.label or "Setting a field",
                "deleting": job.action == BulkJob.Action.DELETE,
                "who": who,
                "total": job.total,
                "total_label": f"{job.total:,}",
                "done": done,
                "done_label": f"{done:,}",
                "percent": 100 if not job.total else 100 * done // job.total,
                "status": job.status,
                "error": job.error,
            }
        )
    running = any(j["status"] == BulkJob.Status.RUNNING for j in jobs)
    return {"bulk_jobs": jobs, "bulk_polling": running, "collection": collection}


@require_http_methods(["GET"])
@permission_required("records.view")
def bulk_jobs_status(request: HttpRequest, slug: str) -> HttpResponse:
    """The table's bulk-job section alone (htmx polls it while a job runs)."""
    collection = _collection(slug)
    if not _htmx(request):
        return redirect("records:table", slug=slug)
    return _page(request, "records/_bulk_jobs.html", bulk_jobs_context(collection))
