"""Undo in Chromium (390 px dark, 1440 px light): a cell edited in the records table brings up a toast
with Undo; pressing it puts the value back, and the table says so. The audit log then reads the edit
as a field's value before and after, and the undo as one event."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.accessibility import axe_violations
from tests.browser.test_records_grid import SIZES, log_in, record_data, sticking_out, url_of
from tests.browser.test_records_grid import grid_admin as people_admin  # noqa: F401 (a fixture: an Admin, 5 people)

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(("size", "scheme"), [("phone", "dark"), ("desktop", "light")])
def test_a_cell_edit_is_undone_from_the_toast(
    tessera_server,
    browser_context,
    people_admin,  # noqa: F811 (the fixture imported above)
    db_commit,
    size,
    scheme,
):
    server, who = tessera_server, people_admin
    page = browser_context(viewport=SIZES[size], color_scheme=scheme).new_page()
    log_in(page, server, who, f"/records/{who['slug']}/?sort=score")
    grid = page.get_by_role("grid")
    ada = grid.locator(f'tr[data-id="{who["ids"]["Ada"]}"]')
    ada.locator('td[data-key="score"]').dblclick()
    ada.get_by_role("spinbutton", name="score").fill("77")
    page.keyboard.press("Enter")
    expect(ada.locator('td[data-key="score"]')).to_have_text("77")

    toast = page.locator("#undo-toast")
    expect(toast.get_by_test_id("undo-label")).to_have_text("“score” of Ada saved.")
    assert axe_violations(page) == []  # with the toast shown
    assert not sticking_out(page)
    toast.get_by_role("button", name="Undo").click()

    expect(page.get_by_text("Undone: 1 record put back as it was.")).to_be_visible()
    expect(grid.locator(f'tr[data-id="{who["ids"]["Ada"]}"] td[data-key="score"]')).to_have_text("0")
    expect(page.locator("#undo-toast")).to_be_hidden()
    assert record_data(db_commit, who, "Ada")[:2] == ({"name": "Ada", "score": 0}, 3)
    assert "sort=score" in page.url  # back where the person was

    page.goto(url_of(server, "/audit/?action=record.updated"))
    edit = page.locator("tr[data-action='record.updated']").filter(has_text=who["ids"]["Ada"]).first
    expect(edit.get_by_test_id("diff").get_by_role("row", name="score 0 77")).to_be_visible()
    page.goto(url_of(server, "/audit/?action=records.undone"))
    undone = page.locator("tr[data-action='records.undone']").first
    expect(undone.get_by_text("1 record id")).to_be_visible()
    assert axe_violations(page) == []
    assert not sticking_out(page)
