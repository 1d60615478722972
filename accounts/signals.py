"""Audit events for Django's authentication signals (log-in, log-out, failed log-in, lock-out)."""

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from audit.services import audit_event_record
from core.actors import Actor
from tenants.runtime import workspace_current_or_none


def _in_tenant() -> bool:
    return workspace_current_or_none() is not None


@receiver(user_logged_in)
def on_logged_in(sender, request, user, **kwargs):
    if _in_tenant():
        audit_event_record(
            action="user.logged_in",
            actor=user.as_actor(),
            target=user,
            changes={"method": getattr(user, "backend", "").rsplit(".", 1)[-1]},
        )


@receiver(user_logged_out)
def on_logged_out(sender, request, user, **kwargs):
    if user is not None and _in_tenant():
        audit_event_record(action="user.logged_out", actor=user.as_actor(), target=user)


@receiver(user_login_failed)
def on_login_failed(sender, credentials, request=None, **kwargs):
    if _in_tenant():
        email = str(credentials.get("username") or credentials.get("email") or "")[:255]
        audit_event_record(action="user.login_failed", actor=Actor.anonymous(email), target=("user", "", email))


@receiver(user_locked_out)
def on_locked_out(sender, request, username, ip_address, **kwargs):
    if _in_tenant():
        audit_event_record(
            action="user.locked_out",
            actor=Actor.anonymous(username or ""),
            target=("user", "", username or ""),
            changes={"ip": ip_address},
        )
