"""Saved views of the records table (records.table_views) and the table's column layout in its URL:
personal views only their owner sees, shared ones everyone who can see the collection; what a view
keeps is the table's query as the table reads it; hidden, resized and frozen columns."""

from __future__ import annotations

import re

import pytest

from rbac.roles import Role
from records.errors import NotFound, RecordError, WriteForbidden
from records.models import TableView
from records.services import record_create
from records.table_views import (
    table_view_create,
    table_view_delete,
    table_view_get,
    table_view_update,
    table_views_visible,
)

HX = {"HTTP_HX_REQUEST": "true"}


def text(response) -> str:
    return response.content.decode()


@pytest.fixture
def ada(customers, admin_user):
    return record_create(
        actor=admin_user, collection=customers, data={"name": "Ada", "email": "ada@x.test", "tier": "pro"}
    )


def test_a_personal_view_is_its_owners_and_a_shared_one_everyones(customers, admin_user, make_user):
    viewer, other = make_user(role=Role.VIEWER), make_user(role=Role.MANAGER)
    mine = table_view_create(actor=viewer, collection=customers, name="Mine", query="tier=pro", shared=False)
    shared = table_view_create(actor=other, collection=customers, name="Pro", query="tier=pro", shared=True)

    assert [v.name for v in table_views_visible(collection=customers, user=viewer)] == ["Pro", "Mine"]
    assert [v.name for v in table_views_visible(collection=customers, user=admin_user)] == ["Pro"]
    with pytest.raises(NotFound):
        table_view_get(collection=customers, user=admin_user, view_id=mine.pk)
    with pytest.raises(WriteForbidden):  # sharing is for those who may edit records
        table_view_create(actor=viewer, collection=customers, name="All", query="", shared=True)
    with pytest.raises(WriteForbidden):
        table_view_delete(actor=viewer, view=shared)
    with pytest.raises(WriteForbidden):
        table_view_update(actor=admin_user, view=mine, query="")
    table_view_delete(actor=admin_user, view=shared)  # an Admin may edit records: shared views too
    assert list(TableView.objects.values_list("name", flat=True)) == ["Mine"]


def test_saving_changing_and_deleting_a_view_are_audited(customers, admin_user):
    from audit.models import AuditEvent

    view = table_view_create(actor=admin_user, collection=customers, name="Pro", query="tier=pro", shared=True)
    pk = str(view.pk)
    table_view_update(actor=admin_user, view=view, query="tier=pro")  # nothing changed: nothing audited
    table_view_update(actor=admin_user, view=view, query="tier=free")
    table_view_delete(actor=admin_user, view=view)

    events = list(AuditEvent.objects.filter(target_type="table_view").order_by("seq"))
    assert [e.action for e in events] == ["table_view.created", "table_view.updated", "table_view.deleted"]
    assert {e.target_id for e in events} == {pk} and events[0].actor_id == str(admin_user.pk)
    assert events[1].changes["before"] == {"query": "tier=pro"} and events[1].changes["after"] == {"query": "tier=free"}
    assert events[2].changes["collection"] == "customers" and events[2].changes["shared"] is True


def test_a_view_keeps_the_tables_query_checked_and_without_its_page(customers, admin_user):
    view = table_view_create(
        actor=admin_user,
        collection=customers,
        name="Pro by score",
        query="tier=pro&sort=-score&after=abc&count=1&hide=notes,gone&widths=name:9999&freeze=7&view=3",
        shared=False,
    )

    assert view.query == "sort=-score&hide=notes&widths=name%3A800&freeze=3&tier=pro"
    with pytest.raises(RecordError) as bad:
        table_view_create(actor=admin_user, collection=customers, name="Bad", query="nope=1", shared=False)
    assert bad.value.param == "nope"
    with pytest.raises(RecordError) as twice:
        table_view_create(actor=admin_user, collection=customers, name="pro BY score", query="", shared=False)
    assert "exists already" in twice.value.message


