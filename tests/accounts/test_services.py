"""accounts.services and accounts.selectors: people, invitations, roles, removal, first run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import authenticate
from django.contrib.sessions.models import Session
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory
from django.utils import timezone

from accounts.models import Invitation, User
from accounts.onboarding import workspace_admin_setup
from accounts.selectors import invitation_list_pending, member_list, workspace_needs_setup
from accounts.services import (
    AccountError,
    LastAdminError,
    invitation_accept,
    invitation_create,
    invitation_find,
    invitation_revoke,
    login_handoff_create,
    login_handoff_redeem,
    member_remove,
    member_role_change,
    user_create,
)
from audit.models import AuditEvent
from audit.vault import changes_open
from rbac.roles import Role
from tests.conftest import ADMIN_PASSWORD

NEW_PASSWORD = "a-fresh-passphrase-42"


def latest_event(action: str) -> AuditEvent:
    event = AuditEvent.objects.filter(action=action).order_by("-seq").first()
    assert event is not None, f"no {action} audit event was written"
    return event


def login(email: str, password: str):
    return authenticate(RequestFactory().post("/accounts/login/"), username=email, password=password)


def sessions_of(user: User) -> list[Session]:
    return [s for s in Session.objects.all() if s.get_decoded().get("_auth_user_id") == str(user.pk)]


# --- users and authentication --------------------------------------------------------------------


def test_user_create_stores_email_lower_case_and_logs_in_with_any_case(tenant):
    user = user_create(email="  Mixed.Case@Alpha.TEST ", password=ADMIN_PASSWORD, role=Role.ANALYST)

    assert user.email == "mixed.case@alpha.test"
    assert login("MIXED.case@alpha.test", ADMIN_PASSWORD) == user


def test_user_create_refuses_an_existing_email_in_any_case(admin_user):
    with pytest.raises(AccountError) as exc:
        user_create(email="ADMIN@alpha.test", password=ADMIN_PASSWORD)

    assert exc.value.field == "email" and exc.value.code == "duplicate"
    assert User.objects.filter(email__iexact="admin@alpha.test").count() == 1


@pytest.mark.parametrize("password", ["short", "1234567890123", "password123"])
def test_user_create_refuses_weak_passwords(tenant, password):
    with pytest.raises(AccountError) as exc:
        user_create(email="weak@alpha.test", password=password)

    assert exc.value.field == "password"
    assert not User.objects.filter(email="weak@alpha.test").exists()


def test_wrong_password_and_deactivated_users_do_not_authenticate(make_user):
    user = make_user(role=Role.MANAGER)
    assert login(user.email, "not-the-password-1") is None

    user.is_active = False
    user.save()
    assert login(user.email, ADMIN_PASSWORD) is None


# --- roles -----------------------------------------------------------------------------------------


def test_role_change_is_recorded_with_before_and_after(admin_user, make_user):
    member = make_user(role=Role.VIEWER)

    member_role_change(actor=admin_user, member=member, role=Role.MANAGER)

    member.refresh_from_db()
    assert member.role == Role.MANAGER
    event = latest_event("member.role_changed")
    assert event.actor_label == admin_user.email
    assert event.target_id == str(member.pk)
    assert event.changes == {"before": {"role": "viewer"}, "after": {"role": "manager"}}


def test_setting_the_same_role_again_changes_nothing(admin_user, make_user):
    member = make_user(role=Role.ANALYST)
    before = AuditEvent.objects.filter(action="member.role_changed").count()

    member_role_change(actor=admin_user, member=member, role=Role.ANALYST)

    assert AuditEvent.objects.filter(action="member.role_changed").count() == before


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ANALYST, Role.VIEWER])
def test_only_admins_change_roles_or_remove_members(make_user, role):
    actor, member = make_user(role=role), make_user(role=Role.VIEWER)

    with pytest.raises(PermissionDenied):
        member_role_change(actor=actor, member=member, role=Role.ADMIN)
    with pytest.raises(PermissionDenied):
        member_remove(actor=actor, member=member)

    member.refresh_from_db()
    assert member.role == Role.VIEWER and member.is_active


def test_unknown_role_is_refused(admin_user, make_user):
    member = make_user()
    with pytest.raises(AccountError) as exc:
        member_role_change(actor=admin_user, member=member, role="owner")
    assert exc.value.field == "role"


def test_the_last_admin_cannot_be_demoted_or_removed(admin_user):
    with pytest.raises(LastAdminError) as demote:
        member_role_change(actor=admin_user, member=admin_user, role=Role.MANAGER)
    with pytest.raises(LastAdminError):
        member_remove(actor=admin_user, member=admin_user)

    assert "at least one Admin" in demote.value.message
    admin_user.refresh_from_db()
    assert admin_user.role == Role.ADMIN and admin_user.is_active


def test_with_a_second_admin_one_may_step_down(admin_user, make_user):
    other = make_user(role=Role.ADMIN)

    member_role_change(actor=admin_user, member=admin_user, role=Role.ANALYST)

    admin_user.refresh_from_db()
    assert admin_user.role == Role.ANALYST
    with pytest.raises(LastAdminError):  # now `other` is the last one
        member_remove(actor=other, member=other)


def test_a_removed_admin_does_not_count_as_an_admin(admin_user, make_user):
    other = make_user(role=Role.ADMIN)
    member_remove(actor=admin_user, member=other)

    with pytest.raises(LastAdminError):
        member_role_change(actor=admin_user, member=admin_user, role=Role.VIEWER)


# --- removal ---------------------------------------------------------------------------------------


def test_removal_deactivates_ends_sessions_and_is_recorded(tenant, admin_user, make_user, client_for):
    member = make_user(role=Role.MANAGER)
    client_for(tenant, member)
    client_for(tenant, member)  # two browsers
    admins_session = client_for(tenant, admin_user)
    assert len(sessions_of(member)) == 2

    member_remove(actor=admin_user, member=member)

    member.refresh_from_db()
    assert not member.is_active and member.deactivated_at is not None
    assert sessions_of(member) == []
    assert admins_session.get("/").status_code == 200  # nobody else is logged out
    assert member not in member_list()
    assert member in member_list(include_removed=True)
    event = latest_event("member.removed")
    assert event.target_id == str(member.pk)
    assert event.changes == {"before": {"is_active": True, "role": "manager"}, "after": {"is_active": False}}


def test_removing_a_removed_member_again_is_a_no_op(admin_user, make_user):
    member = make_user()
    member_remove(actor=admin_user, member=member)
    count = AuditEvent.objects.filter(action="member.removed").count()

    member_remove(actor=admin_user, member=member)

    assert AuditEvent.objects.filter(action="member.removed").count() == count


# --- invitations -----------------------------------------------------------------------------------


def test_invitation_stores_only_a_hash_and_is_recorded(admin_user):
    issued = invitation_create(actor=admin_user, email=" New.Person@Alpha.test ", role=Role.ANALYST)

    invitation = issued.invitation
    assert invitation.email == "new.person@alpha.test"
    assert invitation.role == Role.ANALYST
    assert invitation.status == "pending"
    assert issued.token not in invitation.token_hash
    assert invitation_find(issued.token) == invitation
    assert issued.path() == f"/accounts/invite/{issued.token}/"
    assert invitation.expires_at - timezone.now() > timedelta(days=6)
    event = latest_event("member.invited")
    assert event.actor_label == admin_user.email
    # the invitee's address is sealed under it in the chain (erasing them shreds it), shown opened
    assert "new.person@alpha.test" not in str(event.changes)
    assert changes_open(event.changes) == {"after": {"email": "new.person@alpha.test", "role": "analyst"}}


def test_invitation_email_is_sent_after_commit_with_the_link(admin_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        issued = invitation_create(
            actor=admin_user, email="mail@alpha.test", role=Role.VIEWER, base_url="http://alpha.example/"
        )

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["mail@alpha.test"]
    assert f"http://alpha.example/accounts/invite/{issued.token}/" in message.body
    assert "Viewer" in message.body


def test_invitation_without_base_url_sends_no_email(admin_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invitation_create(actor=admin_user, email="quiet@alpha.test", role=Role.VIEWER)
    assert mail.outbox == []


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ANALYST, Role.VIEWER])
def test_only_admins_invite(make_user, role):
    with pytest.raises(PermissionDenied):
        invitation_create(actor=make_user(role=role), email="x@alpha.test", role=Role.VIEWER)
    assert not Invitation.objects.filter(email="x@alpha.test").exists()


@pytest.mark.parametrize(
    ("email", "role", "field"),
    [("not-an-email", Role.VIEWER, "email"), ("", Role.VIEWER, "email"), ("ok@alpha.test", "owner", "role")],
)
def test_invitation_input_is_validated(admin_user, email, role, field):
    with pytest.raises(AccountError) as exc:
        invitation_create(actor=admin_user, email=email, role=role)
    assert exc.value.field == field


def test_an_active_member_cannot_be_invited_again(admin_user):
    with pytest.raises(AccountError) as exc:
        invitation_create(actor=admin_user, email="Admin@Alpha.test", role=Role.VIEWER)
    assert exc.value.code == "duplicate"


def test_a_new_invitation_replaces_the_pending_one(admin_user):
    first = invitation_create(actor=admin_user, email="twice@alpha.test", role=Role.VIEWER)
    second = invitation_create(actor=admin_user, email="twice@alpha.test", role=Role.MANAGER)

    assert invitation_find(first.token).status == "revoked"
    assert invitation_list_pending() == [second.invitation]
    with pytest.raises(AccountError):
        invitation_accept(token=first.token, full_name="", password=NEW_PASSWORD)


def test_accepting_creates_the_member_with_the_invited_role(admin_user):
    issued = invitation_create(actor=admin_user, email="joiner@alpha.test", role=Role.MANAGER)

    user = invitation_accept(token=issued.token, full_name=" Jo Iner ", password=NEW_PASSWORD)

    assert (user.email, user.role, user.full_name) == ("joiner@alpha.test", Role.MANAGER, "Jo Iner")
    assert login("joiner@alpha.test", NEW_PASSWORD) == user
    invitation = invitation_find(issued.token)
    assert invitation.status == "accepted" and invitation.accepted_user == user
    assert invitation_list_pending() == []
    event = latest_event("member.joined")
    assert event.actor_label == "joiner@alpha.test"
    assert changes_open(event.changes) == {"after": {"role": "manager", "invited_by": admin_user.email}}


def test_an_invitation_works_once(admin_user):
    issued = invitation_create(actor=admin_user, email="once@alpha.test", role=Role.VIEWER)
    invitation_accept(token=issued.token, full_name="", password=NEW_PASSWORD)

    with pytest.raises(AccountError) as exc:
        invitation_accept(token=issued.token, full_name="", password="another-passphrase-7")

    assert exc.value.code == "invitation_accepted"
    assert login("once@alpha.test", NEW_PASSWORD) is not None  # the password did not change


def test_expired_revoked_and_unknown_invitations_are_refused(admin_user):
    expired = invitation_create(actor=admin_user, email="late@alpha.test", role=Role.VIEWER)
    Invitation.objects.filter(pk=expired.invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    revoked = invitation_create(actor=admin_user, email="revoked@alpha.test", role=Role.VIEWER)
    invitation_revoke(actor=admin_user, invitation=revoked.invitation)

    for token, code in [
        (expired.token, "invitation_expired"),
        (revoked.token, "invitation_revoked"),
        ("no-such-token", "invitation_invalid"),
    ]:
        with pytest.raises(AccountError) as exc:
            invitation_accept(token=token, full_name="", password=NEW_PASSWORD)
        assert exc.value.code == code
    assert not User.objects.filter(email__in=["late@alpha.test", "revoked@alpha.test"]).exists()
    assert latest_event("member.invitation_revoked").target_label == "revoked@alpha.test"


def test_only_pending_invitations_can_be_revoked(admin_user):
    issued = invitation_create(actor=admin_user, email="done@alpha.test", role=Role.VIEWER)
    invitation_accept(token=issued.token, full_name="", password=NEW_PASSWORD)

    with pytest.raises(AccountError):
        invitation_revoke(actor=admin_user, invitation=invitation_find(issued.token))


def test_a_weak_password_keeps_the_invitation_usable(admin_user):
    issued = invitation_create(actor=admin_user, email="weakling@alpha.test", role=Role.VIEWER)

    with pytest.raises(AccountError) as exc:
        invitation_accept(token=issued.token, full_name="", password="12345")

    assert exc.value.field == "password"
    assert invitation_find(issued.token).status == "pending"
    assert not User.objects.filter(email="weakling@alpha.test").exists()


def test_reinviting_a_removed_member_reactivates_them(admin_user, make_user):
    member = make_user(role=Role.MANAGER, full_name="Back Again")
    member_remove(actor=admin_user, member=member)

    issued = invitation_create(actor=admin_user, email=member.email.upper(), role=Role.ANALYST)
    user = invitation_accept(token=issued.token, full_name="", password=NEW_PASSWORD)

    assert user.pk == member.pk
    assert (user.is_active, user.deactivated_at, user.role, user.full_name) == (True, None, Role.ANALYST, "Back Again")
    assert login(member.email, NEW_PASSWORD) == user
    assert login(member.email, ADMIN_PASSWORD) is None  # the old password is gone
    assert User.objects.filter(email__iexact=member.email).count() == 1


# --- sign-up handoff and first run -----------------------------------------------------------------


def test_login_handoff_works_once(admin_user):
    token = login_handoff_create(user=admin_user)

    assert login_handoff_redeem(token=token) == admin_user
    assert login_handoff_redeem(token=token) is None
    assert login_handoff_redeem(token="forged") is None


def test_login_handoff_expires(admin_user):
    from accounts.models import LoginHandoff

    token = login_handoff_create(user=admin_user)
    LoginHandoff.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    assert login_handoff_redeem(token=token) is None


def test_first_run_setup_creates_one_admin_only(tenant):
    User.objects.all().delete()
    assert workspace_needs_setup()

    user = workspace_admin_setup(email="Owner@Shop.test", password=NEW_PASSWORD, full_name="Owner")

    assert (user.email, user.role) == ("owner@shop.test", Role.ADMIN)
    assert not workspace_needs_setup()
    assert latest_event("user.signed_up").actor_label == "owner@shop.test"
    with pytest.raises(AccountError) as exc:
        workspace_admin_setup(email="intruder@shop.test", password=NEW_PASSWORD, full_name="")
    assert exc.value.code == "already_set_up"
    assert not User.objects.filter(email="intruder@shop.test").exists()
