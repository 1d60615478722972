"""Background exports and scheduled reports with real processes: a real `celery worker` with embedded
beat on a real broker (a private redis-server in SaaS, the filesystem broker on the desktop), started
with the production settings against the test database (tests/webhooks/conftest.py's Worker).

The export is started as the console or API starts it (the job queued on commit); the worker writes the
file, which is read back here. The report is due a minute ago: beat (every second here, every minute in
production) sends the per-workspace run, and the e-mail lands in the worker's file mail backend. What the
model leaves out: a mail server (Django's file backend stands in for SMTP) and a shared volume between
machines (worker and test share one folder)."""

from __future__ import annotations

import csv
import email
import io
import time
from collections import Counter
from datetime import time as clock
from datetime import timedelta
from pathlib import Path

from tests.conftest import SAAS
from tests.webhooks.conftest import (  # noqa: F401 (fixtures)
    broker,
    committed_workspace,
    webhooks_test_database,
    worker_for,
)

SLUG = "whkorders"  # the committed workspace's clean-up removes collections named whk…
REGIONS = ["EU", "US", "APAC"]
FIELDS = [{"key": "region", "type": "choice", "choices": REGIONS}, {"key": "amount", "type": "number"}]


def _wait(predicate, timeout: float, what: str, worker) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"Timed out waiting for {what}\n--- worker log ---\n{worker.log_tail()}")


def _mails(folder: Path) -> list[email.message.Message]:
    out = []
    for path in sorted(folder.glob("*.log")) if folder.exists() else []:
        for raw in path.read_bytes().split(b"\n" + b"-" * 79 + b"\n"):
            if raw.strip():
                out.append(email.message_from_bytes(raw.strip()))
    return out


def test_a_real_worker_writes_the_export_and_beat_mails_the_report(
    committed_workspace,  # noqa: F811
    worker_for,  # noqa: F811
    django_db_blocker,
    tmp_path,
    settings,
):
    from django.utils import timezone

    from analytics.export_jobs import export_job_start
    from analytics.models import ExportJob, ReportDelivery, ReportSchedule, SavedQuery
    from analytics.reports import report_schedule_create
    from analytics.services import saved_query_create
    from records.services import collection_create, record_bulk_upsert
    from tenants.runtime import workspace_context

    exports, mail = tmp_path / "exports", tmp_path / "mail"
    settings.TESSERA_EXPORTS_DIR = exports
    worker = worker_for(
        extra_env={
            "TESSERA_EXPORTS_DIR": str(exports),
            "TESSERA_EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "TESSERA_EMAIL_FILE_PATH": str(mail),
            "TESSERA_REPORTS_DUE_SECONDS": "1",
        }
    )
    rows = [{"region": REGIONS[i % 3], "amount": i} for i in range(1, 301)]
    with django_db_blocker.unblock():
        ws = committed_workspace()
        try:
            with workspace_context(ws.tenant):
                collection = collection_create(actor=ws.admin, name="Orders", slug=SLUG, fields=FIELDS)
                record_bulk_upsert(actor=ws.admin, collection=collection, items=[{"data": d} for d in rows])
                job = export_job_start(actor=ws.admin, livemode=True, fmt="csv", collection=SLUG, filters={})
                saved = saved_query_create(
                    actor=ws.admin,
                    name="Amount by region",
                    spec={
                        "collection": SLUG,
                        "group_by": [{"field": "region"}],
                        "aggregates": [{"fn": "count"}, {"fn": "sum", "field": "amount"}],
                    },
                )
                schedule = report_schedule_create(
                    actor=ws.admin, query=saved, frequency="daily", at_time=clock(7), recipients=["boss@example.test"]
                )
                ReportSchedule.objects.filter(pk=schedule.pk).update(next_run_at=timezone.now() - timedelta(minutes=1))

                def job_status():
                    return ExportJob.objects.get(pk=job.pk).status

                _wait(lambda: job_status() in {"done", "failed"}, 60, "the export", worker)
                job.refresh_from_db()
                assert job.status == "done", job.error
                assert job.rows_done == job.rows_total == 300
                path = exports / ws.tenant.slug / job.file_name
                exported = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
                assert sorted((r["region"], float(r["amount"])) for r in exported) == sorted(
                    (d["region"], float(d["amount"])) for d in rows
                )

                _wait(lambda: _mails(mail), 60, "the scheduled report's e-mail", worker)
                (message,) = [m for m in _mails(mail) if m["Subject"] == "[Tessera] Amount by region"]
                assert message["To"] == "boss@example.test"
                attachment = next(p for p in message.walk() if p.get_filename())
                table = list(csv.DictReader(io.StringIO(attachment.get_payload(decode=True).decode("utf-8-sig"))))
                want_count = Counter(d["region"] for d in rows)
                want_sum = Counter()
                for d in rows:
                    want_sum[d["region"]] += d["amount"]
                assert {r["region"]: (int(r["count"]), float(r["sum_amount"])) for r in table} == {
                    k: (want_count[k], want_sum[k]) for k in REGIONS
                }
                delivery = ReportDelivery.objects.get(schedule=schedule)
                assert delivery.status == "sent" and delivery.rows == 3
                schedule.refresh_from_db()
                assert schedule.next_run_at > timezone.now()  # the next run is tomorrow's, not now again
        finally:
            if not SAAS:  # the desktop's one workspace: leave it as it was
                with workspace_context(ws.tenant):
                    ExportJob.objects.all().delete()
                    SavedQuery.objects.filter(spec__collection=SLUG).delete()
