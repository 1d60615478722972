"""The API reference renders in a real browser under the pages' Content-Security-Policy, from the
server's own files only (drf-spectacular-sidecar): Swagger UI under the console's strict policy,
Redoc under its own (inline styles allowed, scripts still only from the origin)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import SAAS

pytestmark = pytest.mark.browser


def docs_url(server, path: str) -> str:
    return server.tenant_url("alpha", path) if SAAS else server.url(path)


def watch(page) -> tuple[list[str], list[str]]:
    """Console errors (CSP violations are reported there) and every URL the page fetched."""
    errors, fetched = [], []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("request", lambda request: fetched.append(request.url))
    return errors, fetched


def test_swagger_ui_renders_under_the_strict_policy(tessera_server, page):
    errors, fetched = watch(page)
    page.goto(docs_url(tessera_server, "/api/v1/docs/"))
    expect(page.get_by_text("Tessera API", exact=False).first).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/collections/{slug}/records/bulk")).to_be_visible()
    page.locator(".opblock-summary", has_text="Create a record").first.click()
    expect(page.get_by_text("Idempotency-Key").first).to_be_visible()
    assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors
    origin = docs_url(tessera_server, "/").rstrip("/")
    assert all(url.startswith((origin, "data:")) for url in fetched), fetched


def test_redoc_renders_under_its_own_policy(tessera_server, page):
    errors, fetched = watch(page)
    page.goto(docs_url(tessera_server, "/api/v1/redoc/"))
    # Redoc parses the whole schema in the page before it draws anything: seconds on a loaded machine
    expect(page.get_by_role("heading", name="Create a record").first).to_be_visible(timeout=45_000)
    # Redoc's sidebar shows its maker's logo from cdn.redoc.ly; the policy blocks it (the page works
    # offline: the image hides itself on error). That is the one thing it may refuse.
    logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    refused = [e for e in errors if "Content Security Policy" in e or "Refused" in e]
    assert all(logo in e for e in refused), refused
    origin = docs_url(tessera_server, "/").rstrip("/")
    assert all(url.startswith((origin, "data:", "blob:")) or url == logo for url in fetched), fetched
