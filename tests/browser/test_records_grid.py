"""The records table as a spreadsheet-like grid in Chromium, at phone (390 px) and desktop (1440 px)
widths, light and dark: keyboard to a cell, edit it in place, see a refused value and a conflict in
the cell, select rows and delete them in bulk; the theme switch and the keyboard shortcuts.

The "someone else" of the conflict writes through the service in this process (committed), as a
second person's browser would through the same spine."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.accessibility import axe_violations
from tests.conftest import SAAS

pytestmark = pytest.mark.browser

PASSWORD = "Grid-admin-browser-58"
SIZES = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1440, "height": 900}}


def url_of(server, path: str) -> str:
    return server.tenant_url("alpha", path) if SAAS else server.url(path)


@pytest.fixture
def grid_admin(tessera_server, tenants_provisioned, db_commit):
    """A committed Admin of alpha and a collection of five people of its own (a fresh slug per test)."""
    email = f"grid-{uuid.uuid4().hex[:10]}@example.com"
    slug = f"people-{uuid.uuid4().hex[:6]}"
    tenant = tenants_provisioned["alpha"]

    def create():
        from django.contrib.auth.hashers import Argon2PasswordHasher

        from accounts.services import user_create
        from rbac.roles import Role
        from records.services import collection_create, record_create
        from tenants.runtime import workspace_context

        with workspace_context(tenant):
            user = user_create(email=email, password=None, full_name="Gita Grid", role=Role.ADMIN)
            hasher = Argon2PasswordHasher()
            user.password = hasher.encode(PASSWORD, hasher.salt())
            user.save(update_fields=["password"])
            people = collection_create(
                actor=user,
                name="People",
                slug=slug,
                fields=[
                    {"key": "name", "type": "text", "required": True},
                    {"key": "score", "type": "integer"},
                    {"key": "tier", "type": "choice", "choices": ["free", "pro"]},
                ],
            )
            ids = {}
            for i, name in enumerate(["Ada", "Bob", "Cy", "Dee", "Eve"]):
                ids[name] = record_create(actor=user, collection=people, data={"name": name, "score": i}).id
            return ids

    ids = db_commit(create)
    return {"email": email, "slug": slug, "ids": ids, "tenant": tenant}


def log_in(page, server, who, path):
    page.goto(url_of(server, path))
    page.get_by_label("E-mail").fill(who["email"])
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url_of(server, path))


def record_data(db_commit, who, name):
    def read():
        from records.models import Record
        from tenants.runtime import workspace_context

        with workspace_context(who["tenant"]):
            record = Record.objects.get(id=who["ids"][name])
            return record.data, record.version, record.deleted_at is not None

    return db_commit(read)


def sticking_out(page) -> list[str]:
    """Elements that push the page wider than the window (scrolling boxes may hold wider content)."""
    return page.evaluate(
        """() => document.documentElement.scrollWidth <= window.innerWidth + 1 ? [] :
        Array.from(document.querySelectorAll('body *')).filter((e) => !e.closest('.sidebar, .scroll') &&
        e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 8)
        .map((e) => e.tagName + '.' + e.className)"""
    )


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_edit_cells_see_errors_and_conflicts_then_delete_in_bulk(
    tessera_server, browser_context, grid_admin, db_commit, size, scheme
):
    server, who = tessera_server, grid_admin
    page = browser_context(viewport=SIZES[size], color_scheme=scheme).new_page()
    log_in(page, server, who, f"/records/{who['slug']}/?sort=score")
    assert not sticking_out(page)
    assert axe_violations(page) == []
    grid = page.get_by_role("grid")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert (background == "rgb(15, 20, 27)") == (scheme == "dark")

    # Keyboard: focus Ada's score, move right/left, Enter opens a number input; Enter saves.
    ada = grid.locator(f'tr[data-id="{who["ids"]["Ada"]}"]')
    ada.locator('td[data-key="name"]').focus()
    page.keyboard.press("ArrowRight")
    expect(ada.locator('td[data-key="score"]')).to_be_focused()
    page.keyboard.press("Enter")
    editor = ada.get_by_role("spinbutton", name="score")
    expect(editor).to_be_focused()
    assert axe_violations(page) == []  # with the cell editor open
    editor.fill("41")
    page.keyboard.press("Enter")
    expect(ada.locator('td[data-key="score"]')).to_have_text("41")
    expect(ada.locator('td[data-key="score"]')).to_be_focused()
    assert record_data(db_commit, who, "Ada")[:2] == ({"name": "Ada", "score": 41}, 2)

    # A required field emptied: refused in the cell, what was typed (nothing) and the old value kept.
    bob = grid.locator(f'tr[data-id="{who["ids"]["Bob"]}"]')
    bob.locator('td[data-key="name"]').focus()  # its link opens the record; F2 edits the cell
    page.keyboard.press("F2")
    bob.get_by_role("textbox", name="name").fill("")
    bob.get_by_role("button", name="Save").click()
    expect(bob.get_by_test_id("cell-error")).to_have_text("This field is required.")
    bob.get_by_role("textbox", name="name").press("Escape")
    expect(bob.locator('td[data-key="name"]')).to_have_text("Bob")
    assert record_data(db_commit, who, "Bob")[0]["name"] == "Bob"

    # A conflict: someone changes Cy's score while the cell is open.
    cy = grid.locator(f'tr[data-id="{who["ids"]["Cy"]}"]')
    cy.locator('td[data-key="score"]').dblclick()
    cy.get_by_role("spinbutton", name="score").fill("7")

    def someone_else():
        from accounts.models import User
        from records.models import Record
        from records.services import record_update
        from tenants.runtime import workspace_context

        with workspace_context(who["tenant"]):
            record = Record.objects.get(id=who["ids"]["Cy"])
            record_update(actor=User.objects.get(email=who["email"]), record=record, data={"score": 99})

    db_commit(someone_else)
    cy.get_by_role("button", name="Save").click()
    expect(cy.get_by_test_id("cell-conflict")).to_contain_text("changed this to “99” while you were editing")
    expect(cy.get_by_role("spinbutton", name="score")).to_have_value("7")
    assert axe_violations(page) == []  # with the conflict shown in the cell
    cy.get_by_role("button", name="Save mine").click()
    expect(cy.locator('td[data-key="score"]')).to_have_text("7")
    assert record_data(db_commit, who, "Cy")[0]["score"] == 7

    # Bulk: tick Dee and Eve, delete them (the browser's confirm accepted).
    expect(page.get_by_test_id("selected-count")).to_have_text("None selected")
    expect(page.get_by_role("button", name="Delete selected")).to_be_disabled()
    page.get_by_role("checkbox", name="Select Dee", exact=True).check()
    page.get_by_role("checkbox", name="Select Eve", exact=True).check()
    expect(page.get_by_test_id("selected-count")).to_have_text("2 selected")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete selected").click()
    expect(page.get_by_text("2 records deleted.")).to_be_visible()
    expect(grid.locator("tbody tr")).to_have_count(3)
    assert record_data(db_commit, who, "Dee")[2] and record_data(db_commit, who, "Eve")[2]
    assert not sticking_out(page)


def test_theme_switch_and_keyboard_shortcuts(tessera_server, browser_context, grid_admin):
    server, who = tessera_server, grid_admin
    page = browser_context(viewport=SIZES["desktop"], color_scheme="light").new_page()
    log_in(page, server, who, "/")
    dark = "rgb(15, 20, 27)"
    assert axe_violations(page) == []  # the home page

    switch = page.locator("[data-theme-switch]")
    expect(switch).to_have_text("Theme: auto")
    switch.click()
    expect(switch).to_have_text("Theme: dark")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == dark
    assert axe_violations(page) == []  # the home page, dark
    page.reload()  # the choice is kept: the server renders the page dark from the start
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == dark
    page.locator("[data-theme-switch]").click()
    page.locator("[data-theme-switch]").click()
    expect(page.locator("[data-theme-switch]")).to_have_text("Theme: auto")

    page.keyboard.press("?")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(dialog).to_be_visible()
    assert axe_violations(page) == []  # the shortcuts dialog
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    page.keyboard.press("g")
    page.keyboard.press("r")
    page.wait_for_url(url_of(server, "/records/"))
    page.get_by_role("link", name="People").first.click()
    page.wait_for_url(re.compile(r"/records/people-"))
    page.keyboard.press("/")
    expect(page.get_by_role("searchbox", name="Search")).to_be_focused()
    page.get_by_role("searchbox", name="Search").press("Escape")
    page.locator("h1").click()
    page.keyboard.press("n")
    page.wait_for_url(re.compile(r"/new/$"))
