"""The cells' directory at sign-up: a workspace's slug is reserved across every cell, recorded with
this cell and region, released when its creation fails; a region served by another cell continues
the sign-up on that cell's site (SaaS only: the desktop has no directory)."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.management import call_command
from django.test import Client

from directory.models import WorkspaceLocation
from tenants.models import Tenant
from tenants.services import ProvisioningError, tenant_provision
from tests.conftest import ADMIN_PASSWORD

pytestmark = pytest.mark.saas_only

PUBLIC = "tessera.localhost"
US_CELL = {"us-1": {"region": "us", "public_url": "https://us1.tessera.example"}}


@pytest.fixture
def public_client(tenants_provisioned, db):
    return Client(HTTP_HOST=PUBLIC)


@pytest.fixture
def two_regions(settings):
    settings.TESSERA_CELLS = {**settings.TESSERA_CELLS, **US_CELL}
    return settings


def signup_data(**overrides) -> dict:
    return {
        "name": "Gamma Trading",
        "slug": "gamma",
        "full_name": "Grace Gamma",
        "email": "grace@gamma.test",
        "password": ADMIN_PASSWORD,
        **overrides,
    }


def test_sign_up_records_the_workspace_in_the_directory_with_this_cell(public_client, settings):
    assert public_client.post("/", signup_data()).status_code == 302
    location = WorkspaceLocation.objects.get(slug="gamma")
    assert (location.cell, location.region) == (settings.TESSERA_CELL, settings.TESSERA_REGION)
    assert location.status == "active"


def test_a_slug_held_by_another_cell_is_taken_here_too(public_client):
    WorkspaceLocation.objects.create(slug="gamma", cell="us-1", region="us", status="active")
    response = public_client.post("/", signup_data())
    assert response.status_code == 400
    assert response.context["form"].errors["slug"] == ["That address is already taken."]
    assert not Tenant.objects.filter(slug="gamma").exists()


def test_a_failed_sign_up_frees_its_slug_in_the_directory(tenants_provisioned, db):
    def populate_fails(tenant):
        raise ProvisioningError("The first Admin could not be created.", param="email")

    with pytest.raises(ProvisioningError):
        tenant_provision(name="Delta", slug="delta", plan="free", populate=populate_fails)
    assert not WorkspaceLocation.objects.filter(slug="delta").exists()
    assert not Tenant.objects.filter(slug="delta").exists()


def test_the_region_is_asked_only_when_cells_serve_more_than_one(public_client, two_regions):
    body = public_client.get("/").content.decode()
    assert 'name="region"' in body and "United States" in body and "European Union" in body


def test_one_region_asks_nothing(public_client):
    assert 'name="region"' not in public_client.get("/").content.decode()


def test_sign_up_in_another_cells_region_continues_there_without_the_password(public_client, two_regions):
    response = public_client.post("/", signup_data(region="us"))
    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert (target.scheme, target.netloc, target.path) == ("https", "us1.tessera.example", "/")
    kept = parse_qs(target.query)
    assert kept["slug"] == ["gamma"] and kept["email"] == ["grace@gamma.test"] and kept["region"] == ["us"]
    assert ADMIN_PASSWORD not in response["Location"] and "password" not in kept
    assert not Tenant.objects.filter(slug="gamma").exists()
    assert not WorkspaceLocation.objects.filter(slug="gamma").exists()


def test_the_other_cells_sign_up_page_comes_prefilled(public_client, two_regions):
    body = public_client.get("/?name=Gamma+Trading&slug=gamma&region=eu&email=grace%40gamma.test").content.decode()
    assert 'value="gamma"' in body and 'value="grace@gamma.test"' in body
    assert "Enter your password again" in body


def test_sign_up_in_this_cells_region_creates_the_workspace_here(public_client, two_regions, settings):
    assert public_client.post("/", signup_data(region=settings.TESSERA_REGION)).status_code == 302
    assert Tenant.objects.filter(slug="gamma").exists()
    assert WorkspaceLocation.objects.get(slug="gamma").cell == settings.TESSERA_CELL


def test_directory_register_records_the_workspaces_of_a_cell_that_predates_the_directory(tenants_provisioned, db):
    WorkspaceLocation.objects.filter(slug__in=["alpha", "beta"]).delete()
    WorkspaceLocation.objects.create(slug="beta", cell="us-1", region="us", status="active")
    out, err = io.StringIO(), io.StringIO()
    call_command("directory_register", stdout=out, stderr=err)
    assert WorkspaceLocation.objects.get(slug="alpha").cell == "main"
    assert "beta: the directory has it in cell us-1" in err.getvalue()
    assert "1 clashes" in out.getvalue()