def test_the_columns_menu_hides_and_freezes_columns_in_the_url(admin_client, ada):
    chosen = admin_client.get("/records/customers/?cols=1&col=email&col=score&freeze=1")
    page = admin_client.get(chosen["Location"])

    assert chosen.status_code == 302
    assert chosen["Location"] == "/records/customers/?hide=name%2Ctier%2Cnotes&freeze=1"
    hidden = re.findall(r'<th scope="col"[^>]*data-key="([^"]+)" hidden>', text(page))
    assert hidden == ["name", "tier", "notes"]
    assert 'data-frozen="1"' in text(page)
    # the first column shown opens the record
    assert re.search(r'<td data-key="email"><a href="/records/customers/r/[^"]+/" class="open">', text(page))
    assert re.search(r'<td data-key="name" hidden>Ada</td>', text(page))


def test_an_edited_row_comes_back_with_the_tables_hidden_columns(admin_client, ada):
    saved = admin_client.post(
        f"/records/customers/r/{ada.id}/cell/tier/",
        {"f-tier": "free", "base_version": "1"},
        HTTP_HX_CURRENT_URL="http://testserver/records/customers/?hide=name,notes",
        **HX,
    )

    assert saved.status_code == 200
    assert '<td data-key="name" hidden>Ada</td>' in text(saved)
    assert re.search(r'<td data-key="email"><a href="[^"]+" class="open">', text(saved))


def test_saving_reopening_changing_and_deleting_a_view_from_the_table(admin_client, ada):
    saved = admin_client.post(
        "/records/customers/views/", {"name": "Pro", "query": "tier=pro&hide=notes", "shared": "on"}, follow=True
    )
    view = TableView.objects.get()

    assert saved.redirect_chain[-1][0] == f"/records/customers/?hide=notes&tier=pro&view={view.pk}"
    assert "View “Pro” saved, for everyone who can see this collection." in text(saved)
    assert view.owner is None
    assert re.search(r'data-testid="view-link" aria-current="page">Pro <span class="badge">shared', text(saved))
    assert "Save changes to “Pro”" in text(saved)

    again = admin_client.post("/records/customers/views/", {"name": "pro", "query": "", "shared": "on"}, follow=True)
    changed = admin_client.post(
        f"/records/customers/views/{view.pk}/", {"action": "update", "query": "tier=free"}, follow=True
    )
    assert "The view was not saved: A shared view named “pro” exists already." in text(again)
    view.refresh_from_db()
    assert view.query == "tier=free" and "View “Pro” saved." in text(changed)

    deleted = admin_client.post(f"/records/customers/views/{view.pk}/", {"action": "delete", "query": ""}, follow=True)
    assert "View “Pro” deleted." in text(deleted) and not TableView.objects.exists()


def test_a_viewer_saves_a_view_for_themself_only(as_role, ada, customers):
    viewer = as_role(Role.VIEWER)
    page = viewer.get("/records/customers/")
    saved = viewer.post("/records/customers/views/", {"name": "Mine", "query": "", "shared": "on"}, follow=True)
    mine = viewer.post("/records/customers/views/", {"name": "Mine", "query": "tier=pro"})

    assert "Share with everyone" not in text(page)
    assert "The view was not saved: Only those who may edit records share views." in text(saved)
    assert mine.status_code == 302 and TableView.objects.get().owner is not None


@pytest.fixture
def as_role(tenant, client_for, make_user, admin_user):
    def make(role: str):
        user = admin_user if role == Role.ADMIN else make_user(role=role)
        return client_for(tenant, user)

    return make


@pytest.mark.saas_only
def test_another_workspaces_admin_cannot_open_change_or_delete_these_views(
    admin_user, customers, tenant, tenant_b, client_for
):
    from accounts.models import User
    from tenants.runtime import workspace_context

    view = table_view_create(actor=admin_user, collection=customers, name="Pro", query="tier=pro", shared=True)
    with workspace_context(tenant_b):
        on_b = client_for(tenant_b, User.objects.get(email="admin@beta.test"))
    changed = on_b.post(f"/records/customers/views/{view.pk}/", {"action": "delete", "query": ""})
    table = on_b.get(f"/records/customers/?view={view.pk}")

    assert changed.status_code == 404 and table.status_code == 404
    with workspace_context(tenant):
        assert TableView.objects.filter(pk=view.pk).exists()
