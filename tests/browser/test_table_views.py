"""Column controls and saved views of the records table in Chromium, at phone (390 px) and desktop
(1440 px) widths, dark and light: hide a column and freeze one from the Columns menu, widen a column
from the keyboard on its edge, save the table as a shared view; a Viewer then opens that view and sees
the same rows and columns."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.accessibility import axe_violations
from tests.browser.test_records_grid import PASSWORD, SIZES, log_in, sticking_out, url_of
from tests.browser.test_records_grid import grid_admin as people_admin  # noqa: F401 (a fixture: an Admin, 5 people)

pytestmark = pytest.mark.browser


@pytest.fixture
def viewer(people_admin, db_commit):  # noqa: F811 (the fixture imported above)
    email = f"viewer-{uuid.uuid4().hex[:10]}@example.com"

    def create():
        from django.contrib.auth.hashers import Argon2PasswordHasher

        from accounts.services import user_create
        from rbac.roles import Role
        from tenants.runtime import workspace_context

        with workspace_context(people_admin["tenant"]):
            user = user_create(email=email, password=None, full_name="Vic Viewer", role=Role.VIEWER)
            hasher = Argon2PasswordHasher()
            user.password = hasher.encode(PASSWORD, hasher.salt())
            user.save(update_fields=["password"])

    db_commit(create)
    return {**people_admin, "email": email}


def width_of(page, key: str) -> float:
    return page.evaluate(
        f"document.querySelector('table.records th[data-key=\"{key}\"]').getBoundingClientRect().width"
    )


@pytest.mark.parametrize(("size", "scheme"), [("phone", "light"), ("desktop", "dark")])
def test_hide_freeze_resize_then_share_a_view_a_viewer_opens(
    tessera_server,
    browser_context,
    people_admin,  # noqa: F811 (the fixture imported above)
    viewer,
    size,
    scheme,
):
    server, who = tessera_server, people_admin
    table_path = f"/records/{who['slug']}/"
    page = browser_context(viewport=SIZES[size], color_scheme=scheme).new_page()
    log_in(page, server, who, table_path + "?tier__isnull=true")
    grid = page.get_by_role("grid")
    expect(grid.locator("tbody tr")).to_have_count(5)

    # Columns menu: hide "tier", keep the first column in view.
    page.get_by_test_id("columns-menu").locator("summary").click()
    menu = page.get_by_test_id("columns-menu")
    assert axe_violations(page) == []  # with the menu open
    menu.get_by_role("checkbox", name="tier").uncheck()
    menu.get_by_label("Keep in view when scrolling sideways").select_option("1")
    menu.get_by_role("button", name="Apply").click()
    expect(grid.locator('th[data-key="tier"]')).to_be_hidden()
    expect(grid.locator('th[data-key="name"]')).to_have_class(re.compile(r"\bfrozen\b"))
    assert re.search(r"hide=tier", page.url) and "freeze=1" in page.url

    # Widen "score" from the keyboard on its edge: the address keeps the width.
    before = width_of(page, "score")
    edge = grid.get_by_role("separator", name="Width of score")
    edge.focus()
    for _ in range(4):
        page.keyboard.press("ArrowRight")
    expect(edge).to_be_focused()
    assert width_of(page, "score") >= before + 60
    assert re.search(r"widths=score%3A\d+", page.url)
    assert axe_violations(page) == []
    assert not sticking_out(page)

    # Save it as a shared view.
    page.get_by_test_id("save-view").locator("summary").click()
    page.get_by_label("Name of the view").fill("No tier yet")
    page.get_by_label("Share with everyone who can see this collection").check()
    page.get_by_role("button", name="Save view").click()
    expect(page.get_by_text("View “No tier yet” saved, for everyone who can see this collection.")).to_be_visible()
    current = page.get_by_role("navigation", name="Saved views").get_by_role("link", name="No tier yet shared")
    expect(current).to_have_attribute("aria-current", "page")
    saved_width = width_of(page, "score")
    assert abs(saved_width - before - 64) < 3
    assert axe_violations(page) == []

    # A Viewer opens the shared view: same filter, hidden column, frozen column and width.
    other = browser_context(viewport=SIZES[size], color_scheme=scheme).new_page()
    log_in(other, server, viewer, table_path)
    other.get_by_role("navigation", name="Saved views").get_by_role("link", name="No tier yet shared").click()
    expect(
        other.get_by_role("navigation", name="Saved views").get_by_role("link", name="No tier yet shared")
    ).to_have_attribute("aria-current", "page")
    their_grid = other.get_by_role("grid")
    expect(their_grid.locator("tbody tr")).to_have_count(5)
    expect(their_grid.locator('th[data-key="tier"]')).to_be_hidden()
    expect(their_grid.locator('th[data-key="name"]')).to_have_class(re.compile(r"\bfrozen\b"))
    assert abs(width_of(other, "score") - saved_width) < 3
    expect(other.get_by_role("button", name="Delete view")).to_have_count(0)  # not theirs to delete
    assert axe_violations(other) == []
    assert not sticking_out(other)
    assert url_of(server, table_path) in other.url
