"""The events of members and invitations (subscribers: settings.TESSERA_EVENT_SUBSCRIBERS)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accounts.models import Invitation, User
from core.events import DomainEvent


def member_object(user: User) -> dict[str, Any]:
    return {"object": "member", "id": str(user.pk), "email": user.email, "role": user.role}


def invitation_object(invitation: Invitation) -> dict[str, Any]:
    return {
        "object": "invitation",
        "id": str(invitation.pk),
        "email": invitation.email,
        "role": invitation.role,
        "expires_at": invitation.expires_at.isoformat(),
    }


@dataclass(frozen=True, kw_only=True)
class MemberErased(DomainEvent):
    """A member was erased (a data-subject request about one of the workspace's own people). Its `data`
    names the member by id only; `erased_values` (their e-mail, name, identity-provider names) and
    `vault_subjects` (their audit vault subjects) tell the stores holding copies what to forget, in the
    transaction. Not a webhook: partners hear `subject.erased` from the request (privacy.events)."""

    type: str = "member.erased"
    erased_values: tuple[str, ...] = ()
    vault_subjects: tuple[str, ...] = ()
    member_id: str = ""
