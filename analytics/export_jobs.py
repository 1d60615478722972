"""Background exports: a large record set or query result written to a file by a Celery worker, with
progress the console and the API show, then downloaded through an expiring, signed link.

`export_job_start` checks who asks and what (as a streamed export would), records the audit event and
queues the job on commit (`analytics.export_job_run`, by name: the task module imports this one; the
tenant-aware Celery app carries the workspace). `export_job_run` streams the rows through
analytics.exports into a temporary file beside the final one (constant memory), counts them as it goes
and renames the file when complete, so a download never sees half a file. The link names the
workspace and the job, signed with the server's key: a link made in one workspace finds nothing in
another, and it stops working when the file expires (TESSERA_EXPORT_TTL_HOURS).
"""

from __future__ import annotations

import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.db import transaction
from django.http import FileResponse
from django.utils import timezone

from analytics.errors import AnalyticsError
from analytics.exports import FORMATS, records_table, stream
from analytics.models import ExportJob
from analytics.queries import query_for, query_run, records_matching
from audit.services import audit_event_record
from core.actors import Actor, ActorType, Principal
from core.errors import NotFound
from core.events import DomainEvent
from rbac.permissions import permission_check
from records.selectors import collection_get
from tenants.runtime import workspace_current

logger = logging.getLogger(__name__)

PROGRESS_EVERY = 5000  # rows between two progress writes
LINK_SALT = "analytics.export_jobs.link"


def _exports_dir() -> Path:
    folder = Path(settings.TESSERA_EXPORTS_DIR) / workspace_current().slug
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def export_file_path(job: ExportJob) -> Path:
    return _exports_dir() / job.file_name


def export_job_start(
    *,
    actor: Actor | Principal,
    livemode: bool,
    fmt: str,
    collection: str = "",
    filters: dict[str, str] | None = None,
    query: dict | None = None,
) -> ExportJob:
    """Queue an export of a collection's records matching `filters`, or of a query's result (`query`)."""
    if fmt not in FORMATS:
        raise AnalyticsError(f"Export as one of {', '.join(FORMATS)}.", param="format")
    principal = getattr(actor, "principal", actor)
    if query is not None:
        permission_check(actor, "analytics.read")
        found, spec = query_for(raw=query, livemode=livemode)
        what, slug, spec_json, filters = ExportJob.What.QUERY_RESULT, found.slug, spec.as_dict(), {}
    else:
        permission_check(actor, "records.export")
        found = collection_get(livemode=livemode, slug=collection)
        filters = dict(filters or {})
        records_matching(found, filters)  # refuses a bad filter now, not in the worker
        what, slug, spec_json = ExportJob.What.RECORDS, found.slug, None
    member = principal if isinstance(principal, get_user_model()) and principal.pk else None
    who = Actor.of(actor)
    key_id = who.id if who.type == ActorType.API_KEY else ""
    with transaction.atomic():
        job = ExportJob.objects.create(
            token="exp_" + secrets.token_urlsafe(18),
            livemode=livemode,
            what=what,
            collection=slug,
            filters=filters,
            spec=spec_json,
            fmt=fmt,
            requested_by=member,
            requested_by_label=who.display[:300],
            requested_by_key=key_id,
        )
        audit_event_record(
            action="analytics.exported",
            actor=actor,
            target=found,
            changes={
                "what": what,
                "format": fmt,
                "collection": slug,
                "filters": filters,
                **({"query": spec_json} if spec_json else {}),
                "background": job.token,
            },
        )
        transaction.on_commit(lambda: _queue(job))
    return job


def _queue(job: ExportJob) -> None:
    try:
        current_app.send_task("analytics.export_job_run", args=[job.token])
    except Exception as exc:  # the broker is down: say so on the job rather than leave it queued forever
        logger.exception("could not queue export %s", job.token)
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportJob.Status.FAILED, error=f"Could not start the export: {exc}", finished_at=timezone.now()
        )


def export_job_run(*, token: str) -> ExportJob | None:
    """Write the job's file (the worker's side). A job already finished is left alone (a redelivered message)."""
    job = ExportJob.objects.filter(token=token).first()
    if job is None or job.status in {ExportJob.Status.DONE, ExportJob.Status.FAILED}:
        return job
    ExportJob.objects.filter(pk=job.pk).update(status=ExportJob.Status.RUNNING, rows_done=0)
    final = export_file_path(job)
    partial = final.with_name(final.name + ".part")
    try:
        header, rows, total = _table(job)
        ExportJob.objects.filter(pk=job.pk).update(rows_total=total)
        counted = _counting(job, rows)
        with open(partial, "wb") as f:
            for chunk in stream(job.fmt, header, counted):
                f.write(chunk)
        os.replace(partial, final)
    except Exception as exc:
        partial.unlink(missing_ok=True)
        message = getattr(exc, "message", "") or "The export failed; try again, or ask your administrator."
        if not getattr(exc, "message", ""):
            logger.exception("export %s failed", job.token)
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportJob.Status.FAILED, error=message, finished_at=timezone.now()
        )
        return ExportJob.objects.get(pk=job.pk)
    now = timezone.now()
    ExportJob.objects.filter(pk=job.pk).update(
        status=ExportJob.Status.DONE,
        rows_done=counted.n,
        size=final.stat().st_size,
        finished_at=now,
        expires_at=now + timedelta(hours=settings.TESSERA_EXPORT_TTL_HOURS),
    )
    return ExportJob.objects.get(pk=job.pk)


