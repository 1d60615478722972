"""The global directory of a SaaS installation grown into cells: which cell (and region) holds each
workspace, and the moves between cells. It lives in its own database (the `directory` alias, see
directory.routers), shared by every cell; nothing of a workspace's own data is ever stored here.
SaaS only: the desktop edition neither installs nor imports this app."""

from __future__ import annotations

from django.db import models


class WorkspaceLocation(models.Model):
    """Where a workspace lives. Its slug is unique across every cell: sign-up reserves it here first."""

    class Status(models.TextChoices):
        PROVISIONING = "provisioning", "Being created"
        ACTIVE = "active", "Active"
        MOVING = "moving", "Moving to another cell"

    slug = models.CharField(max_length=63, unique=True)
    cell = models.CharField(max_length=63, db_index=True)
    region = models.CharField(max_length=32)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PROVISIONING)
    # Stripe's customer of the workspace: one Stripe account serves every cell, so its events are
    # routed by customer to the cell that holds the workspace.
    stripe_customer_id = models.CharField(max_length=255, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"{self.slug} @ {self.cell} ({self.region}, {self.status})"


class WorkspaceMove(models.Model):
    """One move of a workspace from a cell to another (the operator's `workspace_move`)."""

    class Status(models.TextChoices):
        COPYING = "copying", "Copying"
        FROZEN = "frozen", "Writes frozen, catching up"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    slug = models.CharField(max_length=63, db_index=True)
    source_cell = models.CharField(max_length=63)
    target_cell = models.CharField(max_length=63)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.COPYING)
    started_at = models.DateTimeField(auto_now_add=True)
    frozen_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    freeze_seconds = models.FloatField(null=True, blank=True, help_text="How long writes were refused.")
    rows_copied = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.slug}: {self.source_cell} -> {self.target_cell} ({self.status})"
