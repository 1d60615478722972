"""Reading privacy data: the personal-data map, and everything the workspace holds about one subject."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.models import User
from accounts.selectors import member_sessions_list
from audit.models import AuditEvent
from audit.vault import changes_open
from privacy.models import PersonalDataField, SubjectRequest
from privacy.subject_index import subject_record_keys
from records.models import Change, Collection, Record


def personal_data_map() -> dict[int, dict[str, bool]]:
    """{collection id: {field key: identifies the subject}} of the live collections."""
    out: dict[int, dict[str, bool]] = {}
    for row in PersonalDataField.objects.filter(collection__deleted_at=None):
        out.setdefault(row.collection_id, {})[row.field_key] = row.identifies_subject
    return out


def subject_records_find(identifier: str) -> list[Record]:
    """Every live record (tombstones too: they keep values) whose identifying field holds `identifier`,
    compared trimmed and case-insensitively, through the subject index (privacy.subject_index)."""
    identifier = (identifier or "").strip()
    if not identifier:
        return []
    keys = subject_record_keys(identifier)
    return list(Record.objects.filter(pk__in=keys, livemode=True).select_related("collection").order_by("id"))


def subject_member_find(identifier: str) -> User | None:
    """The workspace's member whose e-mail is `identifier` (members are data subjects too)."""
    identifier = (identifier or "").strip()
    return User.objects.filter(email__iexact=identifier).first() if identifier else None


def _member_data(user: User) -> dict[str, Any]:
    """A member's account, sessions, sign-in links, phones and what they did in the workspace (the
    audit log's entries naming them as the actor, with their address and client)."""
    acted = AuditEvent.objects.filter(actor_type="user", actor_id=str(user.pk)).order_by("seq")
    member: dict[str, Any] = {
        "email": user.email,
        "full_name": user.full_name,
        "role": user.role,
        "is_active": user.is_active,
        "auth_source": user.auth_source,
        "date_joined": user.date_joined.isoformat(),
        "last_login": user.last_login.isoformat() if user.last_login else None,
        "identity_provider_links": [
            {"issuer": i.issuer, "subject": i.subject} for i in user.sso_identities.all().order_by("pk")
        ],
        "sessions": member_sessions_list(user),
        "activity": [
            {
                "seq": e.seq,
                "occurred_at": e.occurred_at.isoformat(),
                "action": e.action,
                "target": [e.target_type, e.target_id],
                "ip": e.ip,
                "user_agent": e.user_agent,
            }
            for e in acted.iterator(chunk_size=2000)
        ],
    }
    for path in settings.TESSERA_SUBJECT_DATA_SOURCES:
        member.update(import_string(path)(user.pk))
    return member


@dataclass
class SubjectData:
    """What the workspace holds about one subject, as an access package shows it."""

    records: list[Record]
    history: list[Change]
    audit: list[dict[str, Any]]
    member: dict[str, Any] | None
    collections: dict[str, Collection] = field(default_factory=dict)


def subject_data_collect(identifier: str) -> SubjectData:
    records = subject_records_find(identifier)
    ids = [r.id for r in records]
    history = list(Change.objects.filter(livemode=True, record_id__in=ids).order_by("seq"))
    keys: dict = {}
    audit = [
        {
            "seq": e.seq,
            "occurred_at": e.occurred_at.isoformat(),
            "action": e.action,
            "record": e.target_id,
            # Who acted is another person's data (a member's name): only what happened to the subject's.
            "changes": changes_open(e.changes, keys=keys),
        }
        for e in AuditEvent.objects.filter(target_type="record", target_id__in=ids).order_by("seq")
    ]
    user = subject_member_find(identifier)
    member = _member_data(user) if user is not None else None
    return SubjectData(
        records=records,
        history=history,
        audit=audit,
        member=member,
        collections={r.collection.slug: r.collection for r in records},
    )


def subject_request_list(*, status: str = "") -> QuerySet[SubjectRequest]:
    qs = SubjectRequest.objects.all().order_by("due_at")
    if status == "overdue":
        return qs.filter(status=SubjectRequest.Status.OPEN, due_at__lt=timezone.now())
    if status:
        qs = qs.filter(status=status)
    return qs


def subject_request_get(request_id: str) -> SubjectRequest | None:
    return SubjectRequest.objects.filter(pk=request_id).first()
