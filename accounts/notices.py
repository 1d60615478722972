"""E-mails to a workspace's Admins about its billing (subscriber of billing's domain events, on
commit): a failed payment (the grace period and the date writes stop) and a trial about to end."""

from __future__ import annotations

import logging

from django.core.mail import send_mail
from django.template.loader import render_to_string

from accounts.models import User
from core.events import DomainEvent
from rbac.roles import Role
from tenants.models import Tenant
from tenants.runtime import workspace_context

logger = logging.getLogger(__name__)

SUBJECTS = {
    "billing.payment_failed": "Payment failed for {name}: update the payment method",
    "billing.trial_ending": "Your Tessera trial for {name} ends soon",
}


def billing_admins_mail(event: DomainEvent) -> None:
    """Never raises: the change is committed; a mail that failed is logged."""
    if event.type not in SUBJECTS:
        return
    try:
        workspace = Tenant.objects.get(pk=int(event.target[1]))
        with workspace_context(workspace):
            admins = list(User.objects.filter(role=Role.ADMIN, is_active=True).values_list("email", flat=True))
        context = {"workspace_name": workspace.name, **event.data["object"]}
        send_mail(
            subject=SUBJECTS[event.type].format(name=workspace.name),
            message=render_to_string("accounts/email/billing_notice.txt", {"kind": event.type, **context}),
            from_email=None,
            recipient_list=admins,
        )
    except Exception:
        logger.exception("billing notice not mailed")
