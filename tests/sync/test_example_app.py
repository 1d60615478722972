"""The SDK's example app as the server serves it (/devices/example/, built by ./test.sh from
clients/js/example): open to anyone who reaches the workspace, only its own files, and a clear 404
where it was not built. Its behaviour in a browser is tests/browser/test_sync_example.py."""

from __future__ import annotations

import pytest


def test_the_example_app_is_served_without_a_log_in(tenant, client_for):
    client = client_for(tenant)
    page = client.get("/devices/example/")
    assert page.status_code == 200, page.status_code
    assert page["Content-Type"].startswith("text/html")
    html = b"".join(page.streaming_content).decode()
    assert '<script type="module" src="app.js">' in html
    script = client.get("/devices/example/app.js")
    assert script.status_code == 200 and script["Content-Type"].startswith("text/javascript")
    assert b"masterChangesSince" in b"".join(script.streaming_content)  # the SDK is bundled in


@pytest.mark.parametrize("path", ["/devices/example/index.js", "/devices/example/..%2F..%2Fpackage.json"])
def test_nothing_else_is_served_from_there(tenant, client_for, path):
    assert client_for(tenant).get(path).status_code == 404


def test_an_installation_without_the_built_app_answers_404(tenant, client_for, settings, tmp_path):
    settings.BASE_DIR = tmp_path
    response = client_for(tenant).get("/devices/example/")
    assert response.status_code == 404
    assert b"npm run build" in response.content
