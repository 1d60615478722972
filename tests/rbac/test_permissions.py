"""rbac.permissions: who may do what, and the three ways code checks it (views, DRF, services)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.test import RequestFactory
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from accounts.models import User
from rbac.permissions import (
    MATRIX,
    HasPermission,
    has_permission,
    matrix_markdown,
    permission_check,
    permission_required,
    permissions_for,
)
from rbac.roles import Role

# What each role may do, written out by hand: changing the matrix means changing this table on purpose.
EVERYONE = {"collections.view", "records.view", "analytics.view"}
EXPECTED: dict[str, set[str]] = {
    Role.ADMIN: {
        *EVERYONE,
        "records.edit",
        "records.export",
        "collections.manage",
        "analytics.use",
        "analytics.read",
        "members.view",
        "members.manage",
        "devices.pair",
        "devices.manage",
        "api_keys.manage",
        "webhooks.manage",
        "billing.manage",
        "sso.manage",
        "audit.view",
        "events.view",
        "compliance.manage",
        "settings.manage",
    },
    Role.MANAGER: {*EVERYONE, "records.edit", "records.export", "members.view", "devices.pair"},
    Role.ANALYST: {*EVERYONE, "records.export", "analytics.use", "analytics.read"},
    Role.VIEWER: {*EVERYONE},
}
ALL_PERMISSIONS = sorted(set().union(*EXPECTED.values()))


def member(role: str, **kw) -> User:
    return User(email=f"{role}@alpha.test", role=role, **kw)


def test_the_matrix_holds_exactly_the_permissions_tested_here():
    assert set(MATRIX) == set(ALL_PERMISSIONS)
    assert all(text for _, text in MATRIX.values()), "every permission says what it allows"


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", ALL_PERMISSIONS)
def test_role_holds_exactly_its_permissions(role, permission):
    assert has_permission(member(role), permission) is (permission in EXPECTED[role])


def test_only_admins_hold_every_permission():
    assert permissions_for(member(Role.ADMIN)) == frozenset(MATRIX)
    for role in (Role.MANAGER, Role.ANALYST, Role.VIEWER):
        assert permissions_for(member(role)) < frozenset(MATRIX)


def test_nobody_without_an_active_account_holds_anything():
    assert permissions_for(None) == frozenset()
    assert permissions_for(AnonymousUser()) == frozenset()
    assert permissions_for(member(Role.ADMIN, is_active=False)) == frozenset()
    assert permissions_for(member("owner")) == frozenset()  # an unknown role grants nothing


def test_unknown_permission_names_fail_loudly():
    with pytest.raises(KeyError):
        has_permission(member(Role.ADMIN), "records.destroy")
    with pytest.raises(KeyError):
        permission_required("records.destroy")
    with pytest.raises(KeyError):
        HasPermission.of("records.destroy")


def test_permission_check_raises_permission_denied_with_the_reason():
    permission_check(member(Role.MANAGER), "records.edit")
    with pytest.raises(PermissionDenied, match=r"records\.edit"):
        permission_check(member(Role.VIEWER), "records.edit")


# --- console views: permission_required --------------------------------------------------------------


@permission_required("records.edit")
def edit_view(request):
    return HttpResponse("edited")


def call(view, user):
    request = RequestFactory().get("/records/7/edit/?tab=fields")
    request.user = user
    return view(request)


def test_permission_required_sends_anonymous_visitors_to_log_in():
    response = call(edit_view, AnonymousUser())
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/records/7/edit/%3Ftab%3Dfields"


@pytest.mark.parametrize("role", list(Role))
def test_permission_required_lets_in_only_roles_holding_it(role):
    if "records.edit" in EXPECTED[role]:
        assert call(edit_view, member(role)).content == b"edited"
    else:
        with pytest.raises(PermissionDenied):  # rendered as the 403 page by Django
            call(edit_view, member(role))
    assert edit_view.required_permission == "records.edit"


def test_permission_required_on_a_real_page(tenant, client_for, anon_client, make_user):
    assert anon_client.get("/audit/")["Location"] == "/accounts/login/?next=/audit/"
    forbidden = client_for(tenant, make_user(role=Role.MANAGER)).get("/audit/")
    assert forbidden.status_code == 403
    assert "Your role does not allow this page." in forbidden.content.decode()
    assert client_for(tenant, make_user(role=Role.ADMIN)).get("/audit/").status_code == 200


# --- DRF: HasPermission --------------------------------------------------------------------------------


class RecordsEditAPI(APIView):
    permission_classes = [HasPermission.of("records.edit")]

    def get(self, request):
        return Response({"ok": True})

    def post(self, request):
        self.check_object_permissions(request, object())
        return Response({"saved": True}, status=201)


def api_call(method: str, user=None):
    factory = APIRequestFactory()
    request = getattr(factory, method)("/api/v1/records/", {}, format="json")
    if user is not None:
        force_authenticate(request, user=user)
    return RecordsEditAPI.as_view()(request)


@pytest.mark.parametrize("role", list(Role))
def test_has_permission_guards_a_drf_view(role):
    allowed = "records.edit" in EXPECTED[role]

    get, post = api_call("get", member(role)), api_call("post", member(role))

    assert get.status_code == (200 if allowed else 403)
    assert post.status_code == (201 if allowed else 403)


def test_has_permission_refuses_anonymous_and_removed_users():
    assert api_call("get").status_code in (401, 403)  # 401 when an authentication scheme offers a challenge
    assert api_call("get", member(Role.ADMIN, is_active=False)).status_code == 403


def test_has_permission_classes_are_named_after_their_permission():
    cls = HasPermission.of("audit.view")
    assert cls.__name__ == "HasPermission_audit_view"
    assert issubclass(cls, HasPermission) and cls.permission == "audit.view"


# --- the README ------------------------------------------------------------------------------------------


def test_readme_prints_the_current_role_matrix():
    """The README's table is `manage.py rbac_matrix` output, pasted; regenerate it when the matrix changes."""
    readme = Path(settings.BASE_DIR, "README.md")
    assert readme.exists(), "README.md is missing"
    assert matrix_markdown() in readme.read_text(encoding="utf-8"), (
        "README.md's role matrix differs from rbac.permissions.MATRIX: paste `python manage.py rbac_matrix`"
    )


def test_rbac_matrix_command_prints_the_table():
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("rbac_matrix", stdout=out)
    table = out.getvalue()
    assert table.strip() == matrix_markdown()
    assert table.splitlines()[0] == "| permission | Admin | Manager | Analyst | Viewer | allows |"
    assert "| `members.manage` | ✓ |  |  |  | Invite members, change roles, remove members |" in table
