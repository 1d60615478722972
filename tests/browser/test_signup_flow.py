"""The must-show SaaS journey in a real browser, against a real server on real PostgreSQL schemas:
sign up a business on the public site, land logged in on its subdomain, invite a member, accept in
a second browser (separate cookies), change the member's role, and find all of it in the audit log.
"""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.saas_only]

PASSWORD = "Tessera-browser-pass-42"
MEMBER_PASSWORD = "Member-browser-pass-77"


@pytest.fixture
def new_slug(db_commit):
    """A workspace address unique to this test; its tenant (if sign-up made one) is dropped after."""
    slug = "b-" + uuid.uuid4().hex[:12]
    yield slug

    def drop():
        from tenants.models import Tenant
        from tenants.services import tenant_drop

        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is not None:
            tenant_drop(tenant=tenant, hold_slug=False)

    db_commit(drop)


def sign_up(page, server, *, name: str, slug: str, full_name: str, email: str, password: str = PASSWORD):
    page.goto(server.public_url("/"))
    expect(page.get_by_role("heading", name="Start your Tessera workspace")).to_be_visible()
    page.get_by_label("Business name").fill(name)
    page.get_by_label("Workspace address").fill(slug)
    page.get_by_label("Your name").fill(full_name)
    page.get_by_label("Work e-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Create workspace").click()


def nav(page, section: str):
    page.get_by_role("navigation", name="Sections").get_by_role("link", name=section, exact=True).click()


