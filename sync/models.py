"""Paired phones (devices), the short-lived codes that pair them, and how far each has synced.

Device tokens (`tsd_…`, 190 bits) are shown once and stored as a SHA-256 hash, as API keys are.
Pairing codes come in two forms for the same pairing: a long code for the QR image (hashed with
SHA-256) and an 8-digit PIN to type (hashed with an HMAC under the installation's secret key, so a
copied table cannot be searched through all 10^8 PINs offline).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from core.actors import Actor, ActorType
from rbac.roles import Role


class PairingCode(models.Model):
    code_hash = models.CharField(max_length=64, unique=True)
    pin_hash = models.CharField(max_length=64, unique=True)
    role = models.CharField(max_length=16, choices=Role.choices)
    user = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey("accounts.User", null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    device = models.ForeignKey("sync.Device", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"pairing {self.pk} for {self.user_id}"

    @property
    def status(self) -> str:
        if self.used_at is not None:
            return "used"
        if self.expires_at <= timezone.now():
            return "expired"
        return "active"


class Device(models.Model):
    name = models.CharField(max_length=100)
    user = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="devices")
    role = models.CharField(max_length=16, choices=Role.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    token_prefix = models.CharField(max_length=16, help_text="Shown in the console to recognise the device.")
    client_version = models.CharField(max_length=100, blank=True, default="")
    paired_by = models.ForeignKey("accounts.User", null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    last_seen_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    # What the permission checks (rbac.permissions) and audit need to know about a device.
    is_authenticated = True

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.user.is_active

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if not self.user.is_active:
            return "user inactive"
        return "active"

    def as_actor(self) -> Actor:
        return Actor(ActorType.DEVICE, str(self.pk), self.name, role=self.role, principal=self)


class DeviceCheckpoint(models.Model):
    """The last checkpoint a device reported for a collection (from its pulls): its sync position."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="checkpoints")
    collection = models.ForeignKey("records.Collection", on_delete=models.CASCADE, related_name="+")
    seq = models.BigIntegerField(default=0)
    record_id = models.CharField(max_length=64, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["device", "collection"], name="sync_checkpoint_device_collection")
        ]

    def __str__(self) -> str:
        return f"{self.device_id}/{self.collection_id}@{self.seq}"


class DeviceWrite(models.Model):
    """The last write a device made to a record that the server accepted: the document it sent and the
    version the record had after it. A phone that edits again before it could adopt the answer to
    that write (RxDB cannot store the answer while the user is typing) pushes its next change against
    an older `assumedMasterState`; its own accepted write is not a concurrent change, so the next
    merge uses what the device sent as its base (sync/replication.py)."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="+")
    record_id = models.CharField(max_length=64)
    version = models.PositiveIntegerField(help_text="The record's version after the device's write.")
    data = models.JSONField(default=dict, help_text="The record data the device sent (its newDocumentState).")
    deleted = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["device", "record_id"], name="sync_devicewrite_device_record")]

    def __str__(self) -> str:
        return f"{self.device_id}/{self.record_id}@{self.version}"
