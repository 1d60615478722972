"""The four roles a member of a workspace can hold."""

from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    MANAGER = "manager", "Manager"
    ANALYST = "analyst", "Analyst"
    VIEWER = "viewer", "Viewer"