def test_signup_invite_accept_role_change_audit(tessera_server, browser_context, new_slug, snap):
    server, slug, uid = tessera_server, new_slug, new_slug[2:]
    name = f"Acme Widgets {uid}"
    admin_email, member_email = f"owner-{uid}@example.com", f"member-{uid}@example.com"
    home = server.tenant_url(slug, "/")

    # 1. Sign up on the public site; land logged in on the new subdomain.
    admin = browser_context().new_page()
    sign_up(admin, server, name=name, slug=slug, full_name="Ada Owner", email=admin_email)
    admin.wait_for_url(home)
    assert admin.url == home
    expect(admin.get_by_test_id("workspace-name")).to_have_text(name)
    expect(admin.get_by_role("heading", name="Welcome, Ada")).to_be_visible()
    expect(admin.locator(".topbar .role")).to_have_text("Admin")
    expect(admin.get_by_text("Your workspace is ready")).to_be_visible()

    # 2. Members: invite someone as Viewer and read the invitation link shown on the page.
    nav(admin, "Members")
    admin.wait_for_url(server.tenant_url(slug, "/members/"))
    invite = admin.locator("section", has=admin.get_by_role("heading", name="Invite someone"))
    invite.get_by_label("E-mail").fill(member_email)
    invite.get_by_label("Role").select_option("viewer")
    invite.get_by_role("button", name="Send invitation").click()
    link_box = admin.get_by_test_id("invite-link")
    expect(link_box).to_be_visible()
    link = link_box.input_value()
    snap(admin, "members-invited")
    assert re.fullmatch(re.escape(server.tenant_url(slug, "/accounts/invite/")) + r"[\w-]{20,}/", link), link
    pending = admin.locator("section", has=admin.get_by_role("heading", name="Pending invitations"))
    expect(pending.get_by_role("row", name=re.compile(re.escape(member_email)))).to_contain_text("Viewer")

    # 3. Accept in a second browser context (its own cookies): choose a password, land logged in.
    member_context = browser_context()
    member = member_context.new_page()
    member.goto(link)
    expect(member.get_by_role("heading", name=f"Join {name}")).to_be_visible()
    expect(member.get_by_test_id("invite-email")).to_have_text(member_email)
    member.get_by_label("Your name").fill("Max Member")
    member.get_by_label("Password", exact=True).fill(MEMBER_PASSWORD)
    member.get_by_label("Confirm password").fill(MEMBER_PASSWORD)
    member.get_by_role("button", name="Join workspace").click()
    member.wait_for_url(home)
    expect(member.get_by_test_id("workspace-name")).to_have_text(name)
    expect(member.get_by_role("heading", name="Welcome, Max")).to_be_visible()
    expect(member.locator(".topbar .role")).to_have_text("Viewer")
    sections = member.get_by_role("navigation", name="Sections")
    expect(sections.get_by_role("link", name="Members")).to_have_count(0)  # a Viewer does not see members

    # A Viewer is refused the audit log, and an unknown page is a 404: both pages belong to this
    # workspace, and neither ends the member's session (the ASGI error path once rendered them in
    # the wrong schema, which deleted the session cookie).
    response = member.goto(server.tenant_url(slug, "/audit/"))
    assert response is not None and response.status == 403
    expect(member.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(member.get_by_test_id("workspace-name")).to_have_text(name)
    response = member.goto(server.tenant_url(slug, "/no-such-page/"))
    assert response is not None and response.status == 404
    expect(member.get_by_test_id("workspace-name")).to_have_text(name)
    member.goto(home)
    expect(member.get_by_role("heading", name="Welcome, Max")).to_be_visible()

    # 4. Back as the Admin: make the member a Manager.
    admin.goto(server.tenant_url(slug, "/members/"))
    row = admin.get_by_test_id("members").locator(f'tr[data-email="{member_email}"]')
    expect(row).to_contain_text("Max Member")
    row.get_by_label(f"Role of {member_email}").select_option("manager")
    row.get_by_role("button", name="Change role").click()
    expect(admin.locator(".flash-success")).to_have_text("Max Member is now Manager.")
    expect(
        admin.get_by_test_id("members")
        .locator(f'tr[data-email="{member_email}"]')
        .get_by_label(f"Role of {member_email}")
    ).to_have_value("manager")

    # The member's next page already reflects the new role.
    member.reload()
    expect(member.locator(".topbar .role")).to_have_text("Manager")
    expect(sections.get_by_role("link", name="Members")).to_be_visible()

    # 5. The audit log holds every step.
    nav(admin, "Audit")
    admin.wait_for_url(server.tenant_url(slug, "/audit/"))
    snap(admin, "audit")
    events = admin.get_by_test_id("audit-events")
    for action in ("workspace.created", "user.logged_in", "member.invited", "member.joined", "member.role_changed"):
        expect(events.locator(f'tr[data-action="{action}"]').first).to_be_visible()
    expect(events.locator('tr[data-action="user.logged_in"]')).to_have_count(2)  # the Admin, then the member
    expect(events.locator('tr[data-action="member.invited"]')).to_contain_text(member_email)
    changed = events.locator('tr[data-action="member.role_changed"]')
    expect(changed).to_contain_text(admin_email)  # actor
    expect(changed).to_contain_text("Max Member")  # target
    expect(changed).to_contain_text("manager")

    # Filtering (htmx swaps the table in place) narrows it to one action.
    admin.get_by_label("Action").select_option("member.role_changed")
    admin.get_by_role("button", name="Filter").click()
    admin.wait_for_url(re.compile(r"action=member\.role_changed"))
    expect(events.locator("tbody tr[data-action]")).to_have_count(1)  # one event (its diff table is inside)
    expect(events.locator('tbody tr[data-action="member.role_changed"]')).to_have_count(1)

    # 6. The member's cookies mean nothing on another tenant's host: not sent there by the browser,
    #    and replayed by hand they are not a session of that tenant either.
    other_home = server.tenant_url("alpha", "/")
    session = next(c for c in member_context.cookies() if c["name"] == "tessera_session")
    assert session["domain"] == f"{slug}.{server.base_domain}"  # host-only, never a parent domain
    other = member_context.new_page()
    other.goto(other_home)
    other.wait_for_url(re.compile(re.escape(server.tenant_url("alpha", "/accounts/login/"))))
    expect(other.get_by_role("heading", name="Log in")).to_be_visible()
    replay = {k: session[k] for k in ("name", "value", "path", "httpOnly", "secure", "sameSite")}
    member_context.add_cookies([{**replay, "domain": f"alpha.{server.base_domain}"}])
    other.goto(other_home)
    other.wait_for_url(re.compile(re.escape(server.tenant_url("alpha", "/accounts/login/"))))
    expect(other.get_by_role("heading", name="Log in")).to_be_visible()
    expect(other.locator(".topbar")).to_have_count(0)
    # ...while on its own host the same cookie still works.
    member.goto(home)
    expect(member.get_by_test_id("workspace-name")).to_have_text(name)
    assert member.url == home


def test_signup_shows_field_error_for_taken_slug(tessera_server, page, new_slug, snap):
    uid = new_slug[2:]
    # First sign-up takes the address...
    sign_up(page, tessera_server, name=f"First {uid}", slug=new_slug, full_name="", email=f"first-{uid}@example.com")
    page.wait_for_url(tessera_server.tenant_url(new_slug, "/"))

    # ...so a second one is refused on the form, next to the address field, with the rest kept.
    second = page.context.new_page()
    sign_up(second, tessera_server, name=f"Second {uid}", slug=new_slug, full_name="Sam", email=f"s-{uid}@example.com")
    slug_field = second.locator(".field", has=second.get_by_label("Workspace address"))
    expect(slug_field.get_by_role("alert")).to_have_text("That address is already taken.")
    snap(second, "slug-taken")
    expect(second.get_by_label("Business name")).to_have_value(f"Second {uid}")
    assert second.url == tessera_server.public_url("/")

    # A reserved or malformed address gets its own message, and never leaves the public site.
    second.get_by_label("Workspace address").fill("admin")
    second.get_by_label("Password").fill(PASSWORD)
    second.get_by_role("button", name="Create workspace").click()
    expect(second.locator(".field", has=second.get_by_label("Workspace address")).get_by_role("alert")).to_have_text(
        "That address is reserved. Please choose another."
    )
