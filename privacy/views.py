"""The Compliance console: data-subject requests with their SLA clock, and the personal-data map."""

from __future__ import annotations

from datetime import datetime, time

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from audit.services import audit_event_record
from core.errors import ServiceError
from core.forms import form_error_add
from privacy import selectors, services
from privacy.forms import (
    CloseForm,
    ExtendForm,
    LiftRestrictionForm,
    LogRetentionPolicyForm,
    RectifyForm,
    ReportForm,
    RetentionPolicyForm,
    SubjectRequestForm,
)
from privacy.models import LogRetentionPolicy, RetentionPolicy, RetentionRun, SubjectRequest
from privacy.package import package_chunks, package_token_request_id
from privacy.reports import compliance_report, report_csv, report_pdf
from privacy.retention import log_retention_apply, log_retention_policy_set, retention_apply, retention_policy_set
from rbac.permissions import permission_check, permission_required
from records.models import Collection


def _compliance(view):
    """Compliance pages need the audit log's permission and compliance.manage."""

    @permission_required("audit.view")
    def wrapped(request, *args, **kwargs):
        permission_check(request.user, "compliance.manage")
        return view(request, *args, **kwargs)

    wrapped.required_permission = "compliance.manage"
    return wrapped


def _request_or_404(request_id: str) -> SubjectRequest:
    found = selectors.subject_request_get(request_id)
    if found is None:
        raise Http404("No such request.")
    return found


@_compliance
def requests_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "open")
    if status not in ("open", "completed", "rejected", "overdue", "all"):
        status = "open"
    rows = selectors.subject_request_list(status="" if status == "all" else status)[:500]
    return render(request, "privacy/requests.html", {"rows": rows, "status": status, "now": timezone.now()})


@_compliance
def request_new(request: HttpRequest) -> HttpResponse:
    form = SubjectRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        received = data.get("received_on")
        try:
            created = services.subject_request_open(
                actor=request.user,
                kind=data["kind"],
                regime=data["regime"],
                subject_identifier=data["subject"],
                requested_by=data["requested_by"],
                verification=data["verification"],
                received_at=timezone.make_aware(datetime.combine(received, time(12))) if received else None,
            )
        except ServiceError as exc:
            form_error_add(form, exc)
        else:
            return redirect("privacy:request", request_id=created.pk)
    return render(request, "privacy/request_new.html", {"form": form}, status=400 if form.errors else 200)


@_compliance
def request_detail(request: HttpRequest, request_id: str) -> HttpResponse:
    dsr = _request_or_404(request_id)
    found = None if dsr.subject_erased else selectors.subject_data_collect(dsr.subject_identifier)
    context = {
        "dsr": dsr,
        "found": found,
        "extend_form": ExtendForm(),
        "close_form": CloseForm(),
        "rectify_form": RectifyForm(),
        "lift_form": LiftRestrictionForm(),
        "package_link": None,
    }
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "erase":
                services.subject_request_erase(actor=request.user, request=dsr)
                messages.success(request, "The subject's data was erased; the certificate is below.")
            elif action == "rectify":
                form = RectifyForm(request.POST)
                if not form.is_valid():
                    context["rectify_form"] = form
                    return render(request, "privacy/request_detail.html", context, status=400)
                corrections = form.cleaned_data["corrections"]
                services.subject_request_rectify(actor=request.user, request=dsr, corrections=corrections)
                messages.success(request, "The subject's data was corrected; the certificate is below.")
            elif action == "restrict":
                services.subject_request_restrict(actor=request.user, request=dsr)
                messages.success(request, "The subject's records are restricted; the certificate is below.")
            elif action == "lift":
                form = LiftRestrictionForm(request.POST)
                if not form.is_valid():
                    context["lift_form"] = form
                    return render(request, "privacy/request_detail.html", context, status=400)
                services.subject_request_restriction_lift(
                    actor=request.user, request=dsr, reason=form.cleaned_data["reason"]
                )
                messages.success(request, "The restriction was lifted: the records are processed again.")
            elif action == "extend":
                form = ExtendForm(request.POST)
                if not form.is_valid():
                    context["extend_form"] = form
                    return render(request, "privacy/request_detail.html", context, status=400)
                services.subject_request_extend(actor=request.user, request=dsr, reason=form.cleaned_data["reason"])
                messages.success(request, "The due date was extended.")
            elif action == "close":
                form = CloseForm(request.POST)
                if not form.is_valid():
                    context["close_form"] = form
                    return render(request, "privacy/request_detail.html", context, status=400)
                services.subject_request_close(
                    actor=request.user, request=dsr, status=form.cleaned_data["status"], note=form.cleaned_data["note"]
                )
                messages.success(request, "The request was closed.")
            elif action == "package":
                token, expires_at = services.subject_request_package(actor=request.user, request=dsr)
                context["package_link"] = request.build_absolute_uri(reverse("privacy:package", args=[token]))
                context["package_expires_at"] = expires_at
                return render(request, "privacy/request_detail.html", context)
            else:
                return render(request, "privacy/request_detail.html", context, status=400)
        except ServiceError as exc:
            context["error"] = exc.message
            return render(request, "privacy/request_detail.html", context, status=exc.status)
        return redirect("privacy:request", request_id=dsr.pk)
    return render(request, "privacy/request_detail.html", context)


