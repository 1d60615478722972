"""What Tessera knows of each workspace's Stripe customer and subscription, the Stripe events received,
and the ledger of metered usage. SaaS only, in the public schema (the desktop edition does not install
this app)."""

from __future__ import annotations

from django.db import models
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from billing.plans import Plan
from tenants.hostcache import workspace_changed


class SubscriptionStatus(models.TextChoices):
    """Stripe's subscription statuses, plus `none` (never subscribed: the Free plan)."""

    NONE = "none", "No subscription"
    TRIALING = "trialing", "Trial"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    UNPAID = "unpaid", "Unpaid"
    CANCELED = "canceled", "Canceled"
    PAUSED = "paused", "Paused"
    INCOMPLETE = "incomplete", "Incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired", "Incomplete (expired)"


class BillingAccount(models.Model):
    """One workspace's standing with Stripe, as last read from Stripe's API (never from an event's
    body alone: events may arrive out of order, the subscription as it is now may not)."""

    workspace = models.OneToOneField("tenants.Tenant", on_delete=models.CASCADE, related_name="billing_account")
    stripe_customer_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True, db_index=True)
    status = models.CharField(max_length=32, choices=SubscriptionStatus.choices, default=SubscriptionStatus.NONE)
    plan = models.CharField(max_length=20, choices=Plan.choices, default=Plan.FREE)
    interval = models.CharField(max_length=10, blank=True)
    trial_end = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    past_due_since = models.DateTimeField(null=True, blank=True, help_text="Start of the grace period.")
    past_due_notified_at = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True, help_text="When the subscription was last read.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.workspace_id}: {self.plan} ({self.status})"


class StripeEvent(models.Model):
    """Every Stripe event received, once by its id: a duplicate delivery finds its row and is a no-op."""

    id = models.CharField(primary_key=True, max_length=255)
    type = models.CharField(max_length=100)
    livemode = models.BooleanField(default=False)
    created = models.DateTimeField(help_text="When Stripe created the event.")
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # Cells (billing.routing): the cell that handed this event on to us, or the cell we handed it on to
    # (the directory says that cell bills its customer). An event handed on is never handed on again.
    forwarded_from = models.CharField(max_length=63, blank=True)
    forwarded_to = models.CharField(max_length=63, blank=True)

    class Meta:
        ordering = ["created"]

    def __str__(self) -> str:
        return f"{self.id} {self.type}"


class UsageLedgerEntry(models.Model):
    """API calls counted locally, kept until reported to Stripe's Billing Meter. Its `identifier` is the
    meter event's: a retry sends the same one, and Stripe (which refuses a repeated identifier) counts it
    once."""

    workspace = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="usage_ledger")
    stripe_customer_id = models.CharField(max_length=255)
    quantity = models.PositiveBigIntegerField()
    identifier = models.CharField(max_length=100, unique=True)
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    reported_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.identifier}: {self.quantity}"


@receiver(post_save, sender=BillingAccount, dispatch_uid="billing.account_saved")
@receiver(post_delete, sender=BillingAccount, dispatch_uid="billing.account_deleted")
def _account_changed(sender, instance, **kwargs) -> None:
    """API processes remember a workspace with its billing account joined (tenants.hostcache, settings.
    TESSERA_WORKSPACE_LOADED_WITH): any change to the account makes them read both again."""
    workspace_changed(instance.workspace_id)
