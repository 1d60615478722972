"""A request for a workspace that another cell holds: the console is redirected there, the API told
where with a 421 problem; a workspace being moved keeps answering reads and refuses writes
(503, Retry-After) until it is in its new cell (SaaS only)."""

from __future__ import annotations

import pytest
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from directory.models import WorkspaceLocation
from directory.selectors import workspace_location_forget
from records.services import collection_create, record_create
from tenants.models import Tenant
from tenants.runtime import WorkspaceMoving, workspace_context

pytestmark = pytest.mark.saas_only

US_CELL = {"us-1": {"region": "us", "public_url": "https://us1.tessera.example:8443"}}


@pytest.fixture
def elsewhere(tenants_provisioned, db, settings):
    """Workspace `omega`: in the directory, held by cell us-1 (not here)."""
    settings.TESSERA_CELLS = {**settings.TESSERA_CELLS, **US_CELL}
    WorkspaceLocation.objects.create(slug="omega", cell="us-1", region="us", status="active")
    workspace_location_forget("omega")
    yield "omega"
    workspace_location_forget("omega")


def test_the_console_of_a_workspace_in_another_cell_is_redirected_there(elsewhere):
    response = Client(HTTP_HOST="omega.tessera.localhost").get("/records/?q=1")
    assert response.status_code == 302
    assert response["Location"] == "https://omega.us1.tessera.example:8443/records/?q=1"


def test_the_api_of_a_workspace_in_another_cell_answers_421_with_its_base_url(elsewhere):
    response = Client(HTTP_HOST="omega.tessera.localhost").post(
        "/api/v1/records/customers", {"data": {}}, content_type="application/json"
    )
    assert response.status_code == 421
    assert response["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "workspace_elsewhere"
    assert problem["base_url"] == "https://omega.us1.tessera.example:8443/api/v1"
    assert problem["region"] == "us"
    assert "omega.us1.tessera.example" in problem["detail"]


def test_a_slug_nobody_holds_is_still_the_unknown_host_page(tenants_provisioned, db):
    response = Client(HTTP_HOST="nobody.tessera.localhost").get("/")
    assert response.status_code == 404


def test_a_workspace_of_this_cell_is_served_without_asking_the_directory(admin_client):
    """The directory is asked only for hosts this cell does not hold: a normal request never reaches it."""
    with CaptureQueriesContext(connections["directory"]) as directory_queries:
        assert admin_client.get("/").status_code == 200
    assert len(directory_queries) == 0


def test_a_moving_workspace_serves_reads_and_refuses_writes(tenant, admin_user, api):
    client = api()
    collection = collection_create(
        actor=admin_user, name="Customers", slug="customers", fields=[{"key": "name", "type": "text"}]
    )
    record_create(actor=admin_user, collection=collection, data={"name": "Ada"})
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.MOVING)

    assert client.get("/api/v1/collections/customers/records").status_code == 200
    response = client.post("/api/v1/collections/customers/records", {"data": {"name": "Bea"}})
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["code"] == "workspace_moving"
    # the write spine refuses too (a phone's write, a task): checked under the change-counter lock
    with workspace_context(tenant), pytest.raises(WorkspaceMoving):
        record_create(actor=admin_user, collection=collection, data={"name": "Cy"})
