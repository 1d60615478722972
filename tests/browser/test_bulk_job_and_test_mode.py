"""In Chromium at phone (390 px, dark) and desktop (1440 px, light) widths: "select all matching" over
more records than a request changes itself hands the delete to a worker, and the table follows its
progress without a reload; the header's test-mode switch shows the sandbox under a banner and back.

The worker is the task's code run from this test process against the same database while the page
watches, a batch at a time (the broker between the server and a worker is left out)."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.accessibility import axe_violations
from tests.browser.test_records_grid import PASSWORD, SIZES, log_in, sticking_out, url_of

pytestmark = pytest.mark.browser

RECORDS = 1001  # one more than a request deletes itself (records.services.BULK_INLINE)


@pytest.fixture
def many_orders(tessera_server, tenants_provisioned, db_commit):
    email = f"bulk-{uuid.uuid4().hex[:10]}@example.com"
    slug = f"orders-{uuid.uuid4().hex[:6]}"
    tenant = tenants_provisioned["alpha"]

    def create():
        from django.contrib.auth.hashers import Argon2PasswordHasher
        from django.db import transaction
        from django.utils import timezone

        from accounts.services import user_create
        from core.actors import Actor
        from rbac.roles import Role
        from records import services
        from records.models import Record
        from records.services import collection_create, record_create
        from tenants.runtime import workspace_context

        with workspace_context(tenant):
            user = user_create(email=email, password=None, full_name="Bea Bulk", role=Role.ADMIN)
            hasher = Argon2PasswordHasher()
            user.password = hasher.encode(PASSWORD, hasher.salt())
            user.save(update_fields=["password"])
            orders = collection_create(
                actor=user, name="Orders", slug=slug, fields=[{"key": "ref", "type": "text", "required": True}]
            )
            record_create(actor=user, collection=orders, data={"ref": "O-0"})
            # The other 1,000 as the spine's batch steps would leave them (sequence numbers and the live
            # count taken under the change lock), inserted at once: through record_create they took
            # over a minute on the loaded test machine. Only their deletion is under test.
            with transaction.atomic(), services._seq_locked_for_many():
                first, now, stamp = (
                    services._seq_next(RECORDS - 1, live_delta=RECORDS - 1),
                    timezone.now(),
                    Actor.of(user).stamp(),
                )
                Record.objects.bulk_create(
                    Record(
                        collection=orders,
                        data={"ref": f"O-{i}"},
                        seq=first + i - 1,
                        created_at=now,
                        updated_at=now,
                        created_by=stamp,
                        updated_by=stamp,
                    )
                    for i in range(1, RECORDS)
                )

    db_commit(create)
    return {"email": email, "slug": slug, "tenant": tenant}


def job_run(db_commit, who, limit):
    def run():
        from records.models import BulkJob
        from records.services import records_bulk_job_run
        from tenants.runtime import workspace_context

        with workspace_context(who["tenant"]):
            job = BulkJob.objects.filter(collection__slug=who["slug"]).get()
            return records_bulk_job_run(job_id=job.pk, limit=limit)

    return db_commit(run)


@pytest.mark.parametrize(("size", "scheme"), [("phone", "dark"), ("desktop", "light")])
def test_a_large_bulk_delete_runs_in_the_background_then_test_mode_shows_the_sandbox(
    tessera_server, browser_context, many_orders, db_commit, size, scheme
):
    server, who = tessera_server, many_orders
    page = browser_context(viewport=SIZES[size], color_scheme=scheme).new_page()
    log_in(page, server, who, f"/records/{who['slug']}/")

    page.get_by_role("checkbox", name="Select every record on this page").check()
    page.get_by_role("button", name=re.compile("Select all matching records")).click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete selected").click()
    expect(page.get_by_text("Deleting 1,001 records in the background")).to_be_visible()
    job = page.get_by_test_id("bulk-job")
    expect(job.get_by_test_id("bulk-job-progress")).to_have_text("0 of 1,001 records (0 %)…")
    assert axe_violations(page) == []  # with the job's progress shown
    assert not sticking_out(page)

    assert job_run(db_commit, who, limit=500) is False
    expect(job.get_by_test_id("bulk-job-progress")).to_have_text("500 of 1,001 records (49 %)…")  # polled
    expect(job.get_by_role("progressbar")).to_have_attribute("value", "500")
    assert job_run(db_commit, who, limit=None) is True
    expect(job.get_by_test_id("bulk-job-progress")).to_contain_text("Done: 1,001 records deleted")

    page.get_by_test_id("test-mode-switch").get_by_role("button", name="Test mode").click()
    page.wait_for_url(url_of(server, "/records/"))
    expect(page.get_by_test_id("test-mode-banner")).to_contain_text("Test mode.")
    expect(page.get_by_role("button", name="Test mode")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_role("link", name="Orders", exact=True)).to_have_count(0)  # a live collection
    assert axe_violations(page) == []  # with the banner
    assert not sticking_out(page)
    page.get_by_role("button", name="Back to live data").click()
    expect(page.get_by_test_id("test-mode-banner")).to_have_count(0)
    expect(page.get_by_role("button", name="Test mode")).to_have_attribute("aria-pressed", "false")
