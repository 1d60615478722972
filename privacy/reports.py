"""The compliance report for a period (GDPR art. 30 records, CCPA metrics): data-subject requests
received, closed and overdue with their times, retention runs, members and roles with their last
log-in and how they sign in, the audit chain's verification, and the sections other apps add (API keys,
webhook destinations) through settings.TESSERA_COMPLIANCE_REPORT_SECTIONS. Rendered as CSV and PDF
from the same figures."""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.models import User
from audit.selectors import audit_chain_verify
from privacy.models import RetentionRun, SubjectRequest
from tenants.runtime import workspace_current


@dataclass
class Section:
    title: str
    columns: list[str]
    rows: list[list[str]]
    summary: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Report:
    workspace: str
    date_from: date
    date_to: date
    generated_at: datetime
    summary: list[tuple[str, str]]
    sections: list[Section]


if TYPE_CHECKING:
    from fpdf import FPDF


def _day(value: datetime | None) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else ""


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _bounds(date_from: date, date_to: date) -> tuple[datetime, datetime]:
    tz = timezone.get_current_timezone()
    return (
        timezone.make_aware(datetime.combine(date_from, time.min), tz),
        timezone.make_aware(datetime.combine(date_to, time.max), tz),
    )


def compliance_report(*, date_from: date, date_to: date) -> Report:
    start, end = _bounds(date_from, date_to)
    now = timezone.now()
    received = list(SubjectRequest.objects.filter(received_at__range=(start, end)).order_by("received_at"))
    closed = list(SubjectRequest.objects.filter(completed_at__range=(start, end)))
    overdue = SubjectRequest.objects.filter(status=SubjectRequest.Status.OPEN, due_at__lt=min(now, end)).count()
    days_taken = [(r.completed_at - r.received_at).total_seconds() / 86400 for r in closed]
    late = sum(1 for r in closed if r.completed_at > r.due_at)
    dsr = Section(
        title="Data-subject requests received",
        columns=["request", "kind", "law", "received", "due", "closed", "status", "days taken", "on time"],
        rows=[
            [
                r.pk,
                r.kind,
                r.regime.upper(),
                _day(r.received_at),
                _day(r.due_at),
                _day(r.completed_at),
                "overdue" if r.overdue else r.status,
                f"{(r.completed_at - r.received_at).total_seconds() / 86400:.1f}" if r.completed_at else "",
                ("yes" if r.completed_at <= r.due_at else "no") if r.completed_at else "",
            ]
            for r in received
        ],
    )
    runs = RetentionRun.objects.filter(started_at__range=(start, end)).order_by("started_at")
    retention = Section(
        title="Retention runs",
        columns=["started", "collection", "action", "dry run", "matched", "applied"],
        rows=[
            [_day(r.started_at), r.collection_slug, r.action, _yes(r.dry_run), str(r.matched), str(r.applied)]
            for r in runs
        ],
    )
    members = Section(
        title="Members and roles",
        columns=["e-mail", "name", "role", "active", "signs in with", "last log-in"],
        rows=[
            [u.email, u.full_name, u.role, "yes" if u.is_active else "no", u.auth_source, _day(u.last_login) or "never"]
            for u in User.objects.filter(is_operator=False).order_by("email")
        ],
    )
    sso_members = sum(1 for row in members.rows if row[4] == "sso")
    sections = [dsr, retention, members]
    for path in settings.TESSERA_COMPLIANCE_REPORT_SECTIONS:
        found = import_string(path)(date_from=start, date_to=end)
        sections.append(Section(title=found["title"], columns=found["columns"], rows=found["rows"]))
    chain = audit_chain_verify()
    summary = [
        ("Data-subject requests received", str(len(received))),
        ("Data-subject requests closed", str(len(closed))),
        ("Closed late", str(late)),
        ("Open and overdue", str(overdue)),
        ("Median days to close", f"{statistics.median(days_taken):.1f}" if days_taken else "—"),
        ("Retention runs (dry runs)", f"{sum(1 for r in runs if not r.dry_run)} ({sum(1 for r in runs if r.dry_run)})"),
        ("Records erased or anonymised by retention", str(sum(r.applied for r in runs))),
        ("Members (signing in with SSO)", f"{len(members.rows)} ({sso_members})"),
        (
            "Audit chain",
            f"verified, {chain.checked} events" if chain.ok else f"BROKEN at event #{chain.broken_seq}: {chain.reason}",
        ),
    ]
    return Report(
        workspace=workspace_current().name,
        date_from=date_from,
        date_to=date_to,
        generated_at=now,
        summary=summary,
        sections=sections,
    )


def report_csv(report: Report) -> str:
    """One CSV file: the summary, then each section under a `# title` row with its own header row."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([f"# Compliance report: {report.workspace}", f"{report.date_from} to {report.date_to}"])
    writer.writerow(["# Generated", _day(report.generated_at)])
    writer.writerow([])
    writer.writerow(["# Summary"])
    writer.writerow(["figure", "value"])
    writer.writerows(report.summary)
    for section in report.sections:
        writer.writerow([])
        writer.writerow([f"# {section.title}"])
        writer.writerow(section.columns)
        writer.writerows(section.rows)
    return out.getvalue()


# The PDF uses DejaVu Sans (Debian's fonts-dejavu-core) when present, for any script; otherwise the
# PDF core font Helvetica, which holds Latin-1 only (other characters are shown as "?").
_DEJAVU = Path("/usr/share/fonts/truetype/dejavu")


def _font(pdf: FPDF) -> tuple[str, bool]:
    regular, bold = _DEJAVU / "DejaVuSans.ttf", _DEJAVU / "DejaVuSans-Bold.ttf"
    if regular.exists() and bold.exists():
        pdf.add_font("DejaVu", "", str(regular))
        pdf.add_font("DejaVu", "B", str(bold))
        return "DejaVu", True
    return "Helvetica", False


def report_pdf(report: Report) -> bytes:
    """The report as an A4 landscape PDF: a title, the summary table, then each section's table."""
    from fpdf import FPDF  # loads with the first PDF report, not with every process

    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.set_title(f"Compliance report: {report.workspace}")
    pdf.set_creator("Tessera")
    family, unicode = _font(pdf)

    def text(value: str) -> str:
        return value if unicode else value.encode("latin-1", "replace").decode("latin-1")

    pdf.add_page()
    pdf.set_font(family, "B", 16)
    pdf.cell(0, 10, text(f"Compliance report: {report.workspace}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, "", 10)
    pdf.cell(
        0,
        6,
        text(f"Period {report.date_from} to {report.date_to}; generated {_day(report.generated_at)}"),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(3)
    pdf.set_font(family, "", 9)
    with pdf.table(col_widths=(90, 60), width=150, align="LEFT", first_row_as_headings=False) as table:
        for label, value in report.summary:
            row = table.row()
            row.cell(text(label))
            row.cell(text(value))
    for section in report.sections:
        pdf.ln(4)
        pdf.set_font(family, "B", 12)
        pdf.cell(0, 8, text(section.title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(family, "", 8)
        if not section.rows:
            pdf.cell(0, 6, "None in this period.", new_x="LMARGIN", new_y="NEXT")
            continue
        with pdf.table(text_align="LEFT", line_height=4.5) as table:
            header = table.row()
            for column in section.columns:
                header.cell(text(column))
            for values in section.rows:
                row = table.row()
                for value in values:
                    row.cell(text(str(value)))
    return bytes(pdf.output())
