"""Browser tests: Debian's chromium, driven by Playwright, against a real server in a subprocess.

The server is uvicorn running `config.asgi:application` with the production settings
(`config.settings`, not the test ones) on a free 127.0.0.1 port, pointed at the very test database
pytest-django created for this (xdist) worker. It is another process: data it must see is created
through the UI or committed with `db_commit` (never inside the `db` fixture's transaction).

Playwright's sync API keeps an asyncio loop "running" in this thread while it is started, and
Django refuses ORM calls while a loop runs (SynchronousOnlyOperation). So:
- Chromium is started lazily for a browser test and stopped as soon as the next test of this worker
  is not a browser test (browser tests are ordered last, so that is normally once per worker);
- ORM work inside a browser test goes through `db_commit`, which runs it in a fresh thread.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import MODE
from tests.live_server import database_env, is_test_database, start_server, test_databases_missing

CHROMIUM = os.environ.get("TESSERA_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = 15_000
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

expect.set_options(timeout=TIMEOUT_MS)  # assertions wait as long as actions and navigations


def is_browser_test(item: pytest.Item | None) -> bool:
    return item is not None and item.get_closest_marker("browser") is not None


def pytest_collection_modifyitems(config, items):
    """Browser tests last (stable sort). What they commit outlives them (audit events can never be
    deleted), so no other test of this worker may run after them and find a workspace that is not
    clean; xdist hands each worker its tests in collection order. It also keeps them back to back:
    one server and one Chromium per worker."""
    items.sort(key=lambda item: 1 if is_browser_test(item) else 0)


# --- the real server (tests/live_server.py; the API fuzzing run starts one too) --------------------


@pytest.fixture(scope="session")
def browser_test_database(django_db_setup, django_db_blocker):
    """The test database, even when only browser tests were collected.

    pytest-django creates only the databases some collected test asks for through `db`,
    `transactional_db` or a `django_db` mark; browser tests use none of them (their data must be
    committed for the server to see it). Then create it here, exactly as pytest-django would, and
    drop it at the end. Never connects to a non-test database."""
    from django.test.utils import setup_databases, teardown_databases

    missing = test_databases_missing()
    if not missing:
        yield
        return
    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, aliases=missing)
    yield
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=0)


@pytest.fixture(scope="session")
def tessera_server(browser_test_database, django_db_blocker, tenants_provisioned):
    """A real uvicorn + production-settings server on the test database, for the whole session.

    Depends on `tenants_provisioned`: SaaS has the template schema and tenants alpha/beta, the
    desktop has its single tenant and first Admin (so no first-run redirect)."""
    from django.conf import settings
    from django.db import connection

    if not is_test_database(connection.settings_dict):
        raise RuntimeError(f"Refusing to serve a non-test database: {connection.settings_dict['NAME']}")

    server = start_server(database_env(connection), getattr(settings, "TESSERA_BASE_DOMAIN", ""))
    yield server
    server.stop()
    if server.workdir is not None:
        shutil.rmtree(server.workdir, ignore_errors=True)


# --- Chromium ------------------------------------------------------------------------------------


@dataclass
class Chromium:
    """One Playwright + Chromium per worker, alive only while browser tests run back to back."""

    playwright: Any = None
    browser: Any = None
    contexts: list = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return self.browser is not None

    def start(self):
        if self.browser is None:
            if not os.access(CHROMIUM, os.X_OK):
                pytest.fail(f"Chromium not found at {CHROMIUM} (set TESSERA_CHROMIUM); no browser is downloaded.")
            from playwright.sync_api import sync_playwright

            self.playwright = sync_playwright().start()
            try:
                self.browser = self.playwright.chromium.launch(
                    executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True, timeout=30_000
                )
            except Exception:
                self.playwright.stop()
                self.playwright = None
                raise
        return self.browser

    def new_context(self, **kwargs):
        kwargs.setdefault("viewport", {"width": 1280, "height": 800})
        kwargs.setdefault("locale", "en-US")
        context = self.start().new_context(**kwargs)
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        return context

    def close_context(self, context) -> None:
        if context in self.contexts:
            self.contexts.remove(context)
            if self.alive:
                try:
                    context.close()
                except Exception:
                    pass

    def pages(self) -> list:
        return [page for context in self.contexts for page in context.pages]

    def stop(self) -> None:
        self.contexts.clear()
        browser, playwright = self.browser, self.playwright
        self.browser = self.playwright = None
        try:
            if browser is not None:
                browser.close()
        finally:
            if playwright is not None:
                playwright.stop()


_chromium = Chromium()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    # Before fixtures are torn down: the next test (or the session's own teardown) may use the ORM.
    if _chromium.alive and not is_browser_test(nextitem):
        _chromium.stop()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    if _chromium.alive:
        _chromium.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and is_browser_test(item) and call.when in ("setup", "call"):
        shots = Path(tempfile.gettempdir()) / "tessera-browser-failures"
        lines = []
        for n, page in enumerate(_chromium.pages() if _chromium.alive else []):
            try:
                shots.mkdir(exist_ok=True)
                path = shots / f"{item.name}-{n}.png"
                page.screenshot(path=str(path), full_page=True)
                lines.append(f"page {n}: {page.url}  (screenshot: {path})")
            except Exception as exc:
                lines.append(f"page {n}: {getattr(page, 'url', '?')}  (no screenshot: {exc})")
        if lines:
            report.sections.append(("browser pages", "\n".join(lines)))
        server = item.funcargs.get("tessera_server") if hasattr(item, "funcargs") else None
        if server is not None:
            report.sections.append(("server log (tail)", server.log_tail()))
    return report


@pytest.fixture
def browser_context(tessera_server):
    """A factory of fresh browser contexts (separate cookies each), closed after the test."""
    made = []

    def make(**kwargs):
        context = _chromium.new_context(**kwargs)
        made.append(context)
        return context

    yield make
    for context in made:
        _chromium.close_context(context)


@pytest.fixture
def page(browser_context):
    return browser_context().new_page()


@pytest.fixture
def snap(request) -> Callable[..., None]:
    """`snap(page, "name")` saves a full-page screenshot when TESSERA_BROWSER_SCREENSHOTS names a
    folder (to look at the console by eye); otherwise does nothing."""
    folder = os.environ.get("TESSERA_BROWSER_SCREENSHOTS")

    def take(page, name: str) -> None:
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(folder) / f"{MODE}-{request.node.name}-{name}.png"), full_page=True)

    return take


# --- committed data ------------------------------------------------------------------------------


@pytest.fixture
def db_commit(django_db_blocker) -> Callable[..., Any]:
    """Run `fn(*args, **kwargs)` against the test database and commit it (autocommit), in a fresh
    thread with its own connection: visible to the server, safe while Playwright runs."""

    def run(fn: Callable[..., Any], *args, **kwargs) -> Any:
        outcome: dict[str, Any] = {}

        def target():
            from django.db import connections

            try:
                outcome["value"] = fn(*args, **kwargs)
            except BaseException as exc:
                outcome["error"] = exc
            finally:
                connections.close_all()

        with django_db_blocker.unblock():
            thread = threading.Thread(target=target, name="db-commit")
            thread.start()
            thread.join(timeout=60)
        if thread.is_alive():
            raise TimeoutError("db_commit: the database call did not finish within 60 s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("value")

    return run
