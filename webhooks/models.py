"""Webhook endpoints, the event outbox, deliveries and their attempts (all in the tenant's data).

The write spine writes an `Event` in the same transaction as the change it describes, plus one
`Delivery` per endpoint whose filter matches; on commit each delivery is handed to Celery, and a
periodic sweeper re-enqueues any delivery that is due or whose worker vanished (late acks), so a
lost broker message or a killed worker loses nothing. `Event.id` is the `webhook-id` header: the
documented idempotency key for receivers (delivery is at-least-once, order is not guaranteed).

Sandbox: endpoints, events and deliveries carry `livemode` like records do; test-mode keys manage
and receive only test-mode ones.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from ulid import ULID


def _id(prefix: str) -> str:
    return f"{prefix}_{str(ULID()).lower()}"


def endpoint_id() -> str:
    return _id("ep")


def event_id() -> str:
    return _id("msg")


class Endpoint(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=endpoint_id, editable=False)
    livemode = models.BooleanField(default=True)
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=500, blank=True)
    event_types = models.JSONField(default=list, blank=True, help_text="Empty: every event type.")
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True)  # e.g. "410 Gone", "failing for 5 days"
    disabled_at = models.DateTimeField(null=True, blank=True)
    rate_limit_per_second = models.PositiveIntegerField(null=True, blank=True)
    headers = models.JSONField(default=dict, blank=True, help_text="Custom headers sent with every delivery.")
    failing_since = models.DateTimeField(null=True, blank=True)  # first failure of the current streak
    created_by = models.ForeignKey("accounts.User", null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.url

    def wants(self, event_type: str) -> bool:
        """True if this endpoint subscribes to `event_type` (empty filter: all; `record.*` wildcards)."""
        if not self.event_types:
            return True
        group = event_type.split(".", 1)[0] + ".*"
        return event_type in self.event_types or group in self.event_types


class EndpointSecret(models.Model):
    """A signing secret (`whsec_…`), encrypted at rest; rotation keeps the old one until `expires_at`."""

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="secrets")
    secret_encrypted = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)  # set on rotation: the overlap window's end

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"secret of {self.endpoint_id}"

    @property
    def is_valid(self) -> bool:
        return self.expires_at is None or self.expires_at > timezone.now()


class Event(models.Model):
    """The outbox: one row per event, written in the transaction of the change it describes."""

    id = models.CharField(primary_key=True, max_length=40, default=event_id, editable=False)
    livemode = models.BooleanField(default=True)
    type = models.CharField(max_length=64, db_index=True)
    payload = models.JSONField()  # {"type", "timestamp", "data"}; emptied by the retention clean-up
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class Delivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"  # waiting for its (next) attempt
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"  # gave up: schedule exhausted or endpoint disabled

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    livemode = models.BooleanField(default=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # `attempts` when the current retry schedule began (a resend or recovery starts it afresh)
    schedule_start = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)  # a worker holds it until then
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhooks_delivery_due"),
            models.Index(fields=["endpoint", "-created_at"], name="webhooks_delivery_endpoint"),
            # Is a worker on this endpoint? (only the rows it holds, not the endpoint's whole backlog)
            models.Index(fields=["endpoint", "locked_until"], name="webhooks_delivery_held"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.endpoint_id} ({self.status})"


class Attempt(models.Model):
    """One HTTP request of a delivery, as the console's delivery log shows it (bodies truncated)."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    request_url = models.URLField(max_length=2000)
    request_headers = models.JSONField(default=dict)
    request_body = models.TextField(blank=True)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict)
    response_body = models.TextField(blank=True)
    error = models.CharField(max_length=500, blank=True)  # timeout, refused address, redirect, …

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"


class InspectorBin(models.Model):
    """A tenant-scoped test receiver for sandbox work: a URL that records what it received."""

    token = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=100, blank=True)
    created_by = models.ForeignKey("accounts.User", null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name or self.token[:8]


class InspectorRequest(models.Model):
    bin = models.ForeignKey(InspectorBin, on_delete=models.CASCADE, related_name="requests")
    received_at = models.DateTimeField(default=timezone.now)
    method = models.CharField(max_length=10)
    headers = models.JSONField(default=dict)
    body = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.method} at {self.received_at:%Y-%m-%d %H:%M:%S}"


class WebhookSettings(models.Model):
    """The workspace's webhook settings (one row): payload retention in days (1–90)."""

    retention_days = models.PositiveSmallIntegerField(default=30)

    def __str__(self) -> str:
        return f"retention {self.retention_days} days"
