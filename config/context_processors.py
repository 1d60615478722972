"""Template context for the console layout: workspace, navigation and the user's permissions."""

from django.conf import settings
from django.http import HttpRequest
from django.utils.html import format_html

from billing.entitlements import standing
from core.request_context import console_livemode
from rbac.permissions import permissions_for
from tenants.runtime import workspace_current_or_none

# On a write action's submit button while the workspace is read-only: disabled, and described by the
# layout's banner, which says why (a screen reader reads it with the button; sighted users see it).
WRITES_OFF = format_html(' disabled aria-describedby="billing-reason" title="{}"', "Read-only: see the notice above.")


def console(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    perms = permissions_for(user) if user is not None and user.is_authenticated else frozenset()
    workspace = workspace_current_or_none()
    billing_standing = _standing(workspace) if perms and settings.TESSERA_BILLING_ENABLED else None
    read_only = bool(billing_standing and billing_standing.read_only)
    return {
        "workspace": workspace,
        "perms": perms,
        "billing_enabled": settings.TESSERA_BILLING_ENABLED,
        # The console's banner (past due, read-only) and its write actions turned off.
        "billing_standing": billing_standing,
        "read_only": read_only,
        "writes_off": WRITES_OFF if read_only else "",
        # Pages say "we e-mailed it" only when mail reaches people (not on a desktop without SMTP).
        "mail_delivered": settings.TESSERA_MAIL_DELIVERED,
        # The header's test-mode switch and the banner every page shows while it is on.
        "test_mode": bool(perms) and not console_livemode(),
        "test_mode_allowed": "records.view" in perms,
    }


def _standing(workspace):
    if workspace is None or getattr(workspace, "schema_name", "") == "public":
        return None
    return standing(workspace)
