"""The apps are layered as ../shared/DESIGN.md draws them: every import points down, there is no loop.

The contract lives in pyproject.toml ([tool.importlinter]); import-linter checks it over the whole
import graph, imports placed inside functions included (grimp reads every import statement)."""

from __future__ import annotations

import copy
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest
from importlinter.contracts.layers import LayersContract

REPO = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]


@pytest.fixture(scope="module")
def graph():
    sys.path.insert(0, str(REPO))
    try:
        return grimp.build_graph(*CONFIG["root_packages"], cache_dir=None)
    finally:
        sys.path.remove(str(REPO))


def _layers_contract() -> LayersContract:
    options = next(c for c in CONFIG["contracts"] if c["id"] == "layers")
    contract_options = {k: v for k, v in options.items() if k not in {"id", "name", "type"}}
    return LayersContract(
        name=options["name"],
        session_options={"root_packages": CONFIG["root_packages"]},
        contract_options=contract_options,
    )


def test_lint_imports_keeps_every_contract():
    """What a developer runs: `lint-imports` (the venv's), over the repository as it is."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_imports_inside_functions_count(graph):
    """The launcher loads the ASGI app inside a function (it sets the environment first): still an edge."""
    assert graph.direct_import_exists(importer="desktop.launcher", imported="config.asgi")


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("tenants.services", "accounts.services"),  # sign-up creating its Admin from tenants/ again
        ("records.services", "webhooks.outbox"),  # the spine calling a subscriber by name
        ("core.events", "audit.services"),  # the toolkit knowing an app
        ("webhooks.tasks", "config.celery_app"),  # an app importing config
        ("sync.services", "partners.ratelimit"),  # two apps of layer 3 leaning on each other
        ("api.base", "partners.models"),  # the REST toolkit knowing partners' keys
    ],
)
def test_the_contract_breaks_when_an_arrow_points_up_or_a_loop_comes_back(graph, importer, imported):
    contract = _layers_contract()
    assert contract.check(graph, verbose=False).kept
    broken = copy.deepcopy(graph)
    broken.add_import(importer=importer, imported=imported, line_number=1, line_contents="import (test)")
    assert not contract.check(broken, verbose=False).kept
