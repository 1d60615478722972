"""Data-subject requests (GDPR art. 15–18, CCPA): open one with its due date, extend it, make the
access package, erase the subject through the write spine, close it with a certificate; remind Admins
before a request falls due. And the personal-data map those requests search by.

Every step is audited; the subject's identifier never enters the audit chain (only the request's id).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import member_erase
from audit.services import audit_event_record
from audit.vault import EMAIL, email_subject
from core.actors import Actor, Principal
from core.errors import Conflict, Forbidden, ServiceError
from core.events import DomainEvent, event_emit
from core.workspace_memo import workspace_memo_forget
from privacy.events import SubjectErased, subject_erased_data
from privacy.models import PersonalDataField, RetentionRun, SubjectRequest
from privacy.package import package_token
from privacy.selectors import subject_member_find, subject_records_find
from privacy.subject_index import subject_index_rebuild
from rbac.permissions import has_permission
from rbac.roles import Role
from records.models import Collection, Record
from records.services import record_erase, record_update, records_restriction_set
from tenants.runtime import workspace_current

ERASED = "[erased]"


def _certificate_head(request: SubjectRequest, now) -> dict:
    """What every request's certificate opens with: which request, under which regime, and whether it
    was answered within its deadline."""
    return {
        "request": request.id,
        "kind": request.kind,
        "regime": request.regime,
        "received_at": request.received_at.isoformat(),
        "due_at": request.due_at.isoformat(),
        "completed_at": now.isoformat(),
        "on_time": now <= request.due_at,
    }


def compliance_require(actor: Actor | Principal) -> None:
    if not has_permission(actor, "compliance.manage"):
        raise Forbidden("Not allowed: this needs the compliance.manage permission.")


def due_days(regime: str) -> int:
    return settings.TESSERA_DSR_DUE_DAYS[regime]


# --- the personal-data map ----------------------------------------------------------------------------


def personal_data_map_set(
    *, actor: Actor | Principal, collection: Collection, personal: list[str], identifying: list[str]
) -> list[PersonalDataField]:
    """Mark which of the collection's fields hold personal data and which identify the subject (an
    identifying field is personal too)."""
    compliance_require(actor)
    known = {f["key"] for f in collection.fields}
    for param, keys in (("personal", personal), ("identifying", identifying)):
        unknown = sorted(set(keys) - known)
        if unknown:
            raise ServiceError(f"No field {', '.join(unknown)} in {collection.slug}.", param=param)
    keys = sorted(set(personal) | set(identifying))
    with transaction.atomic():
        before = {r.field_key: r.identifies_subject for r in PersonalDataField.objects.filter(collection=collection)}
        PersonalDataField.objects.filter(collection=collection).delete()
        workspace_memo_forget(workspace_current().pk)  # the subject index's remembered identifying fields
        rows = PersonalDataField.objects.bulk_create(
            [PersonalDataField(collection=collection, field_key=k, identifies_subject=k in identifying) for k in keys]
        )
        after = {r.field_key: r.identifies_subject for r in rows}
        if {k for k, v in before.items() if v} != {k for k, v in after.items() if v}:
            subject_index_rebuild(collection)
        if before != after:
            audit_event_record(
                action="personal_data_map.changed",
                actor=actor,
                target=collection,
                changes={"before": before, "after": after},
            )
    return rows


# --- requests ------------------------------------------------------------------------------------------


def subject_request_open(
    *,
    actor: Actor | Principal,
    kind: str,
    subject_identifier: str,
    requested_by: str,
    verification: str,
    regime: str = SubjectRequest.Regime.GDPR,
    received_at: datetime | None = None,
) -> SubjectRequest:
    compliance_require(actor)
    if kind not in SubjectRequest.Kind.values:
        raise ServiceError(f"`kind` must be one of {', '.join(SubjectRequest.Kind.values)}.", param="kind")
    if regime not in SubjectRequest.Regime.values:
        raise ServiceError(f"`regime` must be one of {', '.join(SubjectRequest.Regime.values)}.", param="regime")
    subject_identifier = (subject_identifier or "").strip()
    if not subject_identifier or len(subject_identifier) > 320:
        raise ServiceError("Give the subject's e-mail, phone or customer id (up to 320 characters).", param="subject")
    if not (requested_by or "").strip():
        raise ServiceError("Say who asked (and how).", param="requested_by")
    if not (verification or "").strip():
        raise ServiceError("Say how the requester's identity was verified.", param="verification")
    now = timezone.now()
    received_at = received_at or now
    if received_at > now:
        raise ServiceError("A request cannot be received in the future.", param="received_at")
    with transaction.atomic():
        request = SubjectRequest.objects.create(
            kind=kind,
            regime=regime,
            subject_identifier=subject_identifier,
            requested_by=requested_by.strip()[:300],
            verification=verification.strip()[:500],
            received_at=received_at,
            due_at=received_at + timedelta(days=due_days(regime)),
            created_by=Actor.of(actor).stamp(),
        )
        audit_event_record(
            action="subject_request.opened",
            actor=actor,
            target=("subject_request", request.id, request.id),
            changes={"kind": kind, "regime": regime, "due_at": request.due_at.isoformat()},
        )
    return request


def _open_check(request: SubjectRequest) -> None:
    if request.status != SubjectRequest.Status.OPEN:
        raise Conflict(f"This request is {request.status} already.", code="request_closed")


def subject_request_extend(*, actor: Actor | Principal, request: SubjectRequest, reason: str) -> SubjectRequest:
    """Extend the due date once (GDPR art. 12(3): by two more months; CCPA: by 45 more days)."""
    compliance_require(actor)
    _open_check(request)
    if request.extended:
        raise Conflict("This request was extended already; it can be extended once.", code="already_extended")
    if not (reason or "").strip():
        raise ServiceError("Say why the request needs more time (the subject must be told).", param="reason")
    with transaction.atomic():
        before = request.due_at
        request.due_at = request.due_at + timedelta(days=settings.TESSERA_DSR_EXTENSION_DAYS[request.regime])
        request.extended = True
        request.reminded_at = None
        request.save(update_fields=["due_at", "extended", "reminded_at"])
        audit_event_record(
            action="subject_request.extended",
            actor=actor,
            target=("subject_request", request.id, request.id),
            changes={"before": {"due_at": before.isoformat()}, "after": {"due_at": request.due_at.isoformat()}},
        )
    return request


def subject_request_erase(*, actor: Actor | Principal, request: SubjectRequest) -> SubjectRequest:
    """Erase everything the workspace holds about the subject, each record through the write spine
    (so the audit vault, webhooks, cached responses and phones all hear of it) and, when the subject is
    one of the workspace's members, their account too (accounts.services.member_erase: sessions,
    phones, their name in the audit log and in stamps); then close the request with its certificate.
    Every request about the same identifier forgets it, this one included; webhook endpoints get
    `subject.erased`, which names no one."""
    compliance_require(actor)
    _open_check(request)
    if request.kind != SubjectRequest.Kind.ERASURE:
        raise Conflict("Only an erasure request erases.", code="wrong_kind")
    identifier = request.subject_identifier
    with transaction.atomic():
        records = subject_records_find(identifier)
        member = subject_member_find(identifier)
        by_collection: dict[str, int] = {}
        for record in records:
            record_erase(actor=actor, record=record, reason=f"subject request {request.id}")
            by_collection[record.collection.slug] = by_collection.get(record.collection.slug, 0) + 1
        if member is not None:
            member_erase(actor=actor, member=member, reason=f"subject request {request.id}")
        now = timezone.now()
        request.certificate = {
            **_certificate_head(request, now),
            "records_erased": len(records),
            "records_erased_by_collection": by_collection,
            "member_erased": member is not None,
            "done": [
                "record values and their change history removed (tombstones without values remain)",
                "audit vault keys of those records destroyed; the audit chain still verifies",
                "webhook event bodies and delivery logs about those records emptied",
                "cached API responses showing those records forgotten",
                "record.deleted sent to webhook endpoints and paired phones; subject.erased to webhook endpoints",
                *(
                    [
                        "the member's account, sessions, sign-in links and phones deleted; their name and "
                        "address erased from the audit log (vault keys destroyed), webhook bodies and record stamps"
                    ]
                    if member is not None
                    else []
                ),
                "the requests' own copies of the subject's identifier erased",
            ],
            "by": Actor.of(actor).label,
        }
        erased_values = tuple(v.lower() for v in (identifier, request.requested_by) if len(v) >= 3)
        event_emit(
            SubjectErased(
                actor=Actor.of(actor),
                target=("subject_request", request.id, request.id),
                data=subject_erased_data(
                    request_id=request.id,
                    records=[(r.collection.slug, r.id) for r in records],
                    member_erased=member is not None,
                ),
                erased_values=erased_values,
                vault_subjects=tuple(email_subject(e) for e in EMAIL.findall(identifier)),
            )
        )
        SubjectRequest.objects.filter(subject_identifier__iexact=identifier).exclude(pk=request.pk).update(
            subject_identifier=ERASED, requested_by=ERASED, subject_erased=True
        )
        request.subject_identifier = ERASED
        request.requested_by = ERASED
        request.subject_erased = True
        request.status = SubjectRequest.Status.COMPLETED
        request.completed_at = now
        request.save()
        audit_event_record(
            action="subject_request.erased",
            actor=actor,
            target=("subject_request", request.id, request.id),
            changes={
                "records_erased": len(records),
                "by_collection": by_collection,
                "member_erased": member is not None,
            },
        )
    return request


def subject_request_rectify(
    *, actor: Actor | Principal, request: SubjectRequest, corrections: dict[str, Any]
) -> SubjectRequest:
    """Correct the subject's data (GDPR art. 16): each of the subject's live records whose collection
    has a corrected field is updated through the write spine (validated, versioned, audited, sent to
    webhooks and phones like any edit), all or none; then the request is completed with its
    certificate (the fields and records corrected, never the values)."""
    compliance_require(actor)
    _open_check(request)
    if request.kind != SubjectRequest.Kind.RECTIFICATION:
        raise Conflict("Only a rectification request rectifies.", code="wrong_kind")
    if not isinstance(corrections, dict) or not corrections or not all(isinstance(k, str) for k in corrections):
        raise ServiceError("Give the corrected values, as {field: value}.", param="corrections")
    with transaction.atomic():
        done: list[dict[str, Any]] = []
        for record in subject_records_find(request.subject_identifier):
            if record.deleted_at is not None:
                continue
            data = {k: v for k, v in corrections.items() if record.collection.field(k) is not None}
            if data:
                record_update(actor=actor, record=record, data=data)
                done.append({"collection": record.collection.slug, "id": record.id, "fields": sorted(data)})
        unused = sorted(set(corrections) - {f for d in done for f in d["fields"]})
        if not done or unused:
            raise ServiceError(
                f"No record of the subject has the field(s) {', '.join(unused or sorted(corrections))}.",
                param="corrections",
            )
        now = timezone.now()
        request.status = SubjectRequest.Status.COMPLETED
        request.completed_at = now
        request.certificate = {
            **_certificate_head(request, now),
            "records_rectified": done,
            "done": [
                "the corrected values written to each record through the usual edit path (audited, "
                "sent to webhooks and phones)"
            ],
            "by": Actor.of(actor).label,
        }
        request.save(update_fields=["status", "completed_at", "certificate"])
        audit_event_record(
            action="subject_request.rectified",
            actor=actor,
            target=("subject_request", request.id, request.id),
            changes={"records_rectified": len(done), "fields": sorted(corrections)},
        )
    return request


def subject_request_restrict(*, actor: Actor | Principal, request: SubjectRequest) -> SubjectRequest:
    """Restrict the processing of the subject's data (GDPR art. 18): each of their live records is kept
    but no longer edited, exported, analysed, sent to webhooks or to phones
    (records.services.records_restriction_set), until `subject_request_restriction_lift`. The request is
    answered (completed, with its certificate); the restriction stays in force after that."""
    compliance_require(actor)
    _open_check(request)
    if request.kind != SubjectRequest.Kind.RESTRICTION:
        raise Conflict("Only a restriction request restricts.", code="wrong_kind")
    with transaction.atomic():
        records = [r for r in subject_records_find(request.subject_identifier) if r.deleted_at is None]
        if not records:
            raise ServiceError("No live record holds this subject's identifier: there is nothing to restrict.")
        records_restriction_set(actor=actor, records=records, restricted=True, reason=f"subject request {request.id}")
        now = timezone.now()
        request.status = SubjectRequest.Status.COMPLETED
        request.completed_at = now
        request.restricted_at = now
        request.certificate = {
            **_certificate_head(request, now),
            "records_restricted": [{"collection": r.collection.slug, "id": r.id} for r in records],
            "done": [
                "the subject's records kept as they are: edits refused until the restriction is lifted",
                "left out of exports, analytics and scheduled reports",
                "webhook deliveries about them held; phones told to drop them",
            ],
            "by": Actor.of(actor).label,
        }
        request.save(update_fields=["status", "completed_at", "restricted_at", "certificate"])
        audit_event_record(
            action="subject_request.restricted",
            actor=actor,
            target=("subject_request", request.id, request.id),
            changes={"records_restricted": len(records)},
        )
    return request


def subject_request_restriction_lift(
    *, actor: Actor | Principal, request: SubjectRequest, reason: str
) -> SubjectRequest:
    """Lift a restriction (GDPR art. 18(3): the subject is told before it is lifted, hence the reason):
    the records it restricted are processed again (edits, exports, analytics; held webhook deliveries go
    out, phones get them back). Audited with the reason."""
    compliance_require(actor)
    if request.kind != SubjectRequest.Kind.RESTRICTION or not request.restriction_active:
        raise Conflict("This request has no restriction in force.", code="not_restricted")
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError("Say why the restriction is lifted (the subject must be told first).", param="reason")
    ids = [r["id"] for r in request.certificate.get("records_restricted", [])]
    with transaction.atomic():
        records = list(Record.objects.filter(livemode=True, id__in=ids))
        lifted = records_restriction_set(
            actor=actor, records=records, restricted=False, reason=f"subject request {request.id}"
        )
        now = timezone.now()
        request.restriction_lifted_at = now
        request.certificate = {
            **request.certificate,
            "restriction_lifted_at": now.isoformat(),
            "restriction_lifted_by": Actor.of(actor).label,
            "restriction_lifted_because": reason[:500],
        }
        request.save(update_fields=["restriction_lifted_at", "certificate"])
        audit_event_record(
            action="subject_request.restriction_lifted",
            actor=actor,
            target=("subject_request", request.id, request.id),
            # the reason stays in the certificate, out of the chain: free text may name the subject
            changes={"records": len(lifted)},
        )
    return request


def subject_request_package(*, actor: Actor | Principal, request: SubjectRequest) -> tuple[str, datetime]:
    """A signed, expiring link token for the request's access package (privacy.package)."""
    compliance_require(actor)
    if request.subject_erased:
        raise Conflict("The subject was erased: there is nothing left to export.", code="subject_erased")
    if request.kind != SubjectRequest.Kind.ACCESS:
        raise Conflict("Only an access request gets a package.", code="wrong_kind")
    token, expires_at = package_token(request)
    audit_event_record(
        action="subject_request.exported",
        actor=actor,
        target=("subject_request", request.id, request.id),
        changes={"link_expires_at": expires_at.isoformat()},
    )
    return token, expires_at


