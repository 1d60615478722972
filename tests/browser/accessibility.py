"""axe-core in the browser tests: the pinned copy in tests/browser/axe (npm ci by test.sh), injected into
the page under test (never loaded from a CDN), run over the whole document."""

from __future__ import annotations

from pathlib import Path

import pytest

AXE = Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
IMPACTS = {"critical", "serious", "moderate"}


def axe_violations(page) -> list[str]:
    """The page's accessibility violations of moderate impact or worse, one line each (empty: none)."""
    if not AXE.exists():
        pytest.fail(f"axe-core is missing at {AXE}: run ./test.sh, or npm ci in tests/browser/axe")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated through DevTools, not added as a <script>: the console's CSP refuses inline scripts.
        page.evaluate(AXE.read_text() + "\n;undefined")
    results = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at {[n['target'] for n in v['nodes']][:3]}"
        for v in results["violations"]
        if v["impact"] in IMPACTS
    ]
