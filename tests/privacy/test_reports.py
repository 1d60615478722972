"""The compliance report: its figures match the data (requests received, closed, late, overdue;
retention runs; members; the audit chain), as CSV and as a PDF that renders (read back with poppler's
pdftotext, and drawn to PNG with pdftoppm)."""

from __future__ import annotations

import csv
import io
import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.utils import timezone

from privacy.models import LogRetentionPolicy, RetentionPolicy, SubjectRequest
from privacy.reports import compliance_report, report_csv, report_pdf
from privacy.retention import retention_apply, retention_policy_set
from privacy.services import subject_request_close, subject_request_open


def _open(actor, days_ago: int, kind="access"):
    return subject_request_open(
        actor=actor,
        kind=kind,
        subject_identifier=f"someone{days_ago}@example.org",
        requested_by="web form",
        verification="e-mail link",
        received_at=timezone.now() - timedelta(days=days_ago),
    )


@pytest.fixture
def period_data(tenant, admin_user, customers):
    """In the last 60 days: 3 requests received (one closed on time, one overdue and open, one open),
    one closed late that was received 50 days ago, and a retention run with its dry run."""
    on_time = _open(admin_user, 5)
    subject_request_close(actor=admin_user, request=on_time, status="completed")
    _open(admin_user, 40)  # GDPR: due 10 days ago, still open → overdue
    _open(admin_user, 2)
    late = _open(admin_user, 50)
    SubjectRequest.objects.filter(pk=late.pk).update(due_at=timezone.now() - timedelta(days=1))
    late.refresh_from_db()
    subject_request_close(actor=admin_user, request=late, status="completed")
    policy = retention_policy_set(actor=admin_user, collection=customers, days=30)
    retention_apply(policy=policy, dry_run=True)
    retention_apply(policy=policy)
    today = timezone.localdate()
    return compliance_report(date_from=today - timedelta(days=60), date_to=today)


def test_report_figures_match_the_data(period_data):
    summary = dict(period_data.summary)
    assert summary["Data-subject requests received"] == "4"
    assert summary["Data-subject requests closed"] == "2"
    assert summary["Closed late"] == "1"
    assert summary["Open and overdue"] == "1"
    assert summary["Retention runs (dry runs)"] == "1 (1)"
    assert summary["Audit chain"].startswith("verified, ")
    titles = [s.title for s in period_data.sections]
    assert titles[:3] == ["Data-subject requests received", "Retention runs", "Members and roles"]
    assert "API keys" in titles and "Webhook destinations (sub-processors)" in titles
    members = next(s for s in period_data.sections if s.title == "Members and roles")
    assert members.rows[0][:3] == ["admin@alpha.test", "Alpha Admin", "admin"]


def test_report_csv_has_every_section(period_data):
    rows = list(csv.reader(io.StringIO(report_csv(period_data))))
    assert ["Data-subject requests received", "4"] in rows
    sections = [r[0] for r in rows if r and r[0].startswith("# ")]
    assert "# Data-subject requests received" in sections and "# API keys" in sections
    header = rows[rows.index(["# Data-subject requests received"]) + 1]
    assert header[:3] == ["request", "kind", "law"]


def test_report_pdf_renders_with_the_same_figures(period_data, tmp_path):
    pdf = report_pdf(period_data)
    if keep := os.environ.get("TESSERA_KEEP_REPORT_PDF"):  # to look at it: pdftoppm -png <file> page
        Path(keep).write_bytes(pdf)
    assert pdf.startswith(b"%PDF-")
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True).stdout
    assert "Compliance report: Alpha Ltd" in text
    for label, value in period_data.summary:
        line = next(line for line in text.splitlines() if label in line)
        assert value in line, (label, value, line)
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-l", "1", str(path), str(tmp_path / "page")], check=True)
    (page,) = tmp_path.glob("page*.png")
    assert page.stat().st_size > 5000  # a drawn page, not an empty one


def test_console_report_page_and_downloads(tenant, admin_client, make_user, client_for):
    page = admin_client.get("/compliance/report")
    assert page.status_code == 200 and b'data-testid="report-summary"' in page.content
    today = timezone.localdate()
    response = admin_client.get(f"/compliance/report?date_from={today}&date_to={today}&format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    response = admin_client.get(f"/compliance/report?date_from={today}&date_to={today}&format=pdf")
    assert response.status_code == 200 and response.content.startswith(b"%PDF-")
    bad = admin_client.get(f"/compliance/report?date_from={today}&date_to={today - timedelta(days=1)}")
    assert bad.status_code == 400 and b"end date is before" in bad.content
    assert client_for(tenant, make_user("analyst")).get("/compliance/report").status_code == 403


def test_console_retention_dry_run_and_run(tenant, admin_client, admin_user, customers):
    from records.models import Record
    from records.services import record_create

    record = record_create(actor=admin_user, collection=customers, data={"name": "Old"})
    Record.objects.filter(pk=record.pk).update(updated_at=timezone.now() - timedelta(days=40))
    response = admin_client.post(
        "/compliance/retention", {"collection": customers.pk, "days": 30, "action": "erase", "enabled": "on"}
    )
    assert response.status_code == 302
    policy = RetentionPolicy.objects.get(collection=customers)
    dry = admin_client.post("/compliance/retention", {"policy": policy.pk, "action_run": "dry"})
    assert b'data-testid="dry-run"' in dry.content and record.id.encode() in dry.content
    assert Record.objects.get(pk=record.pk).data == {"name": "Old", "tier": "free"}
    assert admin_client.post("/compliance/retention", {"policy": policy.pk, "action_run": "run"}).status_code == 302
    assert Record.objects.get(pk=record.pk).data == {}
    bad = admin_client.post("/compliance/retention", {"collection": customers.pk, "days": 0, "action": "erase"})
    assert bad.status_code == 400


def test_console_log_retention_policy_dry_run_and_bad_input(tenant, admin_client, anon_client):
    anon_client.post("/accounts/login/", {"username": "nobody@example.org", "password": "x"})
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(days=9))
    saved = admin_client.post(
        "/compliance/retention", {"log-log": "login_attempts", "log-days": 7, "log-enabled": "on"}
    )
    assert saved.status_code == 302
    policy = LogRetentionPolicy.objects.get(log="login_attempts")
    dry = admin_client.post("/compliance/retention", {"log_policy": policy.pk, "log_run": "dry"})
    assert b"would delete <strong>1</strong> entry of log-in attempts" in dry.content
    assert AccessAttempt.objects.count() == 1
    assert admin_client.post("/compliance/retention", {"log_policy": policy.pk, "log_run": "run"}).status_code == 302
    assert AccessAttempt.objects.count() == 0
    bad = admin_client.post("/compliance/retention", {"log-log": "everything", "log-days": 0})
    assert bad.status_code == 400 and b"log-log" in bad.content
