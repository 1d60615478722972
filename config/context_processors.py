"""Template context for the console layout: workspace, navigation and the user's permissions."""

from django.conf import settings
from django.http import HttpRequest

from billing.entitlements import standing
from rbac.permissions import permissions_for
from tenants.runtime import workspace_current_or_none


def console(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    perms = permissions_for(user) if user is not None and user.is_authenticated else frozenset()
    workspace = workspace_current_or_none()
    return {
        "workspace": workspace,
        "perms": perms,
        "billing_enabled": settings.TESSERA_BILLING_ENABLED,
        # The console's banner (past due, read-only) and its disabled write actions.
        "billing_standing": _standing(workspace) if perms and settings.TESSERA_BILLING_ENABLED else None,
    }


def _standing(workspace):
    if workspace is None or getattr(workspace, "schema_name", "") == "public":
        return None
    return standing(workspace)
