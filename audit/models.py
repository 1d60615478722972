"""Append-only, hash-chained audit events, kept in each tenant's own data.

Each event's hash is SHA-256 over the previous event's hash and a canonical serialization of the
event, so changing, removing or reordering any row breaks the chain from that row on. A member's name, address
and client are hashed sealed (`personal`), so erasing the member keeps the chain verifiable. The database
refuses UPDATE and DELETE on the table (trigger, see migrations); the chain catches the rest.
"""

from django.db import models


class AuditEvent(models.Model):
    class ActorType(models.TextChoices):
        USER = "user", "User"
        API_KEY = "api_key", "API key"
        DEVICE = "device", "Device"
        SYSTEM = "system", "System"
        ANONYMOUS = "anonymous", "Anonymous"

    seq = models.BigIntegerField(unique=True)
    occurred_at = models.DateTimeField(db_index=True)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True, default="")
    actor_label = models.CharField(max_length=255, blank=True, default="")
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True, default="")
    target_id = models.CharField(max_length=64, blank=True, default="")
    target_label = models.CharField(max_length=255, blank=True, default="")
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True, default="")
    request_id = models.CharField(max_length=128, blank=True, default="")
    changes = models.JSONField(default=dict, blank=True)
    # Who acted and on whom, sealed in the vault ({column: sealed value} for actor_label, target_label,
    # ip, user_agent): the hash covers these instead of the clear columns, which stay as a readable copy
    # until the person is erased (then "[erased]"; the database allows no other update).
    personal = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-seq"]
        indexes = [models.Index(fields=["actor_type", "actor_id"]), models.Index(fields=["target_type", "target_id"])]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise RuntimeError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise RuntimeError("Audit events are append-only.")


class AuditChainHead(models.Model):
    """One row: the latest seq and hash. Updating it first serializes concurrent writers."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return f"audit chain head #{self.seq}"


class AuditVaultKey(models.Model):
    """A data subject's key (crypto-shredding): personal values in audit events are sealed with it, so
    the chain holds only ciphertext. Erasing the subject deletes this row; the sealed values in the
    chain stay (the chain still verifies) but can never be read again.

    `subject` names whose data it seals (`record:<record key>`, `user:<id>`); the key itself is
    encrypted at rest with the installation's secrets key (core.secrets_at_rest)."""

    subject = models.CharField(max_length=120, unique=True)
    key_encrypted = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"vault key of {self.subject}"


class AuditVaultShred(models.Model):
    """A subject whose key was destroyed, and when: the audit viewer says "erased" instead of
    "unreadable", and a later event about the same subject gets a fresh key."""

    subject = models.CharField(max_length=120, unique=True)
    shredded_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.subject} shredded"
