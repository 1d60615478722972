"""The exports page in a real browser: an analyst starts a background export of a filtered record set
from a query's result, watches its progress on the exports page (which polls while a job runs), and
downloads the file through its signed link; the CSV parses back to the records.

The worker is the task's own code (analytics.export_jobs.export_job_run) run from this test process
against the same database and export folder as the server, in a thread held after the first rows so
the page can be seen mid-way (PROGRESS_EVERY made small for that); the broker between the server and a
worker is left out (tests/analytics/test_worker.py runs a real one)."""

from __future__ import annotations

import csv
import io
import threading
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.test_analytics import PASSWORD, SALES, analyst, url_of  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser

HOLD_AFTER = 10  # rows written before the worker waits for the page to show them


def test_a_background_export_shows_its_progress_and_downloads_through_its_link(
    tessera_server,
    browser_context,
    analyst,  # noqa: F811
    tenants_provisioned,
    django_db_blocker,
    settings,
    monkeypatch,
):
    import analytics.export_jobs as export_jobs
    from analytics.models import ExportJob
    from tenants.runtime import workspace_context

    email, slug = analyst
    tenant = tenants_provisioned["alpha"]
    server, page = tessera_server, browser_context().new_page()
    settings.TESSERA_EXPORTS_DIR = server.workdir / "exports"  # where the server reads the files from

    query = f"/analytics/queries/new/?collection={slug}&f_field=region&f_op=eq&f_value=EU&run=1"
    page.goto(url_of(server, query))
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url_of(server, query))
    form = page.get_by_test_id("export-background")
    form.get_by_role("combobox").select_option("csv")
    form.get_by_role("button", name="Start").click()
    page.wait_for_url(url_of(server, "/analytics/exports/"))
    expect(page.get_by_text(f"Export of “{slug}” started")).to_be_visible()
    row = page.locator("[data-testid^=export-exp_]").first
    expect(row).to_have_attribute("data-status", "queued")
    expect(row.get_by_role("progressbar", name=f"Progress of the {slug} export")).to_be_visible()

    # The worker: writes HOLD_AFTER rows (progress is saved every 5), then waits until released.
    eu = [s for s in SALES if s[1] == "EU"]
    release, held = threading.Event(), threading.Event()
    monkeypatch.setattr(export_jobs, "PROGRESS_EVERY", 5)
    table = export_jobs.records_table

    def held_table(collection, qs):
        header, rows = table(collection, qs)

        def slow():
            for n, r in enumerate(rows):
                if n == HOLD_AFTER:
                    held.set()
                    release.wait(30)
                yield r

        return header, slow()

    monkeypatch.setattr(export_jobs, "records_table", held_table)
    outcome = {}

    def work():
        from django.db import connections

        try:
            with workspace_context(tenant):
                token = ExportJob.objects.filter(requested_by__email=email).get().token
                outcome["job"] = export_jobs.export_job_run(token=token)
        except BaseException as exc:  # reported below
            outcome["error"] = exc
        finally:
            connections.close_all()

    with django_db_blocker.unblock():
        worker = threading.Thread(target=work, name="export-worker")
        worker.start()
        try:
            assert held.wait(30), outcome
            # The page polls by itself: the running job and its count show without a reload.
            expect(row).to_have_attribute("data-status", "running")
            expect(row).to_contain_text(f"{HOLD_AFTER} of {len(eu)} rows")
            expect(row.get_by_role("progressbar")).to_have_attribute("value", str(HOLD_AFTER))
        finally:
            release.set()
            worker.join(30)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["job"].status == "done"

    expect(row).to_have_attribute("data-status", "done")
    expect(row).to_contain_text(f"{len(eu)} rows")
    link = row.get_by_test_id("download")
    assert "/analytics/exports/download/" in link.get_attribute("href")
    with page.expect_download() as download:
        link.click()
    text = Path(download.value.path()).read_bytes().decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted((r["closed_on"], r["region"], float(r["amount"])) for r in rows) == sorted(
        (d, r, float(a)) for d, r, a in eu
    )

    # The link is the credential: another browser with no session downloads the same file, and a
    # forged one finds nothing (fetched from a page of its own, which resolves the workspace's host).
    stranger = browser_context().new_page()
    stranger.goto(url_of(server, "/accounts/login/"))
    href = link.get_attribute("href")
    fetch = "async (u) => { const r = await fetch(u); return [r.status, await r.text()]; }"
    assert stranger.evaluate(fetch, href) == [200, text]
    assert stranger.evaluate(fetch, href.rstrip("/") + "x/")[0] == 404
