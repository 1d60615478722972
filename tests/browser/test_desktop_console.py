"""The desktop console in a real browser, against the real server on the SQLite data file:
log in, move around by keyboard only, rename the workspace, follow the OS colour scheme, and
never fetch anything from outside the server's own origin (the desktop edition works offline).
"""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.desktop_only]

PASSWORD = "Desk-admin-browser-31"


@pytest.fixture
def desktop_admin(tessera_server, db_commit):
    """A committed Admin the server can verify (Argon2: the test settings' MD5 is unknown to it).

    Removed afterwards, and the workspace name the test changes is restored."""
    email = f"desk-{uuid.uuid4().hex[:10]}@example.com"

    def create():
        from django.contrib.auth.hashers import Argon2PasswordHasher

        from accounts.services import user_create
        from rbac.roles import Role
        from tenants.runtime import workspace_context
        from tenants.services import tenant_single_ensure

        tenant = tenant_single_ensure()
        with workspace_context(tenant):
            user = user_create(email=email, password=None, full_name="Dana Desk", role=Role.ADMIN)
            hasher = Argon2PasswordHasher()
            user.password = hasher.encode(PASSWORD, hasher.salt())
            user.save(update_fields=["password"])
        return tenant.name, tenant.timezone

    name, timezone = db_commit(create)
    yield email

    def restore():
        from accounts.models import User
        from tenants.models import Tenant
        from tenants.services import tenant_single_ensure

        Tenant.objects.filter(pk=tenant_single_ensure().pk).update(name=name, timezone=timezone)
        User.objects.filter(email=email).delete()

    db_commit(restore)


def log_in(page, server, email: str, password: str = PASSWORD) -> None:
    page.goto(server.url("/"))
    page.wait_for_url(re.compile(re.escape(server.url("/accounts/login/"))))
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(server.url("/"))


def focused(page) -> dict:
    return page.evaluate(
        "() => { const e = document.activeElement;"
        " return {tag: e.tagName, text: (e.innerText || '').trim(), id: e.id, href: e.getAttribute('href'),"
        " inNav: !!e.closest('nav.sidebar'), cls: e.className}; }"
    )


def tab_to(page, predicate, limit: int = 40) -> dict:
    """Press Tab until the focused element matches; fail if it never does."""
    seen = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        current = focused(page)
        if predicate(current):
            return current
        seen.append(current.get("text") or current.get("tag"))
    raise AssertionError(f"Tab never reached the element; focus went through {seen}")


def test_desktop_console_keyboard_settings_dark_mode_and_offline(tessera_server, browser_context, desktop_admin, snap):
    server = tessera_server
    context = browser_context(color_scheme="light")
    foreign: list[str] = []
    requested: list[str] = []

    def on_request(request):
        requested.append(request.url)
        if not (request.url.startswith(server.origin + "/") or request.url.startswith(("data:", "blob:"))):
            foreign.append(request.url)

    context.on("request", on_request)
    page = context.new_page()
    log_in(page, server, desktop_admin)
    expect(page.get_by_role("heading", name="Welcome, Dana")).to_be_visible()
    expect(page.locator(".topbar .role")).to_have_text("Admin")

    # Keyboard only. The first Tab stop of a fresh page is the skip link; Enter moves focus to <main>.
    first = tab_to(page, lambda f: True, limit=1)
    assert first["text"] == "Skip to content", first
    expect(page.locator(".skip-link")).to_be_in_viewport()  # visible while focused
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'main'")

    # Through the section navigation: Members, then Audit, then Settings, each by Tab + Enter from
    # the top of a freshly loaded page.
    page.reload()
    for section, path, heading in (
        ("Members", "/members/", "Members"),
        ("Audit", "/audit/", "Audit log"),
        ("Settings", "/settings/", "Workspace settings"),
    ):
        tab_to(page, lambda f, s=section: f["inNav"] and f["text"] == s)
        page.keyboard.press("Enter")
        page.wait_for_url(server.url(path))
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        current = page.get_by_role("navigation", name="Sections").locator('a[aria-current="page"]')
        expect(current).to_have_text(section)

    # Settings: rename the workspace (keyboard again: type, then Enter submits the form).
    new_name = f"Desk Shop {uuid.uuid4().hex[:6]}"
    name_box = page.get_by_label("Workspace name")
    name_box.focus()
    name_box.fill(new_name)
    name_box.press("Enter")
    expect(page.locator(".flash-success")).to_have_text("Settings saved.")
    snap(page, "settings-saved")
    expect(page.get_by_test_id("workspace-name")).to_have_text(new_name)
    expect(page).to_have_title(re.compile(re.escape(new_name)))
    page.goto(server.url("/audit/"))
    expect(
        page.get_by_test_id("audit-events").locator('tr[data-action="workspace.settings_changed"]').first
    ).to_contain_text(new_name)

    # The OS colour scheme: dark and light give different backgrounds and text colours.
    def colours() -> tuple[str, str]:
        return tuple(
            page.evaluate("() => { const s = getComputedStyle(document.body); return [s.backgroundColor, s.color]; }")
        )

    page.goto(server.url("/"))
    light = colours()
    snap(page, "home-light")
    page.emulate_media(color_scheme="dark")
    dark = colours()
    snap(page, "home-dark")
    assert light[0] != dark[0] and light[1] != dark[1], (light, dark)
    assert _luminance(dark[0]) < _luminance(light[0]), (light, dark)  # dark really is darker
    page.emulate_media(color_scheme="light")
    assert colours() == light

    # Every request the console made stayed on the server's own origin (assets are vendored).
    assert any(url.endswith(".css") for url in requested), requested
    assert any(url.endswith(".js") for url in requested), requested
    assert foreign == [], foreign


def test_desktop_htmx_loaded_from_origin(tessera_server, browser_context, desktop_admin):
    """The vendored htmx really runs (under the CSP) and filters the audit log in place."""
    context = browser_context()
    page = context.new_page()
    log_in(page, tessera_server, desktop_admin)
    page.goto(tessera_server.url("/audit/"))
    page.wait_for_function("() => typeof window.htmx === 'object'")
    page.get_by_label("Action").select_option("user.logged_in")
    with page.expect_request(lambda r: r.headers.get("hx-request") == "true"):
        page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"action=user\.logged_in"))
    rows = page.get_by_test_id("audit-events").locator("tbody tr")
    expect(rows.first).to_have_attribute("data-action", "user.logged_in")
    assert set(rows.evaluate_all("rows => rows.map(r => r.dataset.action)")) == {"user.logged_in"}


def _luminance(css_colour: str) -> float:
    r, g, b = (int(x) for x in re.findall(r"\d+", css_colour)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_desktop_sidebar_has_no_billing_and_the_new_collection_form_lines_up(
    tessera_server, browser_context, desktop_admin
):
    """The desktop edition has no plans: no Billing section. The New collection form's Name and Slug
    inputs sit on one line although only Slug has a help text under it."""
    page = browser_context().new_page()
    log_in(page, tessera_server, desktop_admin)
    sections = page.get_by_role("navigation", name="Sections").locator("a")
    expect(sections.filter(has_text="Settings")).to_have_count(1)
    assert "Billing" not in sections.all_inner_texts()
    assert page.goto(tessera_server.url("/billing/")).status == 404
    page.goto(tessera_server.url("/records/"))
    name, slug = page.get_by_label("Name", exact=True), page.get_by_label("Slug")
    name_box, slug_box = name.bounding_box(), slug.bounding_box()
    assert abs(name_box["y"] - slug_box["y"]) < 1 and abs(name_box["height"] - slug_box["height"]) < 1, (
        name_box,
        slug_box,
    )
