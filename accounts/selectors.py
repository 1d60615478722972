"""Reads about people."""

from django.contrib.sessions.models import Session
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Invitation, User

_setup_done = False


def member_list(*, include_removed: bool = False) -> QuerySet[User]:
    qs = User.objects.all().order_by("email")
    return qs if include_removed else qs.filter(is_active=True)


def invitation_list_pending() -> list[Invitation]:
    return [
        i
        for i in Invitation.objects.select_related("invited_by").order_by("-created_at")[:200]
        if i.status == "pending"
    ]


def workspace_needs_setup() -> bool:
    """True until the workspace has its first active member (desktop first run)."""
    global _setup_done
    if _setup_done:
        return False
    if User.objects.filter(is_active=True).exists():
        _setup_done = True
        return False
    return True


def members_count() -> int:
    """Active members plus pending invitations: what the plan's `members` limit counts (an invitation
    holds a seat, so accepting it never fails on the limit)."""
    pending = Invitation.objects.filter(accepted_at=None, revoked_at=None, expires_at__gt=timezone.now())
    return User.objects.filter(is_active=True).count() + pending.count()


def member_sessions_list(user: User) -> list[dict]:
    """The member's signed-in sessions (a data-subject access request shows them): when each ends."""
    return [
        {"expires_at": s.expire_date.isoformat()}
        for s in Session.objects.filter(expire_date__gt=timezone.now()).order_by("expire_date").iterator()
        if s.get_decoded().get("_auth_user_id") == str(user.pk)
    ]
