"""API keys of a workspace (test and live), and what they used.

A key is shown once (`tsk_live_…` / `tsk_test_…`) and stored as a SHA-256 hash: keys carry 190 bits
of randomness, so a fast hash is enough and lets every request find its key with one index lookup.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from core.actors import Actor, ActorType

SCOPES = {
    "records:read": "Read records",
    "records:write": "Create, update and delete records",
    "collections:read": "Read collections",
    "collections:write": "Create and change collections",
    "webhooks:manage": "Manage webhook endpoints",
    "events:read": "Read the event feed",
    "compliance:manage": "Data-subject requests and the personal-data map",
    "analytics:read": "Run analytics queries (aggregates)",
}


class ApiKey(models.Model):
    class Mode(models.TextChoices):
        TEST = "test", "Test"
        LIVE = "live", "Live"

    name = models.CharField(max_length=100)
    mode = models.CharField(max_length=4, choices=Mode.choices, default=Mode.TEST)
    prefix = models.CharField(max_length=24, help_text="Shown in the console to recognise the key.")
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey("accounts.User", null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    rotated_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)

    # What the permission checks (rbac.permissions) and audit need to know about a key.
    is_authenticated = True
    role = None

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def livemode(self) -> bool:
        return self.mode == self.Mode.LIVE

    @property
    def is_active(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        if self.rotated_to_id is not None:
            return "rotating"
        return "active"

    def as_actor(self) -> Actor:
        return Actor(
            ActorType.API_KEY,
            str(self.pk),
            self.name,
            scopes=frozenset(self.scopes),
            livemode=self.livemode,
            principal=self,
        )


class ApiUsage(models.Model):
    """API calls per key per day (UTC), kept for billing and the console's usage chart."""

    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="usage")
    day = models.DateField()
    calls = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "day"], name="partners_usage_key_day")]
        ordering = ["-day"]

    def __str__(self) -> str:
        return f"{self.key_id} {self.day}: {self.calls}"