def package_download(request: HttpRequest, token: str) -> HttpResponse:
    """The signed link itself is the credential (it is sent to the subject, who has no account)."""
    request_id = package_token_request_id(token)
    dsr = selectors.subject_request_get(request_id) if request_id else None
    if dsr is None or dsr.subject_erased:
        return render(request, "privacy/package_gone.html", status=410 if request_id else 404)
    response = StreamingHttpResponse(package_chunks(dsr), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{dsr.pk}.zip"'
    response["Cache-Control"] = "no-store"
    return response


@_compliance
def data_map(request: HttpRequest) -> HttpResponse:
    collections = list(Collection.objects.filter(livemode=True, deleted_at=None).order_by("name"))
    error = None
    if request.method == "POST":
        collection = next((c for c in collections if str(c.pk) == request.POST.get("collection")), None)
        if collection is None:
            raise Http404("No such collection.")
        try:
            services.personal_data_map_set(
                actor=request.user,
                collection=collection,
                personal=request.POST.getlist("personal"),
                identifying=request.POST.getlist("identifying"),
            )
        except ServiceError as exc:
            error = exc.message
        else:
            messages.success(request, f"The personal-data map of {collection.name} was saved.")
            return redirect("privacy:data_map")
    marked = selectors.personal_data_map()
    rows = [
        {
            "collection": c,
            "fields": [
                {
                    "key": f["key"],
                    "type": f["type"],
                    "personal": f["key"] in marked.get(c.pk, {}),
                    "identifying": marked.get(c.pk, {}).get(f["key"], False),
                }
                for f in c.fields
            ],
        }
        for c in collections
    ]
    return render(request, "privacy/data_map.html", {"rows": rows, "error": error}, status=422 if error else 200)


@_compliance
def report(request: HttpRequest) -> HttpResponse:
    today = timezone.localdate()
    form = ReportForm(request.GET or {"date_from": today.replace(day=1), "date_to": today})
    if not form.is_valid():
        return render(request, "privacy/report.html", {"form": form}, status=400)
    date_from, date_to = form.cleaned_data["date_from"], form.cleaned_data["date_to"]
    found = compliance_report(date_from=date_from, date_to=date_to)
    fmt = request.GET.get("format", "")
    if fmt in ("csv", "pdf"):
        audit_event_record(
            action="compliance_report.exported",
            actor=request.user,
            target=("compliance_report", f"{date_from}..{date_to}", f"{date_from} to {date_to}"),
            changes={"format": fmt, "from": str(date_from), "to": str(date_to)},
        )
        name = f"compliance-{date_from}-{date_to}.{fmt}"
        if fmt == "csv":
            response = HttpResponse(report_csv(found), content_type="text/csv; charset=utf-8")
        else:
            response = HttpResponse(report_pdf(found), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
    return render(request, "privacy/report.html", {"form": form, "report": found, "query": request.GET.urlencode()})


@_compliance
def retention(request: HttpRequest) -> HttpResponse:
    """Policies per collection; a dry run shows what a run would take, "Run now" applies it."""
    collections = list(Collection.objects.filter(livemode=True, deleted_at=None).order_by("name"))
    form = RetentionPolicyForm(collections=collections)
    logs = {name: label for name, (label, _) in settings.TESSERA_LOG_RETENTION.items()}
    log_form = LogRetentionPolicyForm(logs=logs)
    context: dict = {"dry_run": None}
    status = 200
    if request.method == "POST" and request.POST.get("log_run") in ("dry", "run"):
        log_policy = LogRetentionPolicy.objects.filter(pk=request.POST.get("log_policy"), log__in=list(logs)).first()
        if log_policy is None:
            raise Http404("No such policy.")
        run = log_retention_apply(policy=log_policy, dry_run=request.POST["log_run"] == "dry", actor=request.user)
        if run.dry_run:
            context.update(dry_run=run, dry_run_log=logs[log_policy.log])
        else:
            messages.success(
                request, f"{run.applied} entr{'y' if run.applied == 1 else 'ies'} of {logs[log_policy.log]} deleted."
            )
            return redirect("privacy:retention")
    elif request.method == "POST" and "log-log" in request.POST:
        log_form = LogRetentionPolicyForm(request.POST, logs=logs)
        if log_form.is_valid():
            data = log_form.cleaned_data
            log_retention_policy_set(actor=request.user, log=data["log"], days=data["days"], enabled=data["enabled"])
            messages.success(request, f"The retention policy of {logs[data['log']]} was saved.")
            return redirect("privacy:retention")
        status = 400
    elif request.method == "POST" and request.POST.get("action_run") in ("dry", "run"):
        policy = RetentionPolicy.objects.filter(pk=request.POST.get("policy")).select_related("collection").first()
        if policy is None:
            raise Http404("No such policy.")
        run = retention_apply(policy=policy, dry_run=request.POST["action_run"] == "dry", actor=request.user)
        if run.dry_run:
            context["dry_run"] = run
        else:
            messages.success(request, f"{run.applied} record(s) of {run.collection_slug} were {run.action}d.")
            return redirect("privacy:retention")
    elif request.method == "POST":
        form = RetentionPolicyForm(request.POST, collections=collections)
        if form.is_valid():
            data = form.cleaned_data
            collection = next(c for c in collections if str(c.pk) == data["collection"])
            try:
                retention_policy_set(
                    actor=request.user,
                    collection=collection,
                    days=data["days"],
                    action=data["action"],
                    status_field=data["status_field"].strip(),
                    status_value=data["status_value"].strip(),
                    enabled=data["enabled"],
                )
            except ServiceError as exc:
                form_error_add(form, exc)
            else:
                messages.success(request, f"The retention policy of {collection.name} was saved.")
                return redirect("privacy:retention")
        status = 400
    context.update(
        {
            "form": form,
            "policies": RetentionPolicy.objects.select_related("collection").order_by("collection__name"),
            "log_form": log_form,
            "log_policies": [(p, logs.get(p.log, p.log)) for p in LogRetentionPolicy.objects.all()],
            "runs": RetentionRun.objects.all()[:50],
        }
    )
    return render(request, "privacy/retention.html", context, status=status)
