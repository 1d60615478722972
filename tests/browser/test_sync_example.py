"""The SDK's example app (clients/js/example, served at /devices/example/) in Chromium, used as a phone:
an Admin starts pairing in the console, the phone opens the example from the Devices page's link and
types the PIN, edits a record while its network is cut, another writer changes the workspace
meanwhile, and once the network is back the phone's edit is on the server and the server's copy is
on the phone.

The phone reaches the server through a TCP link this test can cut (every connection dropped, new ones
refused), as a phone leaving coverage would; Chromium's own offline switch does not close an open
websocket. What the model leaves out: the link is loopback, so no latency or partial loss; the
"other writer" writes through the service in this process, as another person's console would.
"""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from playwright.sync_api import expect

from tests.conftest import SAAS

pytestmark = pytest.mark.browser

PASSWORD = "Example-admin-browser-31"


class CuttableLink:
    """A TCP proxy to 127.0.0.1:`port`; `cut()` drops every connection and refuses new ones until
    `restore()`."""

    def __init__(self, port: int):
        self.target = port
        self.online = True
        self.writers: set = set()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        threading.Thread(target=run, name="cuttable-link", daemon=True).start()
        ready.wait(10)

    async def _accept(self, reader, writer):
        if not self.online:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        self.writers.update((writer, up_writer))

        async def pipe(src, dst):
            try:
                while chunk := await src.read(65536):
                    dst.write(chunk)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()
                self.writers.discard(dst)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self):
        def drop():
            self.online = False
            for writer in list(self.writers):
                writer.transport.abort()
            self.writers.clear()

        self.loop.call_soon_threadsafe(drop)

    def restore(self):
        self.online = True

    def close(self):
        self.cut()
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)


def url_of(server, path: str, port: int | None = None) -> str:
    port = port or server.port
    return f"http://alpha.{server.base_domain}:{port}{path}" if SAAS else f"http://127.0.0.1:{port}{path}"


@pytest.fixture
def workspace(tessera_server, tenants_provisioned, db_commit):
    """A committed Admin of alpha and a collection of two jobs of its own (a fresh slug per test)."""
    email = f"example-{uuid.uuid4().hex[:10]}@example.com"
    suffix = uuid.uuid4().hex[:6]
    slug, roof, door = f"jobs-{suffix}", f"roof-{suffix}", f"door-{suffix}"  # record ids are unique per workspace
    tenant = tenants_provisioned["alpha"]

    def create():
        from django.contrib.auth.hashers import Argon2PasswordHasher

        from accounts.services import user_create
        from rbac.roles import Role
        from records.services import collection_create, record_create
        from tenants.runtime import workspace_context

        with workspace_context(tenant):
            user = user_create(email=email, password=None, full_name="Ed Example", role=Role.ADMIN)
            hasher = Argon2PasswordHasher()
            user.password = hasher.encode(PASSWORD, hasher.salt())
            user.save(update_fields=["password"])
            jobs = collection_create(
                actor=user,
                name="Jobs",
                slug=slug,
                fields=[{"key": "title", "type": "text"}, {"key": "qty", "type": "integer"}],
            )
            for record_id, title in ((roof, "Fix the roof"), (door, "Paint the door")):
                record_create(actor=user, collection=jobs, data={"title": title, "qty": 1}, record_id=record_id)

    db_commit(create)
    return {"email": email, "slug": slug, "tenant": tenant, "roof": roof, "door": door}


def _record(db_commit, workspace, record_id: str) -> dict:
    def read():
        from records.models import Record
        from tenants.runtime import workspace_context

        with workspace_context(workspace["tenant"]):
            record = Record.objects.get(id=record_id)
            return {**record.data, "version": record.version}

    return db_commit(read)


def _someone_else_edits(db_commit, workspace, record_id: str, data: dict) -> None:
    def write():
        from accounts.models import User
        from records.models import Record
        from records.services import record_update
        from tenants.runtime import workspace_context

        with workspace_context(workspace["tenant"]):
            user = User.objects.get(email=workspace["email"])
            record_update(actor=user, record=Record.objects.get(id=record_id), data=data, partial=True)

    db_commit(write)