def subject_request_close(
    *, actor: Actor | Principal, request: SubjectRequest, status: str, note: str = ""
) -> SubjectRequest:
    """Close a request that needs no erasure (access sent, rectified, restricted) or reject it."""
    compliance_require(actor)
    _open_check(request)
    if status not in (SubjectRequest.Status.COMPLETED, SubjectRequest.Status.REJECTED):
        raise ServiceError("Close as completed or rejected.", param="status")
    if status == SubjectRequest.Status.REJECTED and not note.strip():
        raise ServiceError("Say why the request is rejected (the subject must be told).", param="note")
    now = timezone.now()
    with transaction.atomic():
        request.status = status
        request.completed_at = now
        request.certificate = {
            **_certificate_head(request, now),
            "status": status,
            "note": note.strip()[:1000],
            "by": Actor.of(actor).label,
        }
        request.save(update_fields=["status", "completed_at", "certificate"])
        audit_event_record(
            action="subject_request.closed",
            actor=actor,
            target=("subject_request", request.id, request.id),
            changes={"status": status},
        )
    return request


def subject_requests_remind(*, now: datetime | None = None) -> list[SubjectRequest]:
    """E-mail the workspace's Admins about each open request falling due within the reminder window
    (or overdue) that they were not reminded of yet; returns those requests. Run daily by beat."""
    now = now or timezone.now()
    window = now + timedelta(days=settings.TESSERA_DSR_REMIND_DAYS)
    due = list(SubjectRequest.objects.filter(status=SubjectRequest.Status.OPEN, due_at__lte=window, reminded_at=None))
    if not due:
        return []
    admins = list(User.objects.filter(role=Role.ADMIN, is_active=True).values_list("email", flat=True))
    for request in due:
        with transaction.atomic():
            state = "is overdue" if now > request.due_at else f"is due on {request.due_at:%Y-%m-%d}"
            send_mail(
                subject=f"Data-subject request {request.id} {state}",
                message=(
                    f"The {request.get_kind_display().lower()} request {request.id} ({request.get_regime_display()}) "
                    f"{state}. Open Compliance in Tessera to handle it."
                ),
                from_email=None,
                recipient_list=admins,
            )
            request.reminded_at = now
            request.save(update_fields=["reminded_at"])
            audit_event_record(
                action="subject_request.reminded",
                actor=Actor.system("sla clock"),
                target=("subject_request", request.id, request.id),
                changes={"due_at": request.due_at.isoformat(), "admins": len(admins)},
            )
    return due


def member_erased_stamps_forget(event: DomainEvent) -> None:
    """Subscriber (in the transaction) of `member.erased`: who opened requests and ran retention keeps
    the member's id, not their name."""
    member_id = getattr(event, "member_id", "")
    if event.type != "member.erased" or not member_id:
        return
    prefix = f"user:{member_id}:"
    SubjectRequest.objects.filter(created_by__startswith=prefix).update(created_by=prefix + ERASED)
    RetentionRun.objects.filter(actor__startswith=prefix).update(actor=prefix + ERASED)
