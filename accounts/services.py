"""Writes about people: creating users, invitations, role changes, removal, handoff log-ins."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.events import MemberErased, invitation_object, member_object
from accounts.models import Invitation, LoginHandoff, User
from audit.services import audit_event_record, changes_diff
from audit.vault import email_subject
from billing import entitlements
from core.actors import Actor, ActorType, Principal
from core.errors import ServiceError
from core.events import DomainEvent, event_emit, target_of
from rbac.permissions import permission_check
from rbac.roles import Role
from tenants.runtime import workspace_current


class AccountError(ServiceError):
    """A request about people that cannot be carried out; `param` names the form field at fault."""


class LastAdminError(AccountError):
    status, code = 409, "last_admin"

    def __init__(self):
        super().__init__("A workspace needs at least one Admin: make someone else Admin first.", param="role")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def user_create(*, email: str, password: str | None, full_name: str = "", role: str = Role.VIEWER) -> User:
    email = User.objects.normalize_email((email or "").strip()).lower()
    if not email:
        raise AccountError("Enter an e-mail address.", param="email")
    try:
        from django.core.validators import validate_email

        validate_email(email)
    except ValidationError as exc:
        raise AccountError("Enter a valid e-mail address.", param="email") from exc
    if User.objects.filter(email__iexact=email).exists():
        raise AccountError("Someone with this e-mail is already a member.", param="email", code="duplicate")
    if password:
        try:
            validate_password(password, User(email=email, full_name=full_name))
        except ValidationError as exc:
            raise AccountError(" ".join(exc.messages), param="password", code="weak_password") from exc
    return User.objects.create_user(email=email, password=password, full_name=full_name.strip()[:150], role=role)


def _admins_left(excluding: User) -> int:
    return User.objects.filter(role=Role.ADMIN, is_active=True).exclude(pk=excluding.pk).count()


def member_role_change(*, actor: User, member: User, role: str) -> User:
    permission_check(actor, "members.manage")
    if role not in Role.values:
        raise AccountError("Choose a valid role.", param="role")
    if member.role == role:
        return member
    with transaction.atomic():
        member = User.objects.select_for_update().get(pk=member.pk)
        # Lock every Admin row so two demotions racing each other cannot both pass the check.
        list(User.objects.select_for_update().filter(role=Role.ADMIN, is_active=True))
        if member.role == Role.ADMIN and _admins_left(member) == 0:
            raise LastAdminError()
        before = member.role
        member.role = role
        member.save(update_fields=["role"])
        event_emit(
            DomainEvent(
                type="member.role_changed",
                actor=Actor.of(actor),
                data={"object": member_object(member), "previous_attributes": {"role": before}},
                target=target_of(member),
                changes=changes_diff({"role": before}, {"role": role}),
            )
        )
    return member


def member_remove(*, actor: User, member: User) -> User:
    permission_check(actor, "members.manage")
    with transaction.atomic():
        member = User.objects.select_for_update().get(pk=member.pk)
        list(User.objects.select_for_update().filter(role=Role.ADMIN, is_active=True))
        if not member.is_active:
            return member
        if member.role == Role.ADMIN and _admins_left(member) == 0:
            raise LastAdminError()
        member.is_active = False
        member.deactivated_at = timezone.now()
        member.save(update_fields=["is_active", "deactivated_at"])
        _sessions_end(member)
        event_emit(
            DomainEvent(
                type="member.removed",
                actor=Actor.of(actor),
                data={"object": member_object(member)},
                target=target_of(member),
                changes={"before": {"is_active": True, "role": member.role}, "after": {"is_active": False}},
            )
        )
    return member


def _sessions_end(user: User, *, expired_too: bool = False) -> int:
    from django.contrib.sessions.models import Session

    ended = 0
    sessions = Session.objects.all() if expired_too else Session.objects.filter(expire_date__gt=timezone.now())
    for session in sessions.iterator():
        if session.get_decoded().get("_auth_user_id") == str(user.pk):
            session.delete()
            ended += 1
    return ended


def member_erase(*, actor: Actor | Principal, member: User, reason: str = "") -> str:
    """Erase one of the workspace's own people (GDPR art. 17): their account and its sign-in links,
    sessions, invitations, log-in throttle entries and (through `member.erased`'s subscribers) their
    phones, their name and address in the audit log (vault keys destroyed; the chain still verifies),
    in webhook bodies and in who-changed-what stamps. The member is removed first if still active (the
    last Admin cannot be). Returns the erased member's id, the only thing left of them."""
    permission_check(actor, "compliance.manage")
    who = Actor.of(actor)
    if who.type == ActorType.USER and who.id == str(member.pk):
        raise AccountError("You cannot erase yourself: ask another Admin.", param="member", code="self_erasure")
    with transaction.atomic():
        member = User.objects.select_for_update().get(pk=member.pk)
        if member.is_active:
            list(User.objects.select_for_update().filter(role=Role.ADMIN, is_active=True))
            if member.role == Role.ADMIN and _admins_left(member) == 0:
                raise LastAdminError()
        member_id = str(member.pk)
        values = tuple(
            v
            for v in dict.fromkeys([member.email, member.full_name, member.sso_subject, member.scim_user_name])
            if v and len(v) >= 3
        )
        sessions = _sessions_end(member, expired_too=True)
        invitations, _ = Invitation.objects.filter(email__iexact=member.email).delete()
        throttled = _login_throttle_forget(member.email)
        event_emit(
            MemberErased(
                actor=who,
                data={"object": {"object": "member", "id": member_id, "erased": True}},
                target=("user", member_id, ""),
                changes={
                    "sessions_ended": sessions,
                    "invitations_deleted": invitations,
                    "throttle_entries_deleted": throttled,
                    "reason": reason[:200],
                },
                erased_values=values,
                vault_subjects=(f"user:{member_id}", email_subject(member.email)),
                member_id=member_id,
            )
        )
        member.delete()  # with it: sign-in links, identity-provider links, phones and their pairing codes
    return member_id


def user_password_reset_by_operator(*, email: str, password: str | None = None, how: str) -> tuple[User, str]:
    """Give a member a new password from outside the console (`tessera manage reset-password` on the
    computer that holds the workspace: a desktop owner who forgot theirs, where no mail can carry a
    reset link). `password` None makes a random one. Their failed log-ins are forgotten (a lockout
    ends) and their sessions end. Audited as `user.password_changed` by the operator. Returns the
    member and the password."""
    user = User.objects.filter(email__iexact=(email or "").strip(), is_active=True).first()
    if user is None:
        raise AccountError("No active member has this e-mail address in this workspace.", param="email")
    password = password or secrets.token_urlsafe(12)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise AccountError(" ".join(exc.messages), param="password") from exc
    with transaction.atomic():
        user.set_password(password)  # a new password hash: the member's sessions end (their auth hash)
        user.save(update_fields=["password"])
        _login_throttle_forget(user.email)
        audit_event_record(
            action="user.password_changed", actor=Actor.system(how), target=user, changes={"method": how}
        )
    return user, password


def _login_throttle_forget(email: str) -> int:
    return sum(
        model.objects.filter(username__iexact=email).delete()[0]
        for model in (AccessAttempt, AccessLog, AccessFailureLog)
    )


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    token: str  # shown once (as a link); only its hash is stored

    def path(self) -> str:
        return f"/accounts/invite/{self.token}/"


def invitation_create(*, actor: User, email: str, role: str, base_url: str | None = None) -> IssuedInvitation:
    permission_check(actor, "members.manage")
    email = User.objects.normalize_email((email or "").strip()).lower()
    try:
        from django.core.validators import validate_email

        validate_email(email)
    except ValidationError as exc:
        raise AccountError("Enter a valid e-mail address.", param="email") from exc
    if role not in Role.values:
        raise AccountError("Choose a valid role.", param="role")
    if User.objects.filter(email__iexact=email, is_active=True).exists():
        raise AccountError("This person is already a member.", param="email", code="duplicate")
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        entitlements.members_check()  # a pending invitation holds a seat
        # A new invitation replaces any pending one for the same address.
        Invitation.objects.filter(email__iexact=email, accepted_at=None, revoked_at=None).update(
            revoked_at=timezone.now()
        )
        invitation = Invitation.objects.create(
            email=email,
            role=role,
            token_hash=token_hash(token),
            invited_by=actor,
            expires_at=timezone.now() + settings.INVITATION_TTL,
        )
        event_emit(
            DomainEvent(
                type="member.invited",
                actor=Actor.of(actor),
                data={"object": invitation_object(invitation)},
                target=("invitation", str(invitation.pk), email),
                changes={"after": {"email": email, "role": role}},
            )
        )
    issued = IssuedInvitation(invitation, token)
    if base_url:
        link = base_url.rstrip("/") + issued.path()
        context = {"link": link, "inviter": actor, "invitation": invitation, "workspace_name": workspace_current().name}
        transaction.on_commit(
            lambda: send_mail(
                subject=f"{actor.display_name} invited you to Tessera",
                message=render_to_string("accounts/email/invitation.txt", context),
                from_email=None,
                recipient_list=[email],
                fail_silently=True,
            )
        )
    return issued


def invitation_revoke(*, actor: User, invitation: Invitation) -> Invitation:
    permission_check(actor, "members.manage")
    if invitation.status != "pending":
        raise AccountError("Only a pending invitation can be revoked.", code="not_pending")
    with transaction.atomic():
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        audit_event_record(
            action="member.invitation_revoked", actor=actor, target=("invitation", invitation.pk, invitation.email)
        )
    return invitation


def invitation_find(token: str) -> Invitation | None:
    return Invitation.objects.filter(token_hash=token_hash(token or "")).first()


def invitation_accept(*, token: str, full_name: str, password: str) -> User:
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().filter(token_hash=token_hash(token or "")).first()
        if invitation is None or invitation.status != "pending":
            status = invitation.status if invitation else "invalid"
            raise AccountError(f"This invitation is {status}. Ask an Admin for a new one.", code=f"invitation_{status}")
        existing = User.objects.filter(email__iexact=invitation.email).first()
        if existing is not None and existing.is_active:
            raise AccountError("This invitation was already used.", code="invitation_accepted")
        if existing is not None:  # a removed member coming back: reactivate, new password, invited role
            try:
                validate_password(password, existing)
            except ValidationError as exc:
                raise AccountError(" ".join(exc.messages), param="password", code="weak_password") from exc
            existing.is_active, existing.deactivated_at, existing.role = True, None, invitation.role
            existing.full_name = full_name.strip()[:150] or existing.full_name
            existing.set_password(password)
            existing.save()
            user = existing
        else:
            user = user_create(email=invitation.email, password=password, full_name=full_name, role=invitation.role)
        invitation.accepted_at = timezone.now()
        invitation.accepted_user = user
        invitation.save(update_fields=["accepted_at", "accepted_user"])
        event_emit(
            DomainEvent(
                type="member.joined",
                actor=Actor.of(user),
                data={"object": member_object(user)},
                target=target_of(user),
                changes={"after": {"role": user.role, "invited_by": getattr(invitation.invited_by, "email", "")}},
            )
        )
    return user


def login_handoff_create(*, user: User) -> str:
    token = secrets.token_urlsafe(32)
    LoginHandoff.objects.create(
        user=user, token_hash=token_hash(token), expires_at=timezone.now() + settings.LOGIN_HANDOFF_TTL
    )
    return token


def login_handoff_redeem(*, token: str) -> User | None:
    """The user a handoff token logs in, once, before it expires; otherwise None."""
    with transaction.atomic():
        handoff = LoginHandoff.objects.select_for_update().filter(token_hash=token_hash(token or "")).first()
        if handoff is None or handoff.used_at is not None or handoff.expires_at <= timezone.now():
            return None
        handoff.used_at = timezone.now()
        handoff.save(update_fields=["used_at"])
        return handoff.user if handoff.user.is_active else None


def login_attempts_expire(*, cutoff: datetime, dry_run: bool = False) -> int:
    """Log retention (privacy's policy for `login_attempts`): the log-in throttle's records of attempts
    (the typed address, IP address and browser) older than `cutoff`. Returns the rows taken."""
    logs = [
        AccessAttempt.objects.filter(attempt_time__lt=cutoff),
        AccessLog.objects.filter(attempt_time__lt=cutoff),
        AccessFailureLog.objects.filter(attempt_time__lt=cutoff),
    ]
    if dry_run:
        return sum(qs.count() for qs in logs)
    return sum(qs.delete()[0] for qs in logs)
