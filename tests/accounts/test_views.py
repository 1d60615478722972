"""The console's pages about people, driven as a browser would: log-in, throttling, invitations,
password reset, members and roles, and the desktop's first-run set-up."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from accounts.models import Invitation, User
from audit.models import AuditEvent
from rbac.roles import Role
from tests.conftest import ADMIN_PASSWORD, host_of
from tests.html_forms import form_with_button

NEW_PASSWORD = "a-fresh-passphrase-42"
WRONG_PASSWORD = "not-the-password-1"
LOGIN_ERROR = "That e-mail and password do not match an account in this workspace."


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("-seq"))


def log_in(client, email: str, password: str):
    return client.post("/accounts/login/", {"username": email, "password": password})


def is_logged_in(client) -> bool:
    response = client.get("/")
    return response.status_code == 200 and b"Welcome" in response.content


def text(response) -> str:
    return response.content.decode()


# --- log-in and log-out ----------------------------------------------------------------------------


def test_login_page_offers_email_and_password(anon_client):
    response = anon_client.get("/accounts/login/")

    assert response.status_code == 200
    page = text(response)
    assert 'type="email" name="username"' in page
    assert 'type="password" name="password"' in page
    assert "Forgot your password?" in page


def test_login_with_email_in_any_case(anon_client, admin_user):
    response = log_in(anon_client, "  ADMIN@Alpha.Test ", ADMIN_PASSWORD)

    assert response.status_code == 302 and response["Location"] == "/"
    assert is_logged_in(anon_client)
    event = events("user.logged_in")[0]
    assert event.actor_label == admin_user.email
    assert event.ip == "127.0.0.1"
    assert event.request_id.startswith("req_")


def test_wrong_password_shows_the_form_error(anon_client, admin_user):
    response = log_in(anon_client, admin_user.email, WRONG_PASSWORD)

    assert response.status_code == 400
    assert LOGIN_ERROR in text(response)
    assert f'value="{admin_user.email}"' in text(response)  # the e-mail is kept for the next try
    assert not is_logged_in(anon_client)
    assert events("user.login_failed")[0].actor_label == admin_user.email


def test_unknown_email_gets_the_same_error(anon_client):
    response = log_in(anon_client, "nobody@alpha.test", ADMIN_PASSWORD)

    assert response.status_code == 400
    assert LOGIN_ERROR in text(response)


@pytest.mark.parametrize(
    "data",
    [{}, {"username": "not-an-email", "password": "x"}, {"username": "a" * 250 + "@alpha.test", "password": "x"}],
)
def test_bad_login_input_is_a_form_error(anon_client, data):
    response = anon_client.post("/accounts/login/", data)

    assert response.status_code == 400
    assert 'class="error"' in text(response)


def test_deactivated_user_cannot_log_in(anon_client, make_user):
    member = make_user(role=Role.MANAGER)
    member.is_active = False
    member.save()

    response = log_in(anon_client, member.email, ADMIN_PASSWORD)

    assert response.status_code == 400
    assert LOGIN_ERROR in text(response)
    assert not is_logged_in(anon_client)


def test_login_returns_to_the_page_asked_for(anon_client, admin_user):
    response = anon_client.get("/members/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/members/"

    response = anon_client.post(
        "/accounts/login/", {"username": admin_user.email, "password": ADMIN_PASSWORD, "next": "/members/"}
    )

    assert response["Location"] == "/members/"


def test_login_never_redirects_to_another_site(anon_client, admin_user):
    response = anon_client.post(
        "/accounts/login/", {"username": admin_user.email, "password": ADMIN_PASSWORD, "next": "https://evil.test/"}
    )

    assert response.status_code == 302 and response["Location"] == "/"


def test_logged_in_user_skips_the_login_page(admin_client):
    response = admin_client.get("/accounts/login/")
    assert response.status_code == 302 and response["Location"] == "/"


def test_logout_is_post_only_and_ends_the_session(admin_client, admin_user):
    session_key = admin_client.cookies["tessera_session"].value

    assert admin_client.get("/accounts/logout/").status_code == 405
    assert is_logged_in(admin_client)

    response = admin_client.post("/accounts/logout/")

    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert not is_logged_in(admin_client)
    assert not Session.objects.filter(session_key=session_key).exists()
    assert events("user.logged_out")[0].actor_label == admin_user.email


def test_console_pages_offer_logout_as_a_post_form(admin_client):
    form = form_with_button(admin_client.get("/"), "Log out")
    assert (form.method, form.action) == ("post", "/accounts/logout/")
    assert "csrfmiddlewaretoken" in form.fields


def test_argon2_is_the_production_password_hasher(make_user):
    import config.settings as mode_settings
    from config.settings import base

    assert base.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
    assert mode_settings.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
    with override_settings(PASSWORD_HASHERS=base.PASSWORD_HASHERS):
        user = make_user()
        assert user.password.startswith("argon2$argon2id$")
        assert user.check_password(ADMIN_PASSWORD)


# --- login throttling ------------------------------------------------------------------------------


def fail_logins(client, email: str, times: int) -> list[int]:
    return [log_in(client, email, WRONG_PASSWORD).status_code for _ in range(times)]


def test_five_failures_lock_out_that_email_from_that_address(anon_client, admin_user):
    assert fail_logins(anon_client, admin_user.email, 4) == [400] * 4
    assert events("user.locked_out") == []
    assert fail_logins(anon_client, admin_user.email, 1) == [429]
    locked = events("user.locked_out")
    assert len(locked) == 1
    assert locked[0].actor_label == admin_user.email
    assert locked[0].changes == {"ip": "127.0.0.1"}
    assert len(events("user.login_failed")) == 5

    response = log_in(anon_client, admin_user.email, ADMIN_PASSWORD)

    assert response.status_code == 429
    assert "Too many failed log-ins" in text(response)
    assert "/accounts/password-reset/" in text(response)
    assert not is_logged_in(anon_client)
    assert events("user.logged_in") == []


def test_lockout_counts_an_email_however_it_is_cased(anon_client, admin_user):
    fail_logins(anon_client, "admin@alpha.test", 3)
    fail_logins(anon_client, "ADMIN@ALPHA.TEST", 2)

    assert log_in(anon_client, "Admin@Alpha.Test", ADMIN_PASSWORD).status_code == 429


def test_lockout_spares_other_addresses_and_other_people(tenant, client_for, admin_user, make_user):
    attacker = client_for(tenant, REMOTE_ADDR="203.0.113.9")
    fail_logins(attacker, admin_user.email, 5)

    from_office = client_for(tenant, REMOTE_ADDR="198.51.100.7")
    assert log_in(from_office, admin_user.email, ADMIN_PASSWORD).status_code == 302

    colleague = make_user(role=Role.VIEWER)
    assert log_in(attacker, colleague.email, ADMIN_PASSWORD).status_code == 302


def test_forwarded_for_header_does_not_escape_the_lockout(tenant, client_for, admin_user):
    client = client_for(tenant, REMOTE_ADDR="203.0.113.9")
    fail_logins(client, admin_user.email, 5)

    response = client.post(
        "/accounts/login/",
        {"username": admin_user.email, "password": ADMIN_PASSWORD},
        HTTP_X_FORWARDED_FOR="198.51.100.1",
    )

    assert response.status_code == 429


def test_behind_a_load_balancer_lockouts_follow_the_client_not_the_balancer(tenant, client_for, admin_user, settings):
    """One trusted proxy (TESSERA_TRUSTED_PROXIES=1): every request comes from the balancer's address,
    the client's is the last X-Forwarded-For hop. An attacker's failures lock only the attacker out,
    whatever address it writes into the header itself; the owner logging in from the office still can."""
    settings.TESSERA_TRUSTED_PROXIES = 1
    balancer = {"REMOTE_ADDR": "10.0.0.2"}
    attacker = client_for(tenant, **balancer, HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert fail_logins(attacker, admin_user.email, 5)[-1] == 429
    assert events("user.locked_out")[0].changes == {"ip": "203.0.113.9"}

    # the attacker claims to be the office: the balancer still appends the address it really came from
    spoofing = client_for(tenant, **balancer, HTTP_X_FORWARDED_FOR="198.51.100.7, 203.0.113.9")
    assert log_in(spoofing, admin_user.email, ADMIN_PASSWORD).status_code == 429

    office = client_for(tenant, **balancer, HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert log_in(office, admin_user.email, ADMIN_PASSWORD).status_code == 302


def test_a_successful_login_resets_the_failure_count(tenant, client_for, admin_user):
    client = client_for(tenant)
    fail_logins(client, admin_user.email, 4)
    assert log_in(client, admin_user.email, ADMIN_PASSWORD).status_code == 302
    client.post("/accounts/logout/")

    assert fail_logins(client, admin_user.email, 4) == [400] * 4
    assert log_in(client, admin_user.email, ADMIN_PASSWORD).status_code == 302


# --- invitations -----------------------------------------------------------------------------------


def invite(client, email: str, role: str, capture):
    with capture(execute=True):
        return client.post("/members/", {"email": email, "role": role})


def invite_link(response) -> str:
    links = re.findall(r'value="([^"]+)" data-testid="invite-link"', text(response))
    assert len(links) == 1, "the members page shows no invitation link"
    return links[0]


def test_admin_invites_link_shown_once_and_emailed(
    tenant, admin_client, admin_user, django_capture_on_commit_callbacks
):
    response = invite(admin_client, "newbie@alpha.test", Role.MANAGER, django_capture_on_commit_callbacks)

    assert response.status_code == 200
    link = invite_link(response)
    assert urlsplit(link).netloc == host_of(tenant)
    # The desktop (no mail server) says to pass the link on; its mail waits in the outbox (tests/desktop).
    said = "We e-mailed it" if settings.TESSERA_MAIL_DELIVERED else "This computer sends no e-mail: copy this link"
    assert said in text(response)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["newbie@alpha.test"]
    assert link in message.body
    assert "Manager" in message.body and tenant.name in message.body

    token = urlsplit(link).path.rstrip("/").rsplit("/", 1)[1]
    later = admin_client.get("/members/")
    assert token not in text(later)  # only its hash is kept: the link cannot be shown again
    assert "newbie@alpha.test" in text(later)  # but the pending invitation is listed
    assert events("member.invited")[0].actor_label == admin_user.email


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ANALYST, Role.VIEWER])
def test_only_admins_may_invite(tenant, client_for, make_user, role, django_capture_on_commit_callbacks):
    client = client_for(tenant, make_user(role=role))

    response = invite(client, "sneaky@alpha.test", Role.ADMIN, django_capture_on_commit_callbacks)

    assert response.status_code == 403
    assert not Invitation.objects.filter(email="sneaky@alpha.test").exists()
    assert mail.outbox == []


def test_accepting_an_invitation_logs_in_with_the_invited_role(
    tenant, admin_client, client_for, django_capture_on_commit_callbacks
):
    invite(admin_client, "analyst@alpha.test", Role.ANALYST, django_capture_on_commit_callbacks)
    path = urlsplit(re.search(r"https?://\S+", mail.outbox[0].body).group(0)).path
    newcomer = client_for(tenant)

    page = newcomer.get(path)
    assert page.status_code == 200
    assert "analyst@alpha.test" in text(page) and "Analyst" in text(page)

    response = form_with_button(page, "Join workspace").submit(
        newcomer, path, full_name="Ana Lyst", password=NEW_PASSWORD, password_confirm=NEW_PASSWORD
    )

    assert response.status_code == 302 and response["Location"] == "/"
    home = newcomer.get("/")
    assert "You are Analyst" in text(home)
    assert f"Welcome to {tenant.name}" in text(home)
    assert User.objects.get(email="analyst@alpha.test").role == Role.ANALYST
    assert events("member.joined")[0].actor_label == "analyst@alpha.test"

    reused = client_for(tenant).get(path)
    assert reused.status_code == 410
    assert "This invitation cannot be used" in text(reused) and "accepted" in text(reused)
    again = client_for(tenant).post(path, {"password": "x" * 12, "password_confirm": "x" * 12})
    assert again.status_code == 410


def test_accept_form_errors_are_shown(tenant, admin_client, client_for, django_capture_on_commit_callbacks):
    response = invite(admin_client, "typo@alpha.test", Role.VIEWER, django_capture_on_commit_callbacks)
    path = urlsplit(invite_link(response)).path
    newcomer = client_for(tenant)

    differ = newcomer.post(path, {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD + "x"})
    weak = newcomer.post(path, {"password": "1234567890", "password_confirm": "1234567890"})

    assert differ.status_code == 400 and "The two passwords differ." in text(differ)
    assert weak.status_code == 400 and "entirely numeric" in text(weak)
    assert not User.objects.filter(email="typo@alpha.test").exists()
    assert newcomer.get(path).status_code == 200  # still usable


def test_expired_invitation_is_refused_with_a_clear_page(
    tenant, admin_client, client_for, django_capture_on_commit_callbacks
):
    response = invite(admin_client, "late@alpha.test", Role.VIEWER, django_capture_on_commit_callbacks)
    path = urlsplit(invite_link(response)).path
    Invitation.objects.filter(email="late@alpha.test").update(expires_at=timezone.now() - timedelta(minutes=1))

    for attempt in (client_for(tenant).get(path), client_for(tenant).post(path, {"password": NEW_PASSWORD})):
        assert attempt.status_code == 410
        assert "This invitation cannot be used" in text(attempt) and "expired" in text(attempt)
    assert not User.objects.filter(email="late@alpha.test").exists()


def test_revoked_invitation_is_refused(tenant, admin_client, client_for, django_capture_on_commit_callbacks):
    response = invite(admin_client, "revoked@alpha.test", Role.VIEWER, django_capture_on_commit_callbacks)
    path = urlsplit(invite_link(response)).path
    invitation = Invitation.objects.get(email="revoked@alpha.test")

    members_page = admin_client.get("/members/")
    revoke = form_with_button(members_page, "Revoke", action=f"/members/invitations/{invitation.pk}/revoke/")
    response = revoke.submit(admin_client, "/members/")

    assert response.status_code == 302
    assert "The invitation for revoked@alpha.test was revoked." in text(admin_client.get("/members/"))
    refused = client_for(tenant).get(path)
    assert refused.status_code == 410 and "revoked" in text(refused)
    assert events("member.invitation_revoked")[0].target_label == "revoked@alpha.test"


def test_unknown_invitation_link_is_not_found(anon_client):
    response = anon_client.get("/accounts/invite/made-up-token/")
    assert response.status_code == 404
    assert "This invitation cannot be used" in text(response)


@pytest.mark.parametrize("email", ["admin@alpha.test", "Admin@ALPHA.test"])
def test_inviting_a_member_is_a_form_error(admin_client, email, django_capture_on_commit_callbacks):
    response = invite(admin_client, email, Role.VIEWER, django_capture_on_commit_callbacks)

    assert response.status_code == 400
    assert "This person is already a member." in text(response)
    assert mail.outbox == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "not-an-email", "role": "viewer"}, "Enter a valid email address."),
        ({"email": "ok@alpha.test", "role": "owner"}, "Select a valid choice."),
        ({"email": "a" * 250 + "@alpha.test", "role": "viewer"}, "at most 254 characters"),
        ({}, "This field is required."),
    ],
)
def test_bad_invitation_input_is_a_form_error(admin_client, data, message):
    response = admin_client.post("/members/", data)

    assert response.status_code == 400
    assert message in text(response)
    assert not Invitation.objects.exists()


def test_reinviting_a_removed_member_reactivates_them(
    tenant, admin_client, client_for, make_user, django_capture_on_commit_callbacks
):
    member = make_user(role=Role.MANAGER)
    old_browser = client_for(tenant, member)
    admin_client.post(f"/members/{member.pk}/remove/")
    assert f'data-email="{member.email}"' not in text(admin_client.get("/members/"))

    response = invite(admin_client, member.email, Role.VIEWER, django_capture_on_commit_callbacks)
    path = urlsplit(invite_link(response)).path
    newcomer = client_for(tenant)
    newcomer.post(path, {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})

    assert "You are Viewer" in text(newcomer.get("/"))
    assert f'data-email="{member.email}"' in text(admin_client.get("/members/"))
    assert User.objects.filter(email=member.email).count() == 1
    assert not is_logged_in(old_browser)  # the session from before the removal stays dead


# --- password reset --------------------------------------------------------------------------------


def test_password_reset_through_the_emailed_link(tenant, client_for, admin_user):
    browser = client_for(tenant)
    response = browser.post("/accounts/password-reset/", {"email": "ADMIN@alpha.test"})
    assert response.status_code == 302 and response["Location"] == "/accounts/password-reset/sent/"
    said = "Check your e-mail" if settings.TESSERA_MAIL_DELIVERED else "Reset link in the outbox"
    assert said in text(browser.get(response["Location"]))

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [admin_user.email]
    link = re.search(r"https?://\S+/accounts/reset/\S+/", mail.outbox[0].body).group(0)
    assert urlsplit(link).netloc == host_of(tenant)  # the workspace's own host

    set_password_url = browser.get(urlsplit(link).path)["Location"]
    form_page = browser.get(set_password_url)
    assert "Choose a new password" in text(form_page)
    done = form_with_button(form_page, "Set password").submit(
        browser, set_password_url, new_password1=NEW_PASSWORD, new_password2=NEW_PASSWORD
    )
    assert done["Location"] == "/accounts/reset/done/"

    assert log_in(client_for(tenant), admin_user.email, ADMIN_PASSWORD).status_code == 400
    assert log_in(client_for(tenant), admin_user.email, NEW_PASSWORD).status_code == 302
    reused = client_for(tenant).get(urlsplit(link).path, follow=True)
    assert "Link expired" in text(reused)
    assert events("user.password_reset_requested")[0].actor_label.lower() == "admin@alpha.test"
    assert events("user.password_changed")[0].changes == {"method": "reset link"}


def test_password_reset_does_not_reveal_who_is_a_member(anon_client):
    response = anon_client.post("/accounts/password-reset/", {"email": "stranger@alpha.test"})

    assert response.status_code == 302 and response["Location"] == "/accounts/password-reset/sent/"
    assert mail.outbox == []


def test_password_reset_form_errors(tenant, client_for, admin_user):
    browser = client_for(tenant)
    assert browser.post("/accounts/password-reset/", {"email": "nope"}).status_code == 400

    browser.post("/accounts/password-reset/", {"email": admin_user.email})
    link = re.search(r"https?://\S+/accounts/reset/\S+/", mail.outbox[0].body).group(0)
    set_password_url = browser.get(urlsplit(link).path)["Location"]
    response = browser.post(set_password_url, {"new_password1": NEW_PASSWORD, "new_password2": "something-else-1"})

    assert response.status_code == 400
    assert "didn’t match" in text(response) or "didn&#x27;t match" in text(response)
    assert log_in(client_for(tenant), admin_user.email, ADMIN_PASSWORD).status_code == 302


# --- members and roles -----------------------------------------------------------------------------


def test_admin_changes_a_role_from_the_members_page(admin_client, admin_user, make_user):
    member = make_user(role=Role.VIEWER)
    page = admin_client.get("/members/")
    form = form_with_button(page, "Change role", action=f"/members/{member.pk}/role/")
    assert form.fields["role"] == Role.VIEWER  # the current role is pre-selected

    response = form.submit(admin_client, "/members/", role=Role.MANAGER)

    assert response.status_code == 302 and response["Location"] == "/members/"
    assert f"{member.email} is now Manager." in text(admin_client.get("/members/"))
    member.refresh_from_db()
    assert member.role == Role.MANAGER
    event = events("member.role_changed")[0]
    assert event.actor_label == admin_user.email and event.target_label == member.email
    assert event.changes == {"before": {"role": "viewer"}, "after": {"role": "manager"}}


def test_an_invalid_role_is_refused_with_a_message(admin_client, make_user):
    member = make_user(role=Role.VIEWER)

    admin_client.post(f"/members/{member.pk}/role/", {"role": "owner"})

    assert "Choose a valid role." in text(admin_client.get("/members/"))
    member.refresh_from_db()
    assert member.role == Role.VIEWER


def test_the_last_admin_cannot_be_demoted_or_removed(admin_client, admin_user):
    message = "A workspace needs at least one Admin: make someone else Admin first."

    admin_client.post(f"/members/{admin_user.pk}/role/", {"role": Role.VIEWER})
    assert message in text(admin_client.get("/members/"))
    admin_client.post(f"/members/{admin_user.pk}/remove/")
    assert message in text(admin_client.get("/members/"))

    admin_user.refresh_from_db()
    assert admin_user.role == Role.ADMIN and admin_user.is_active
    assert events("member.role_changed") == [] and events("member.removed") == []


def test_admins_cannot_remove_themselves_from_the_page(admin_client, admin_user, make_user):
    member = make_user()
    page = admin_client.get("/members/")

    assert form_with_button(page, "Remove", action=f"/members/{member.pk}/remove/")
    assert f"/members/{admin_user.pk}/remove/" not in text(page)


def test_removal_ends_the_members_sessions(tenant, admin_client, admin_user, client_for, make_user):
    member = make_user(role=Role.MANAGER)
    member_browser = client_for(tenant, member)
    assert is_logged_in(member_browser)

    page = admin_client.get("/members/")
    response = form_with_button(page, "Remove", action=f"/members/{member.pk}/remove/").submit(
        admin_client, "/members/"
    )

    assert response.status_code == 302
    after = text(admin_client.get("/members/"))
    assert f"{member.email} was removed from the workspace." in after
    assert f'data-email="{member.email}"' not in after
    assert member_browser.get("/members/")["Location"].startswith("/accounts/login/")
    assert log_in(client_for(tenant), member.email, ADMIN_PASSWORD).status_code == 400
    event = events("member.removed")[0]
    assert event.actor_label == admin_user.email
    assert event.changes == {"before": {"is_active": True, "role": "manager"}, "after": {"is_active": False}}


def test_manager_sees_members_but_cannot_manage_them(tenant, client_for, make_user, admin_user):
    manager = make_user(role=Role.MANAGER)
    client = client_for(tenant, manager)

    page = client.get("/members/")

    assert page.status_code == 200
    assert admin_user.email in text(page)
    assert "Change role" not in text(page)
    assert "Send invitation" not in text(page)
    assert client.post(f"/members/{admin_user.pk}/role/", {"role": Role.VIEWER}).status_code == 403
    assert client.post(f"/members/{admin_user.pk}/remove/").status_code == 403
    admin_user.refresh_from_db()
    assert admin_user.role == Role.ADMIN and admin_user.is_active


@pytest.mark.parametrize("role", [Role.ANALYST, Role.VIEWER])
def test_analysts_and_viewers_cannot_see_members(tenant, client_for, make_user, role):
    response = client_for(tenant, make_user(role=role)).get("/members/")

    assert response.status_code == 403
    assert "Your role does not allow this page." in text(response)


def test_unknown_member_is_not_found(admin_client):
    assert admin_client.post("/members/999999/role/", {"role": Role.VIEWER}).status_code == 404
    assert admin_client.post("/members/999999/remove/").status_code == 404


def test_member_actions_are_post_only(admin_client, make_user):
    member = make_user()
    assert admin_client.get(f"/members/{member.pk}/role/").status_code == 405
    assert admin_client.get(f"/members/{member.pk}/remove/").status_code == 405


# --- sign-up handoff -------------------------------------------------------------------------------


def test_handoff_link_logs_in_once(tenant, client_for, admin_user):
    from accounts.services import login_handoff_create

    token = login_handoff_create(user=admin_user)
    browser = client_for(tenant)

    response = browser.get(f"/accounts/handoff/{token}/")

    assert response.status_code == 302 and response["Location"] == "/"
    assert is_logged_in(browser)
    second = client_for(tenant).get(f"/accounts/handoff/{token}/", follow=True)
    assert "That sign-in link has expired." in text(second)


# --- first run (desktop) ---------------------------------------------------------------------------


def test_setup_is_gone_once_the_workspace_has_members(anon_client):
    assert anon_client.get("/setup/").status_code == 404


@pytest.mark.desktop_only
def test_first_run_sends_every_page_to_setup(tenant, client_for):
    User.objects.all().delete()
    browser = client_for(tenant)

    for path in ("/", "/accounts/login/", "/members/", "/settings/", "/audit/"):
        response = browser.get(path)
        assert response.status_code == 302 and response["Location"] == "/setup/", path
    assert browser.get("/health").status_code == 200


@pytest.mark.desktop_only
def test_first_run_creates_the_admin_and_names_the_workspace(tenant, client_for):
    User.objects.all().delete()
    browser = client_for(tenant)
    page = browser.get("/setup/")
    assert page.status_code == 200 and "Set up Tessera" in text(page)
    form = form_with_button(page, "Create workspace")

    bad = form.submit(browser, "/setup/", email="owner@shop.test", password=NEW_PASSWORD, password_confirm="nope")
    assert bad.status_code == 400 and "The two passwords differ." in text(bad)
    assert not User.objects.exists()

    response = form.submit(
        browser,
        "/setup/",
        workspace_name="Corner Shop",
        full_name="Olive Owner",
        email="Owner@Shop.test",
        password=NEW_PASSWORD,
        password_confirm=NEW_PASSWORD,
    )

    assert response.status_code == 302 and response["Location"] == "/"
    home = text(browser.get("/"))
    assert "You are Admin" in home and "Corner Shop" in home
    assert User.objects.get().email == "owner@shop.test"
    assert browser.get("/setup/").status_code == 404
    assert client_for(tenant).get("/setup/").status_code == 404
    assert log_in(client_for(tenant), "owner@shop.test", NEW_PASSWORD).status_code == 302
    assert events("user.signed_up")[0].actor_label == "owner@shop.test"
    assert events("workspace.settings_changed")[0].changes["after"]["name"] == "Corner Shop"


@pytest.mark.saas_only
def test_reset_and_invitation_links_ignore_the_ports_a_host_header_names(
    tenant, client_for, admin_user, settings, django_capture_on_commit_callbacks
):
    """Anyone can send `Host: alpha…:6666` (ALLOWED_HOSTS checks no port): the e-mailed links must
    still point at the configured address, not at a port of the sender's choosing."""
    settings.TESSERA_PUBLIC_URL = f"https://{settings.TESSERA_BASE_DOMAIN}:8443"
    expected = f"https://{host_of(tenant)}:8443/"
    forged = {"HTTP_HOST": f"{host_of(tenant)}:6666"}
    mail.outbox.clear()

    client_for(tenant).post("/accounts/password-reset/", {"email": admin_user.email}, **forged)
    link = re.search(r"https?://\S+/accounts/reset/\S+/", mail.outbox[0].body).group(0)
    assert link.startswith(expected), link

    admin = client_for(tenant, admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        page = admin.post("/members/", {"email": "new@alpha.test", "role": "viewer"}, **forged)
    assert page.status_code == 200 and ":6666" not in page.content.decode()
    shown = re.search(r"https?://[^\s\"<]+/accounts/invite/[^/\s]+/", page.content.decode()).group(0)
    mailed = re.search(r"https?://\S+/accounts/invite/\S+/", mail.outbox[-1].body).group(0)
    assert shown.startswith(expected) and mailed == shown, (shown, mailed)


# --- throttles of the anonymous pages (accounts.throttles) -------------------------------------------


@pytest.fixture
def real_throttles(settings):
    import uuid

    settings.TESSERA_RATE_LIMIT_SCALE = 1
    settings.TESSERA_COUNTERS_NAMESPACE = f"test-{uuid.uuid4().hex}"


def test_login_guesses_spread_over_many_addresses_are_limited_per_email(tenant, client_for, admin_user, real_throttles):
    browser = client_for(tenant)
    for i in range(20):  # five per address never trips the lockout per e-mail + address
        data = {"username": admin_user.email, "password": f"guess-{i}"}
        assert browser.post("/accounts/login/", data, REMOTE_ADDR=f"10.7.{i // 5}.{i % 5}").status_code == 400
    refused = browser.post(
        "/accounts/login/", {"username": admin_user.email, "password": ADMIN_PASSWORD}, REMOTE_ADDR="10.7.9.9"
    )
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "Too many failed log-ins" in text(refused) and not is_logged_in(browser)
    # another member's e-mail is not held back
    other = log_in(client_for(tenant), "nobody@alpha.test", "x" * 12)
    assert other.status_code == 400


def test_password_reset_requests_are_limited_per_email_member_or_not(tenant, client_for, admin_user, real_throttles):
    mail.outbox.clear()
    for email in (admin_user.email, "stranger@alpha.test"):
        answers = [
            client_for(tenant).post("/accounts/password-reset/", {"email": email}, REMOTE_ADDR=f"10.6.0.{i}")
            for i in range(6)
        ]
        assert [a.status_code for a in answers] == [302] * 5 + [429], email
    assert len(mail.outbox) == 5
    flood = [client_for(tenant).post("/accounts/password-reset/", {"email": f"x{i}@alpha.test"}) for i in range(6)]
    assert flood[-1].status_code == 429, "and per address"
