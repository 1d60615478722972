"""The permission matrix: the one place that says which role may do what.

Views use `permission_required`, DRF views `HasPermission`, websocket consumers and services
`has_permission` / `permission_check`. The README's table is generated from MATRIX
(`python manage.py rbac_matrix`) and a test keeps the two identical.
"""

from __future__ import annotations

from functools import wraps

from django.core.exceptions import PermissionDenied

from core.actors import Actor, ActorType
from rbac.roles import Role

A, M, N, V = Role.ADMIN, Role.MANAGER, Role.ANALYST, Role.VIEWER

# permission -> (roles holding it, what it allows)
MATRIX: dict[str, tuple[frozenset[Role], str]] = {
    "collections.view": (frozenset({A, M, N, V}), "See collections and their fields"),
    "records.view": (frozenset({A, M, N, V}), "See records"),
    "records.edit": (frozenset({A, M}), "Create, edit, delete and import records"),
    "collections.manage": (frozenset({A}), "Create collections and change their fields"),
    "analytics.use": (frozenset({A, N}), "Build queries and dashboards; exports and scheduled reports"),
    "analytics.view": (frozenset({A, M, N, V}), "See dashboards shared with the workspace"),
    "analytics.read": (frozenset({A, N}), "Run analytics queries (console and API)"),
    "records.export": (frozenset({A, M, N}), "Export records as CSV or JSON"),
    "members.view": (frozenset({A, M}), "See the members of the workspace"),
    "members.manage": (frozenset({A}), "Invite members, change roles, remove members"),
    "devices.pair": (frozenset({A, M}), "Pair phones and see devices"),
    "devices.manage": (frozenset({A}), "Revoke any device"),
    "api_keys.manage": (frozenset({A}), "Create, rotate and revoke API keys"),
    "webhooks.manage": (frozenset({A}), "Manage webhook endpoints and deliveries"),
    "billing.manage": (frozenset({A}), "Plans, payment and invoices"),
    "sso.manage": (frozenset({A}), "Configure single sign-on"),
    "audit.view": (frozenset({A}), "Read and export the audit log; compliance exports"),
    "events.view": (frozenset({A}), "Read the change feed as events (API)"),
    "compliance.manage": (frozenset({A}), "Personal-data map, data-subject requests, erasure, retention"),
    "settings.manage": (frozenset({A}), "Change workspace settings"),
}
PERMISSIONS = frozenset(MATRIX)

# API keys hold scopes rather than a role; each scope grants these permissions.
SCOPE_PERMISSIONS: dict[str, frozenset[str]] = {
    "records:read": frozenset({"records.view", "records.export"}),
    "records:write": frozenset({"records.edit"}),
    "collections:read": frozenset({"collections.view"}),
    "collections:write": frozenset({"collections.manage"}),
    "webhooks:manage": frozenset({"webhooks.manage"}),
    "events:read": frozenset({"events.view"}),
    "compliance:manage": frozenset({"compliance.manage"}),
    "analytics:read": frozenset({"analytics.read"}),
}


def role_permissions(role: str) -> frozenset[str]:
    return frozenset(perm for perm, (roles, _) in MATRIX.items() if role in roles)


def permissions_for(actor) -> frozenset[str]:
    """Permissions of a member, a device (their role), an API key (its scopes), or an Actor of any of
    them; the system (background jobs acting for the workspace) may do everything."""
    if isinstance(actor, Actor) and actor.type == ActorType.SYSTEM:
        return PERMISSIONS
    if actor is None or not getattr(actor, "is_active", True):
        return frozenset()
    if getattr(actor, "is_authenticated", True) is False:
        return frozenset()
    scopes = getattr(actor, "scopes", None)
    if scopes is not None:  # an API key
        return frozenset().union(*(SCOPE_PERMISSIONS.get(s, frozenset()) for s in scopes))
    return role_permissions(getattr(actor, "role", ""))


def has_permission(actor, permission: str) -> bool:
    if permission not in PERMISSIONS:
        raise KeyError(f"Unknown permission {permission!r}")
    return permission in permissions_for(actor)


def permission_check(actor, permission: str) -> None:
    """Raise PermissionDenied unless `actor` holds `permission` (for services and consumers)."""
    if not has_permission(actor, permission):
        raise PermissionDenied(f"Your role does not allow this ({permission}).")


def permission_required(permission: str):
    """Decorator for console views: anonymous users go to login, others without it get 403."""
    if permission not in PERMISSIONS:
        raise KeyError(f"Unknown permission {permission!r}")

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                from django.contrib.auth.views import redirect_to_login

                return redirect_to_login(request.get_full_path())
            permission_check(request.user, permission)
            return view(request, *args, **kwargs)

        wrapped.required_permission = permission
        return wrapped

    return decorator


class HasPermission:
    """DRF permission: `permission_classes = [HasPermission.of("records.view")]`."""

    permission: str = ""

    @classmethod
    def of(cls, permission: str):
        if permission not in PERMISSIONS:
            raise KeyError(f"Unknown permission {permission!r}")
        return type(f"HasPermission_{permission.replace('.', '_')}", (cls,), {"permission": permission})

    def has_permission(self, request, view) -> bool:
        return has_permission(request.user, self.permission)

    def has_object_permission(self, request, view, obj) -> bool:
        return self.has_permission(request, view)


def matrix_markdown() -> str:
    roles = list(Role)
    head = "| permission | " + " | ".join(r.label for r in roles) + " | allows |"
    sep = "|---|" + "|".join(":-:" for _ in roles) + "|---|"
    rows = [
        f"| `{perm}` | " + " | ".join("✓" if r in holders else "" for r in roles) + f" | {text} |"
        for perm, (holders, text) in MATRIX.items()
    ]
    return "\n".join([head, sep, *rows])
