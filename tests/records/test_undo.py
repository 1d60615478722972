"""Undo in the records table: the last cell edit, bulk edit or bulk delete put back from the toast
within its window, through the spine, all or nothing; never over a change made since."""

from __future__ import annotations

import re

import pytest

from audit.models import AuditEvent
from rbac.roles import Role
from records.models import Change, Record
from records.services import record_create, record_update

HX = {"HTTP_HX_REQUEST": "true"}


def text(response) -> str:
    return response.content.decode()


@pytest.fixture
def people(customers, admin_user):
    return [
        record_create(actor=admin_user, collection=customers, data={"name": n, "score": i, "email": f"{n}@x.test"})
        for i, n in enumerate(["ada", "bob", "cy"])
    ]


def undo_form(client) -> dict:
    toast = client.get("/records/customers/undo/", **HX)
    token = re.search(r'name="token" value="([^"]+)"', text(toast))
    assert token, f"no undo offered: {text(toast)}"
    return {"token": token.group(1), "next": "/records/customers/"}


def test_a_cell_edit_is_undone_from_the_toast(admin_client, people):
    ada = people[0]
    saved = admin_client.post(
        f"/records/customers/r/{ada.id}/cell/score/", {"f-score": "41", "base_version": "1"}, **HX
    )
    toast = admin_client.get("/records/customers/undo/", **HX)

    assert saved["HX-Trigger"] == "records-undo"
    assert "“score” of ada saved." in text(toast) and ">Undo</button>" in text(toast)

    done = admin_client.post("/records/customers/undo/", undo_form(admin_client), follow=True)

    ada.refresh_from_db()
    assert ada.data["score"] == 0 and ada.version == 3
    assert "Undone: 1 record put back as it was." in text(done)
    assert 'id="undo-toast" class="toast" hidden' in text(done)  # nothing left to undo
    assert AuditEvent.objects.filter(action="records.undone").get().changes["undoes"] == "cell"


def test_a_bulk_delete_and_a_bulk_edit_are_undone(admin_client, people):
    ids = [r.id for r in people]
    admin_client.post("/records/customers/bulk/", {"action": "delete", "ids": ids[:2]})
    after_delete = admin_client.get("/records/customers/")
    admin_client.post("/records/customers/undo/", undo_form(admin_client))

    assert "2 deleted." in text(after_delete) and ">Undo</button>" in text(after_delete)
    back = Record.objects.filter(id__in=ids[:2])
    assert all(r.deleted_at is None for r in back) and {r.data["name"] for r in back} == {"ada", "bob"}
    assert list(Change.objects.filter(record_id=ids[0]).values_list("op", flat=True)) == [
        "created",
        "deleted",
        "created",
    ]  # phones and webhooks hear the record come back

    admin_client.post("/records/customers/bulk/", {"action": "set", "field": "score", "value": "9", "ids": ids})
    admin_client.post("/records/customers/undo/", undo_form(admin_client))

    assert sorted(Record.objects.filter(id__in=ids).values_list("data__score", flat=True)) == [0, 1, 2]


def test_undo_never_overwrites_a_change_made_since(admin_client, people, admin_user):
    ada = people[0]
    admin_client.post(f"/records/customers/r/{ada.id}/cell/score/", {"f-score": "41", "base_version": "1"}, **HX)
    form = undo_form(admin_client)
    ada.refresh_from_db()
    record_update(actor=admin_user, record=ada, data={"name": "Ada Lovelace"})  # someone, meanwhile

    refused = admin_client.post("/records/customers/undo/", form, follow=True)

    ada.refresh_from_db()
    assert "Not undone: a record has changed since (or is gone); nothing was put back." in text(refused)
    assert ada.data["score"] == 41 and ada.data["name"] == "Ada Lovelace"


def test_undo_is_offered_for_a_short_while_only(admin_client, people, monkeypatch):
    from records.views import undo

    monkeypatch.setattr(undo, "UNDO_SECONDS", -1)  # the window has passed
    admin_client.post("/records/customers/bulk/", {"action": "delete", "ids": [people[0].id]})
    page = admin_client.get("/records/customers/")
    late = admin_client.post("/records/customers/undo/", {"token": "x"}, follow=True)

    assert ">Undo</button>" not in text(page)
    assert "Not undone: it is too late to undo that" in text(late)
    assert Record.objects.get(id=people[0].id).deleted_at is not None


def test_a_viewer_cannot_undo(tenant, client_for, make_user, people):
    viewer = client_for(tenant, make_user(role=Role.VIEWER))

    assert viewer.post("/records/customers/undo/", {"token": "x"}).status_code == 403
    assert ">Undo</button>" not in text(viewer.get("/records/customers/"))
