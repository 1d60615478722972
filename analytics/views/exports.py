"""Console screens of background exports: start one, watch its progress, download it by its link."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from analytics.export_jobs import export_file_response, export_job_from_link, export_job_start, export_link_token
from analytics.exports import FORMATS
from analytics.models import ExportJob
from core.errors import NotFound, ServiceError
from rbac.permissions import permission_required


@permission_required("analytics.use")
@require_POST
def export_start(request: HttpRequest) -> HttpResponse:
    """Every record of a collection matching the filters (`f.<name>` fields) as a file made in the background."""
    filters = {k[2:]: v for k, v in request.POST.items() if k.startswith("f.")}
    try:
        job = export_job_start(
            actor=request.user,
            livemode=True,
            fmt=request.POST.get("format", ""),
            collection=request.POST.get("collection", ""),
            filters=filters,
        )
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("analytics:exports")
    messages.success(request, f"Export of “{job.collection}” started: it is listed here with its progress.")
    return redirect("analytics:exports")


@permission_required("analytics.use")
def export_list(request: HttpRequest) -> HttpResponse:
    """The member's own exports, newest first; the list reloads itself while one is running."""
    jobs = list(ExportJob.objects.filter(requested_by=request.user, livemode=True)[:50])
    rows = [{"job": j, "link": export_link_token(j) if j.status == ExportJob.Status.DONE else ""} for j in jobs]
    busy = any(j.status in {ExportJob.Status.QUEUED, ExportJob.Status.RUNNING} for j in jobs)
    template = "analytics/_exports_table.html" if request.headers.get("HX-Request") else "analytics/exports.html"
    return render(request, template, {"rows": rows, "busy": busy, "formats": list(FORMATS)})


def export_download(request: HttpRequest, signed: str) -> HttpResponse:
    """The file behind a signed link: no session needed (the link is the credential, and it expires)."""
    try:
        job = export_job_from_link(signed)
        return export_file_response(job)
    except NotFound as exc:
        raise Http404(exc.message) from exc
