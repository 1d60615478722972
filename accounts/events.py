"""The events of members and invitations (subscribers: settings.TESSERA_EVENT_SUBSCRIBERS)."""

from __future__ import annotations

from typing import Any

from accounts.models import Invitation, User


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
