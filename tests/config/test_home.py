"""The console's home page: the workspace's counts, recent activity, sync and webhook health, and the
getting-started steps, which tick themselves off as the workspace does them."""

from __future__ import annotations

import re

import pytest

from accounts.services import invitation_create
from rbac.roles import Role
from records.services import collection_create, record_create


def text(response) -> str:
    return response.content.decode()


def steps_of(page: str) -> dict[str, bool]:
    block = re.search(r'data-testid="getting-started">(.*?)</ol>', page, re.S)
    if block is None:
        return {}
    items = re.findall(r'<li class="(done)?">.*?<span>([^<]+)', block.group(1), re.S)
    return {label.strip(): bool(done) for done, label in items}


def test_a_new_workspace_gets_its_first_steps(admin_client):
    page = text(admin_client.get("/"))

    steps = steps_of(page)
    assert list(steps) == [
        "Create a collection",
        "Import records from a spreadsheet (CSV)",
        "Invite a colleague",
        "Make your first API call",
        "Pair a phone",
    ]
    assert not any(steps.values())
    assert re.search(r'data-testid="count-records">0<', page)


def test_steps_tick_off_and_counts_follow_what_the_workspace_did(admin_client, admin_user, api):
    people = collection_create(actor=admin_user, name="People", slug="people", fields=[{"key": "name", "type": "text"}])
    for name in ("Ada", "Bob", "Cy"):
        record_create(actor=admin_user, collection=people, data={"name": name})
    invitation_create(actor=admin_user, email="new@alpha.test", role=Role.VIEWER, base_url="http://x.test")
    assert api().get("/api/v1/collections").status_code == 200

    page = text(admin_client.get("/"))

    steps = steps_of(page)
    assert steps["Create a collection"] and steps["Invite a colleague"] and steps["Make your first API call"]
    assert not steps["Pair a phone"] and not steps["Import records from a spreadsheet (CSV)"]
    assert "3 of 5 done" in page
    assert re.search(r'data-testid="count-records">3<', page)
    assert re.search(r'data-testid="count-collections">1<', page)
    activity = re.search(r'data-testid="activity">(.*?)</ul>', page, re.S).group(1)
    assert "Record created" in activity and "Member invited" in activity


def test_readers_see_counts_but_no_activity_and_no_admin_links(tenant, client_for, make_user):
    viewer = client_for(tenant, make_user(role=Role.VIEWER))

    page = text(viewer.get("/"))

    assert 'data-testid="count-records"' in page
    assert 'data-testid="activity"' not in page
    assert 'href="/api-keys/"' not in page and 'href="/members/"' not in page


@pytest.mark.saas_only
def test_another_workspaces_home_counts_only_its_own(admin_user, tenant_b, client_for):
    from accounts.models import User
    from tenants.runtime import workspace_context

    people = collection_create(actor=admin_user, name="People", slug="people", fields=[])
    record_create(actor=admin_user, collection=people, data={})
    with workspace_context(tenant_b):
        beta_admin = User.objects.get(email="admin@beta.test")

    page = text(client_for(tenant_b, beta_admin).get("/"))

    assert re.search(r'data-testid="count-records">0<', page)
    assert "Alpha" not in page


def test_help_texts_are_announced_and_the_page_has_an_icon(admin_client, admin_user):
    collection_create(actor=admin_user, name="People", slug="people", fields=[{"key": "name", "type": "text"}])
    page = text(admin_client.get("/records/people/import/"))  # its file field has a help text

    described = re.findall(r'aria-describedby="([^"]+)"', page)
    assert described, "a field with a help text"
    for ids in described:
        for one in ids.split():
            assert f'id="{one}"' in page, one
    assert re.search(r'<link rel="icon" href="/static/favicon\.svg"', page)


def test_sync_and_webhook_health_follow_devices_and_endpoints(admin_client, admin_user, tenant):
    from django.utils import timezone

    from sync.services import pairing_exchange, pairing_start
    from webhooks import services as webhook_services
    from webhooks.models import Endpoint

    for name in ("A", "B"):
        started = pairing_start(actor=admin_user, user=admin_user, role=Role.MANAGER)
        pairing_exchange(tenant=tenant, code=started.code, name=f"Phone {name}")
    endpoints = [webhook_services.endpoint_create(actor=admin_user, url=f"https://example.com/{n}")[0] for n in "abc"]
    Endpoint.objects.filter(pk=endpoints[1].pk).update(failing_since=timezone.now())  # its deliveries fail
    webhook_services.endpoint_disable_for_failures(endpoint=endpoints[2], reason="410 Gone")

    page = text(admin_client.get("/"))

    assert re.search(r'data-testid="count-devices">2<', page)
    assert re.search(r"2 paired, \d seen in the last 24 h", page)
    assert re.search(r'2 active, <span class="error">1 disabled</span>, <span class="error">1 failing</span>', page)
    assert steps_of(page)["Pair a phone"]
