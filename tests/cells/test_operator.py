"""The operator's cells page on the public site: cells, their regions and workspaces, moves under way
and done; platform operators only (users of the public schema with the Admin role)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from accounts.models import User
from directory.models import WorkspaceLocation, WorkspaceMove
from rbac.roles import Role
from tenants.runtime import public_context

pytestmark = pytest.mark.saas_only

PASSWORD = "operator-Passw0rd!"
URL = "/operator/cells/"


@pytest.fixture
def installation(tenants_provisioned, db, settings):
    """Cell main (this one, eu) and us-1; omega lives in us-1, zeta is moving there, kappa moved."""
    settings.TESSERA_CELLS = {
        **settings.TESSERA_CELLS,
        "us-1": {"region": "us", "public_url": "https://us1.tessera.example"},
    }
    WorkspaceLocation.objects.create(slug="omega", cell="us-1", region="us", status="active")
    WorkspaceLocation.objects.create(slug="zeta", cell="main", region="eu", status="moving")
    WorkspaceMove.objects.create(slug="zeta", source_cell="main", target_cell="us-1", status="frozen")
    WorkspaceMove.objects.create(
        slug="kappa", source_cell="us-1", target_cell="main", status="done", rows_copied=100_000,
        freeze_seconds=1.234, finished_at=timezone.now(),
    )  # fmt: skip


def _public_user(email: str, role: str) -> User:
    with public_context():
        return User.objects.create_user(email, PASSWORD, role=role)


def _public() -> Client:
    return Client(HTTP_HOST=settings.TESSERA_BASE_DOMAIN)


def test_an_operator_signs_in_and_sees_the_cells_their_workspaces_and_moves(installation):
    _public_user("ops@tessera.test", Role.ADMIN)
    client = _public()
    signed_in = client.post("/operator/login/", {"username": "ops@tessera.test", "password": PASSWORD, "next": URL})
    assert signed_in.status_code == 302 and signed_in["Location"] == URL
    page = client.get(URL)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-cell="main"' in html and 'data-cell="us-1"' in html
    assert 'data-testid="workspaces-us-1">1<' in html  # omega
    assert "United States (us)" in html
    under_way = html[html.index('data-testid="moves-under-way"') :]
    assert "zeta" in under_way and "Writes frozen, catching up" in under_way
    finished = html[html.index('data-testid="moves-finished"') :]
    assert "kappa" in finished and "1.23 s" in finished and "100000" in finished


def test_only_operators_see_the_page(installation, admin_client, tenant):
    assert _public().get(URL)["Location"].startswith("/operator/login/")  # signed out
    viewer = _public()
    viewer.force_login(_public_user("viewer@tessera.test", Role.VIEWER))
    assert viewer.get(URL).status_code == 403
    # a workspace's Admin is no operator: not on the workspace's host, nor with its session on the public one
    assert admin_client.get(URL).status_code == 404
    cookie = admin_client.cookies[settings.SESSION_COOKIE_NAME].value
    stranger = _public()
    stranger.cookies[settings.SESSION_COOKIE_NAME] = cookie
    assert stranger.get(URL).status_code == 302
