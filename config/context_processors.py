"""Template context for the console layout: workspace, navigation and the user's permissions."""

from django.conf import settings
from django.http import HttpRequest

from rbac.permissions import permissions_for
from tenants.runtime import workspace_current_or_none


def console(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    perms = permissions_for(user) if user is not None and user.is_authenticated else frozenset()
    return {
        "workspace": workspace_current_or_none(),
        "perms": perms,
        "billing_enabled": settings.TESSERA_BILLING_ENABLED,
    }
