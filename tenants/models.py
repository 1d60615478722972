"""Tenant (one business) and Domain (the hosts that route to it); stored once, in the public schema."""

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

if not settings.TESSERA_MULTI_TENANT:  # the desktop: no PostgreSQL backend behind django_tenants
    from tenants import pgfree

    pgfree.install()

from django_tenants.models import DomainMixin, TenantMixin

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,38}[a-z0-9])$")
RESERVED_SLUGS = frozenset(
    {
        "www",
        "api",
        "app",
        "admin",
        "public",
        "static",
        "media",
        "mail",
        "status",
        "help",
        "docs",
        "support",
        "billing",
        "sync",
        "login",
        "signup",
        "template",
        "tenant-template",
        "operator",
    }
)


def validate_workspace_slug(value: str) -> None:
    if not SLUG_RE.match(value or ""):
        raise ValidationError(
            "Use 3–40 lowercase letters, digits or hyphens, starting and ending with a letter or digit.",
            code="invalid_slug",
        )
    if value in RESERVED_SLUGS:
        raise ValidationError("That address is reserved. Please choose another.", code="reserved_slug")
    if value[2:4] == "--":
        # "xn--…" is punycode: browsers show it as Unicode (a look-alike of another workspace's
        # address); IDNA reserves every "??--" prefix for such encodings.
        raise ValidationError(
            "An address cannot have hyphens as its 3rd and 4th characters (browsers would show it as another "
            "script). Please choose another.",
            code="invalid_slug",
        )


class Tenant(TenantMixin):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        # Being moved to another cell (cells.moves): reads served, writes refused for the final copy.
        MOVING = "moving", "Moving"

    name = models.CharField(max_length=120)
    slug = models.CharField(max_length=63, unique=True, validators=[validate_workspace_slug])
    plan = models.CharField(max_length=20, default="free", help_text="A plan of billing.plans.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    timezone = models.CharField(max_length=64, default="UTC")
    is_template = models.BooleanField(default=False, help_text="The migrated schema new tenants are cloned from.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Provisioning clones the template schema itself (tenants/services.py); never migrate on save.
    auto_create_schema = False
    auto_drop_schema = False

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name or self.slug

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    def host(self) -> str:
        base = getattr(settings, "TESSERA_BASE_DOMAIN", "")
        return f"{self.slug}.{base}" if base else "127.0.0.1"

    def base_url(self) -> str | None:
        """The workspace's own address from configuration (scheme and port of TESSERA_PUBLIC_URL),
        never from a request's Host header; None where none is configured (the desktop, whose
        console listens on loopback only)."""
        public = getattr(settings, "TESSERA_PUBLIC_URL", "")
        if not public:
            return None
        parts = urlsplit(public)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{self.host()}{port}"


class HeldSlug(models.Model):
    """The address of a removed workspace, kept from new sign-ups for a while (issue 14, finding 1):
    links, bookmarks, phones and partners still point at it, and a newcomer taking it at once would
    receive what was meant for the old business."""

    slug = models.CharField(max_length=63, unique=True)
    held_until = models.DateTimeField()
    removed_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.slug} (held until {self.held_until:%Y-%m-%d})"


class Domain(DomainMixin):
    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain
