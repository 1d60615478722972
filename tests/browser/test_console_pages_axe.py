"""axe-core over every page the console's navigation offers an Admin, and the pages one level down that
the issue's browser tests do not open (a collection's settings and import, a record and its history,
the desktop's outbox): 0 violations of moderate impact or worse. Each page is checked once, phone
(390 px) dark and desktop (1440 px) light in turn, so both schemes and widths meet every kind of page
without doubling the run."""

from __future__ import annotations

import pytest

from tests.browser.accessibility import axe_violations
from tests.browser.test_records_grid import SIZES, log_in, sticking_out, url_of
from tests.browser.test_records_grid import grid_admin as people_admin  # noqa: F401 (a fixture: an Admin, 5 people)
from tests.conftest import SAAS

pytestmark = pytest.mark.browser

COMBOS = [("phone", "dark"), ("desktop", "light")]


def test_every_console_page_has_no_axe_violations(
    tessera_server,
    browser_context,
    people_admin,  # noqa: F811 (the fixture imported above)
):
    server, who = tessera_server, people_admin
    page = browser_context(viewport=SIZES["desktop"], color_scheme="light").new_page()
    log_in(page, server, who, "/")
    nav = page.locator("nav.sidebar a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    slug, ada = who["slug"], who["ids"]["Ada"]
    deeper = [
        f"/records/{slug}/settings/",
        f"/records/{slug}/import/",
        f"/records/{slug}/r/{ada}/",
        f"/records/{slug}/r/{ada}/history/",
        "/accounts/password-reset/",
    ]
    if not SAAS:
        deeper.append("/settings/desktop/outbox/")
    paths = ["/", *nav, *deeper]
    assert len(nav) >= 10, nav  # an Admin sees every section

    found = {}
    for i, path in enumerate(dict.fromkeys(paths)):
        size, scheme = COMBOS[i % 2]
        page.set_viewport_size(SIZES[size])
        page.emulate_media(color_scheme=scheme)
        response = page.goto(url_of(server, path))
        assert response is not None and response.status < 400, (path, response and response.status)
        violations = axe_violations(page)
        out = sticking_out(page) if size == "phone" else []
        if violations or out:
            found[f"{path} ({size}, {scheme})"] = violations + [f"sticks out: {e}" for e in out]
    assert found == {}
