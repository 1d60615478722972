"""The workspace's personal-data map and its data-subject requests (GDPR / CCPA), in its own data."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from ulid import ULID


def subject_request_id() -> str:
    return f"dsr_{str(ULID()).lower()}"


class PersonalDataField(models.Model):
    """A collection field the Admin marked as personal data; `identifies_subject` fields (e-mail,
    phone, customer number) are the ones a data-subject request looks people up by."""

    collection = models.ForeignKey("records.Collection", on_delete=models.CASCADE, related_name="+")
    field_key = models.CharField(max_length=63)
    identifies_subject = models.BooleanField(default=False)

    class Meta:
        ordering = ["collection_id", "field_key"]
        constraints = [
            models.UniqueConstraint(fields=["collection", "field_key"], name="privacy_personal_field_unique")
        ]

    def __str__(self) -> str:
        return f"{self.collection_id}.{self.field_key}"


class SubjectRequest(models.Model):
    """One request of a data subject, with its due date (the SLA clock) and, once done, a certificate
    of what was done. After an erasure the subject's identifier is itself erased (`subject_erased`)."""

    class Kind(models.TextChoices):
        ACCESS = "access", "Access (a copy of their data)"
        ERASURE = "erasure", "Erasure (delete their data)"
        RECTIFICATION = "rectification", "Rectification (correct their data)"
        RESTRICTION = "restriction", "Restriction (stop processing)"

    class Regime(models.TextChoices):
        GDPR = "gdpr", "GDPR (30 days)"
        CCPA = "ccpa", "CCPA (45 days)"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        COMPLETED = "completed", "Completed"
        REJECTED = "rejected", "Rejected"

    id = models.CharField(primary_key=True, max_length=40, default=subject_request_id, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    regime = models.CharField(max_length=8, choices=Regime.choices, default=Regime.GDPR)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    subject_identifier = models.CharField(max_length=320, help_text="e-mail, phone or customer id")
    subject_erased = models.BooleanField(default=False)
    requested_by = models.CharField(max_length=300, help_text="Who asked, and through which channel.")
    verification = models.CharField(max_length=500, help_text="How the requester's identity was verified.")
    received_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField()
    extended = models.BooleanField(default=False)
    reminded_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=300, blank=True, default="")
    certificate = models.JSONField(default=dict, blank=True)
    # A restriction request (GDPR art. 18): when the subject's records were restricted, and when lifted.
    restricted_at = models.DateTimeField(null=True, blank=True)
    restriction_lifted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_at"]
        indexes = [models.Index(fields=["status", "due_at"], name="privacy_dsr_status_due")]

    def __str__(self) -> str:
        return self.id

    @property
    def overdue(self) -> bool:
        return self.status == self.Status.OPEN and timezone.now() > self.due_at

    @property
    def restriction_active(self) -> bool:
        return self.restricted_at is not None and self.restriction_lifted_at is None

    @property
    def days_left(self) -> int:
        """Whole days until due (negative: overdue by that many days)."""
        return (self.due_at - timezone.now()).days


class RetentionPolicy(models.Model):
    """How long a collection's records are kept: records not changed for `days` (and, with a status
    field, only those in that status) are erased or anonymised by the daily retention run."""

    class Action(models.TextChoices):
        ERASE = "erase", "Erase the records"
        ANONYMISE = "anonymise", "Anonymise (remove the personal fields)"

    collection = models.OneToOneField("records.Collection", on_delete=models.CASCADE, related_name="+")
    days = models.PositiveIntegerField()
    status_field = models.CharField(max_length=63, blank=True, default="")
    status_value = models.CharField(max_length=200, blank=True, default="")
    action = models.CharField(max_length=10, choices=Action.choices, default=Action.ERASE)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.collection_id}: {self.action} after {self.days} days"


class LogRetentionPolicy(models.Model):
    """How long a log is kept (webhook deliveries, log-in attempts: settings.TESSERA_LOG_RETENTION names
    them and who deletes from each); the daily retention run deletes older entries."""

    log = models.CharField(max_length=40, unique=True)
    days = models.PositiveIntegerField()
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["log"]

    def __str__(self) -> str:
        return f"{self.log}: {self.days} days"


class RetentionRun(models.Model):
    """One application of a policy (or its dry run): what matched and what was done. A log's run has no
    collection policy: `collection_slug` is "log:<name>" and `record_ids` is empty."""

    policy = models.ForeignKey(RetentionPolicy, null=True, on_delete=models.SET_NULL, related_name="runs")
    collection_slug = models.CharField(max_length=63)
    action = models.CharField(max_length=10)
    dry_run = models.BooleanField(default=False)
    cutoff = models.DateTimeField()
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    matched = models.PositiveIntegerField(default=0)
    applied = models.PositiveIntegerField(default=0)
    record_ids = models.JSONField(default=list, blank=True)  # ids only: they hold no personal values
    actor = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{'dry run' if self.dry_run else 'run'} of {self.collection_slug} at {self.started_at:%Y-%m-%d %H:%M}"


class SubjectKey(models.Model):
    """Where a person's identifiers occur: one row per record and identifying field holding a value,
    as a keyed hash of the value (trimmed, lower-cased), so finding a subject among millions of records
    is an index look-up. Kept by privacy.subject_index as records change; no clear value is stored."""

    collection = models.ForeignKey("records.Collection", on_delete=models.CASCADE, related_name="+")
    record_key = models.CharField(max_length=72)
    value_hash = models.CharField(max_length=64)

    class Meta:
        indexes = [
            models.Index(fields=["value_hash"], name="privacy_subjectkey_hash"),
            models.Index(fields=["record_key"], name="privacy_subjectkey_record"),
        ]

    def __str__(self) -> str:
        return f"{self.record_key}: {self.value_hash[:8]}"
