"""The console's test-mode switch: a person who turns it on sees and edits the sandbox — the records
test-mode API keys read and write (livemode=False) — on the console's pages, under a banner, until they
turn it off; live data is never shown or touched meanwhile, and roles apply as in live mode."""

from __future__ import annotations

import pytest

from rbac.roles import Role
from records.models import Collection, Record
from records.services import collection_create, record_create

HX = {"HTTP_HX_REQUEST": "true"}


def text(response) -> str:
    return response.content.decode()


@pytest.fixture
def sandbox(customers, admin_user):
    """A live collection (the suite's customers) and a sandbox one of the same slug, one record each."""
    record_create(actor=admin_user, collection=customers, data={"name": "Live Ada"})
    test = collection_create(
        actor=admin_user,
        name="Customers",
        slug="customers",
        fields=[{"key": "name", "type": "text", "required": True}],
        livemode=False,
    )
    return record_create(actor=admin_user, collection=test, data={"name": "Sandbox Bob"})


@pytest.fixture
def as_role(tenant, client_for, make_user):
    return lambda role: client_for(tenant, make_user(role=role))


def switch(client, mode: str, back: str = "/records/customers/"):
    return client.post("/console/mode/", {"mode": mode, "next": back})


def test_test_mode_shows_and_edits_the_sandbox_under_a_banner_until_switched_off(admin_client, sandbox):
    live = admin_client.get("/records/customers/")
    switched = switch(admin_client, "test")
    table = admin_client.get("/records/customers/")
    home = admin_client.get("/")
    saved = admin_client.post(
        f"/records/customers/r/{sandbox.id}/cell/name/", {"f-name": "Bob 2", "base_version": "1"}, **HX
    )
    created = admin_client.post("/records/", {"name": "Trials", "slug": "trials", "description": ""})

    assert "Live Ada" in text(live) and "Sandbox Bob" not in text(live) and "test-mode-banner" not in text(live)
    assert switched.status_code == 302 and switched["Location"] == "/records/"  # collections are of one mode
    assert "Sandbox Bob" in text(table) and "Live Ada" not in text(table)
    assert 'data-testid="test-mode-banner"' in text(table) and 'aria-pressed="true"' in text(table)
    assert 'data-testid="test-mode-banner"' in text(home)
    assert saved.status_code == 200 and Record.objects.get(livemode=False).data["name"] == "Bob 2"
    assert Record.objects.get(livemode=True).data["name"] == "Live Ada" and created.status_code == 302
    assert Collection.objects.get(slug="trials").livemode is False  # made in the sandbox

    switch(admin_client, "live")
    back = admin_client.get("/records/customers/")
    assert "Live Ada" in text(back) and "test-mode-banner" not in text(back)
    assert admin_client.get("/records/trials/").status_code == 404  # a sandbox collection is not live


def test_roles_apply_in_test_mode_and_the_switch_goes_back_only_to_this_site(as_role, sandbox):
    viewer = as_role(Role.VIEWER)
    switched = switch(viewer, "test", back="https://evil.test/")
    seen = viewer.get("/records/customers/")
    edit = viewer.post(f"/records/customers/r/{sandbox.id}/cell/name/", {"f-name": "x", "base_version": "1"}, **HX)
    bulk = viewer.post("/records/customers/bulk/", {"action": "delete", "ids": [sandbox.id]})

    assert switched["Location"] == "/"
    assert "Sandbox Bob" in text(seen) and edit.status_code == 403 and bulk.status_code == 403
    assert Record.objects.get(livemode=False).data["name"] == "Sandbox Bob"


def test_the_switch_needs_a_person_signed_in(anon_client, sandbox):
    refused = switch(anon_client, "test")

    assert refused.status_code == 302 and "/login" in refused["Location"]
    assert "Sandbox Bob" not in text(anon_client.get("/records/customers/", follow=True))


@pytest.mark.saas_only
def test_another_workspace_in_test_mode_sees_none_of_this_sandbox(sandbox, tenant_b, client_for):
    from accounts.models import User
    from tenants.runtime import workspace_context

    with workspace_context(tenant_b):
        beta_admin = User.objects.get(email="admin@beta.test")
    on_b = client_for(tenant_b, beta_admin)
    switch(on_b, "test")

    assert "Sandbox" not in text(on_b.get("/records/")) and on_b.get("/records/customers/").status_code == 404
