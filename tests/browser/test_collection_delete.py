"""Deleting a collection that holds records, in Chromium at phone (390 px) and desktop (1440 px) widths,
dark and light: its name typed to confirm (a wrong one is refused on the form), then the Records page
follows its records being deleted in the background until done, without a reload.

The worker that deletes what the request did not is the task's code (records.tasks) run from this test
process against the same database while the page watches; the broker between the server and a worker
is left out."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.accessibility import axe_violations
from tests.browser.test_records_grid import PASSWORD, SIZES, log_in, sticking_out, url_of

pytestmark = pytest.mark.browser

RECORDS = 600  # more than one batch (records.services.DELETION_BATCH = 500): the rest is left to a worker


@pytest.fixture
def big_collection(tessera_server, tenants_provisioned, db_commit):
    """A committed Admin of alpha and a collection of RECORDS records of its own (fresh name per test)."""
    email = f"del-{uuid.uuid4().hex[:10]}@example.com"
    tag = uuid.uuid4().hex[:6]
    slug, name = f"orders-{tag}", f"Orders {tag}"
    tenant = tenants_provisioned["alpha"]

    def create():
        from django.contrib.auth.hashers import Argon2PasswordHasher

        from accounts.services import user_create
        from rbac.roles import Role
        from records.services import collection_create, record_bulk_upsert
        from tenants.runtime import workspace_context

        with workspace_context(tenant):
            user = user_create(email=email, password=None, full_name="Del Admin", role=Role.ADMIN)
            hasher = Argon2PasswordHasher()
            user.password = hasher.encode(PASSWORD, hasher.salt())
            user.save(update_fields=["password"])
            orders = collection_create(
                actor=user, name=name, slug=slug, fields=[{"key": "ref", "type": "text", "required": True}]
            )
            items = [{"data": {"ref": f"O-{i}"}} for i in range(RECORDS)]
            results = record_bulk_upsert(actor=user, collection=orders, items=items)
            assert all(r.status == "created" for r in results)
            return orders.pk

    pk = db_commit(create)
    return {"email": email, "slug": slug, "name": name, "pk": pk, "tenant": tenant}


def live_records(db_commit, who) -> int:
    def count():
        from records.models import Record
        from tenants.runtime import workspace_context

        with workspace_context(who["tenant"]):
            return Record.objects.filter(collection_id=who["pk"], deleted_at=None).count()

    return db_commit(count)


@pytest.mark.parametrize(("size", "scheme"), [("phone", "dark"), ("desktop", "light")])
def test_a_collection_with_records_is_deleted_after_typing_its_name_and_its_progress_shown(
    tessera_server, browser_context, big_collection, db_commit, size, scheme
):
    server, who = tessera_server, big_collection
    page = browser_context(viewport=SIZES[size], color_scheme=scheme).new_page()
    log_in(page, server, who, f"/records/{who['slug']}/settings/delete/")
    expect(page.get_by_test_id("delete-warning")).to_contain_text(f"It holds {RECORDS} records.")
    assert axe_violations(page) == []
    assert not sticking_out(page)

    delete = page.get_by_role("button", name=f"Delete the collection and its {RECORDS} records")
    confirm = page.get_by_label("Type the collection's name to confirm")
    confirm.fill(who["slug"])  # the slug is not the name
    delete.click()
    expect(page.get_by_role("alert")).to_have_text(f"Type “{who['name']}” exactly as it is written, to confirm.")
    assert axe_violations(page) == []  # with the error shown
    assert live_records(db_commit, who) == RECORDS

    page.get_by_label("Type the collection's name to confirm").fill(who["name"])
    page.get_by_role("button", name=f"Delete the collection and its {RECORDS} records").click()
    page.wait_for_url(url_of(server, "/records/"))
    expect(page.get_by_text(f"Its {RECORDS} records are being deleted in the background")).to_be_visible()
    progress = page.get_by_test_id("deletion").filter(has_text=who["name"])
    expect(progress.get_by_test_id("deletion-progress")).to_have_text(f"500 of {RECORDS} records deleted (83 %)…")
    expect(progress.get_by_role("progressbar", name=f"Records of {who['name']} deleted")).to_have_attribute(
        "value", "500"
    )
    expect(page.get_by_test_id("collections").get_by_text(who["name"])).to_have_count(0)
    assert axe_violations(page) == []  # with the deletion in progress
    assert not sticking_out(page)

    def worker():
        from records.models import Collection
        from records.tasks import collection_records_delete_task
        from tenants.runtime import workspace_context

        with workspace_context(who["tenant"]):
            assert Collection.objects.get(pk=who["pk"]).deleted_at is not None
            return collection_records_delete_task(who["pk"])

    assert db_commit(worker) is True
    # The page polls: the line moves on to done without a reload.
    expect(progress.get_by_test_id("deletion-progress")).to_have_text(f"Done: all {RECORDS} records deleted.")
    assert live_records(db_commit, who) == 0