def test_the_example_app_pairs_edits_offline_and_converges_when_back(
    tessera_server, browser_context, workspace, db_commit
):
    link = CuttableLink(tessera_server.port)
    try:
        console = browser_context().new_page()
        console.goto(url_of(tessera_server, "/devices/"))
        console.get_by_label("E-mail").fill(workspace["email"])
        console.get_by_label("Password").fill(PASSWORD)
        console.get_by_role("button", name="Log in").click()
        console.wait_for_url(url_of(tessera_server, "/devices/"))
        example_path = console.get_by_test_id("example-app").get_attribute("href")
        console.get_by_role("button", name="Start pairing").click()
        pin = console.get_by_test_id("pairing-pin").get_attribute("aria-label").removeprefix("PIN ")

        # The phone: its own browser, reaching the server through the link.
        phone = browser_context().new_page()
        phone.goto(url_of(tessera_server, example_path, port=link.port))
        phone.get_by_label("PIN").fill(pin)
        phone.get_by_label("This device's name").fill("Roof crew phone")
        phone.get_by_role("button", name="Pair").click()
        expect(phone.get_by_role("status")).to_contain_text("Online")
        phone.get_by_label("Collection").select_option(workspace["slug"])  # the page reloads on it
        expect(phone.get_by_role("status")).to_contain_text(f"Online: syncing “{workspace['slug']}”")
        roof = phone.locator(f'tr[data-id="{workspace["roof"]}"]')
        door = phone.locator(f'tr[data-id="{workspace["door"]}"]')
        expect(roof.locator('input[data-key="title"]')).to_have_value("Fix the roof")

        link.cut()
        expect(phone.get_by_role("status")).to_contain_text("Offline")
        roof.locator('input[data-key="title"]').fill("Fix the roof before rain")
        roof.locator('input[data-key="title"]').press("Tab")  # change: saved on the phone
        _someone_else_edits(db_commit, workspace, workspace["door"], {"qty": 3})
        _someone_else_edits(db_commit, workspace, workspace["roof"], {"qty": 2})
        assert _record(db_commit, workspace, workspace["roof"])["title"] == "Fix the roof"  # still only on the phone

        link.restore()
        expect(phone.get_by_role("status")).to_contain_text("Online", timeout=30_000)
        # The server's copy reaches the phone: the other writer's changes, merged with the phone's edit.
        expect(door.locator('input[data-key="qty"]')).to_have_value("3")
        expect(roof.locator('input[data-key="qty"]')).to_have_value("2")
        expect(roof.locator('input[data-key="title"]')).to_have_value("Fix the roof before rain")
        server = _record(db_commit, workspace, workspace["roof"])
        assert server["title"] == "Fix the roof before rain" and server["qty"] == 2
        expect(roof.locator("td").last).to_have_text(str(server["version"]))
    finally:
        link.close()


@pytest.mark.saas_only
def test_a_pin_of_one_workspace_does_not_pair_the_example_on_another(tessera_server, browser_context, workspace):
    console = browser_context().new_page()
    console.goto(url_of(tessera_server, "/devices/"))
    console.get_by_label("E-mail").fill(workspace["email"])
    console.get_by_label("Password").fill(PASSWORD)
    console.get_by_role("button", name="Log in").click()
    console.get_by_role("button", name="Start pairing").click()
    pin = console.get_by_test_id("pairing-pin").get_attribute("aria-label").removeprefix("PIN ")

    phone = browser_context().new_page()
    phone.goto(tessera_server.tenant_url("beta", "/devices/example/"))
    phone.get_by_label("PIN").fill(pin)
    phone.get_by_role("button", name="Pair").click()
    expect(phone.get_by_role("alert")).to_contain_text("Could not pair")
    expect(phone.locator("#app")).to_be_hidden()