def _table(job: ExportJob):
    if job.what == ExportJob.What.QUERY_RESULT:
        _collection, spec = query_for(raw=job.spec, livemode=job.livemode)
        result = query_run(spec=spec, livemode=job.livemode, time_zone=workspace_current().timezone)
        return [c.key for c in result.columns], iter(result.rows), len(result.rows)
    found = collection_get(livemode=job.livemode, slug=job.collection)
    qs = records_matching(found, job.filters)
    header, rows = records_table(found, qs)
    return header, rows, qs.order_by().count()


class _counting:
    """Rows passed through, counted; the count written to the job every PROGRESS_EVERY rows."""

    def __init__(self, job: ExportJob, rows):
        self.job, self.rows, self.n = job, rows, 0

    def __iter__(self):
        for row in self.rows:
            self.n += 1
            if self.n % PROGRESS_EVERY == 0:
                ExportJob.objects.filter(pk=self.job.pk).update(rows_done=self.n)
            yield row


def export_jobs_expired_delete() -> int:
    """Files past their expiry removed (the job stays, as a line in the list, with no link)."""
    gone = 0
    for job in ExportJob.objects.filter(status=ExportJob.Status.DONE, expires_at__lt=timezone.now()):
        export_file_path(job).unlink(missing_ok=True)
        gone += 1
    return gone


def export_file_response(job: ExportJob) -> FileResponse:
    """The finished file as a download (streamed from disk by the server)."""
    try:
        handle = open(export_file_path(job), "rb")  # noqa: SIM115 (FileResponse closes it)
    except FileNotFoundError as exc:
        raise NotFound("The export's file has expired.", param="export_id") from exc
    response = FileResponse(handle, as_attachment=True, filename=f"{job.collection}-{job.what}.{job.fmt}")
    response["Content-Type"] = FORMATS[job.fmt]
    response["Cache-Control"] = "no-store"
    return response


# --- reading jobs and their links ---------------------------------------------------------------------------


def export_job_get(*, token: str, livemode: bool, actor: Actor | Principal) -> ExportJob:
    """A job of this data set that `actor` started: an API key sees only the exports made with it, a
    member only their own (another key's, member's or workspace's export is NotFound, not Forbidden:
    its existence is not theirs to learn)."""
    who = Actor.of(actor)
    qs = ExportJob.objects.filter(token=token, livemode=livemode)
    if who.type == ActorType.API_KEY:
        qs = qs.filter(requested_by_key=who.id)
    else:
        principal = who.principal
        member = principal if isinstance(principal, get_user_model()) and principal.pk else None
        qs = qs.filter(requested_by=member) if member is not None else qs.none()
    job = qs.first() if isinstance(token, str) and len(token) <= 40 else None
    if job is None:
        raise NotFound("No such export.", param="export_id")
    return job


def export_link_token(job: ExportJob) -> str:
    return signing.dumps({"w": workspace_current().slug, "j": job.token}, salt=LINK_SALT, compress=True)


def export_job_from_link(signed: str) -> ExportJob:
    """The job a download link names, while its file is there (NotFound: another workspace's, expired, forged)."""
    max_age = timedelta(hours=settings.TESSERA_EXPORT_TTL_HOURS)
    try:
        payload = signing.loads(signed, salt=LINK_SALT, max_age=max_age)
    except signing.BadSignature as exc:
        raise NotFound("This download link is not valid (or has expired).") from exc
    if not isinstance(payload, dict) or payload.get("w") != workspace_current().slug:
        raise NotFound("This download link is not valid (or has expired).")
    job = ExportJob.objects.filter(token=payload.get("j"), status=ExportJob.Status.DONE).first()
    if job is None or job.expires_at is None or job.expires_at < timezone.now() or not export_file_path(job).exists():
        raise NotFound("This download link is not valid (or has expired).")
    return job


def _file_holds(path: Path, needles: list[bytes]) -> bool:
    """Whether the file holds any needle (case-insensitively), read in chunks that overlap by the longest."""
    overlap = max(len(n) for n in needles)
    tail = b""
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                text = (tail + chunk).lower()
                if any(n in text for n in needles):
                    return True
                tail = text[-overlap:]
    except FileNotFoundError:
        return False
    return False


def erased_export_files_forget(event: DomainEvent) -> None:
    """Subscriber (in the transaction) of `record.erased`, `subject.erased` and `member.erased`: an export
    file still on disk that holds the erased record (its id) or the person's values is deleted when the
    erasure commits, and its job says why (its link stops working at once)."""
    if event.type == "record.erased":
        needles = [getattr(event, "record_id", "")]
    elif event.type in ("subject.erased", "member.erased"):
        needles = list(getattr(event, "erased_values", ()))
    else:
        return
    needles = [n.lower().encode() for n in needles if n and len(n) >= 3]
    if not needles:
        return
    for job in ExportJob.objects.filter(status=ExportJob.Status.DONE, livemode=event.livemode):
        path = export_file_path(job)
        if not _file_holds(path, needles):
            continue
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportJob.Status.FAILED, error="Removed: it held data of a data subject who was erased."
        )
        transaction.on_commit(lambda path=path: path.unlink(missing_ok=True))
