"""schemathesis against the running API (uvicorn, production settings) with a live key: every check,
no server error, no response that breaks the schema.

A bounded run for CI (a few examples per operation, fixed seed, about a minute). The full run
(100 examples per operation, a random seed, every phase on every operation):

    TESSERA_FUZZ=full TESSERA_FUZZ_OUTPUT=/tmp/fuzz.txt ./test.sh tests/partners/test_schemathesis.py

(TESSERA_FUZZ_EXAMPLES, TESSERA_FUZZ_SEED, TESSERA_FUZZ_TIMEOUT and TESSERA_FUZZ_ARGS adjust it further.)

The positive-data check is told that 412 and 422 are also right answers to a well-formed request:
412 when a (random) If-Match names another version, 422 when well-formed record data or field
definitions do not fit the collection — which the workspace defines at run time, so no static schema
can say it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest

from tests import live_server
from tests.conftest import SAAS

FULL = os.environ.get("TESSERA_FUZZ") == "full"
EXAMPLES = int(os.environ.get("TESSERA_FUZZ_EXAMPLES", "100" if FULL else "8"))
SEED = os.environ.get("TESSERA_FUZZ_SEED", "random" if FULL else "20261122")
TIMEOUT = int(os.environ.get("TESSERA_FUZZ_TIMEOUT", "7200" if FULL else "900"))
CONFIG = """
hooks = "tests.partners.schemathesis_hooks"

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "412", "422", "429"]

# Unknown query parameters are refused (400, tests/records/test_api.py); unknown *headers* must be
# ignored (RFC 9110 §5.1), which schemathesis's negative mode sometimes counts as accepting bad data.
[generation]
allow-extra-parameters = false
"""
# The coverage phase enumerates every boundary of a schema; for the nested field definitions of a
# collection that takes most of a minute to generate. CI leaves it to the full run.
CI_ONLY = """
[[operations]]
include-operation-id = ["collections_create", "collections_update"]
phases.coverage.enabled = false
"""


def _committed_env(connection, workdir: Path) -> dict[str, str]:
    return live_server.committed_database_env(connection, workdir, "fuzz")


def _manage(env: dict, *args: str) -> str:
    return live_server.run_module("tests.partners.fuzz_workspace", env, *args)


@pytest.fixture
def fuzz_server(django_db_blocker, tenants_provisioned, tmp_path):
    from django.conf import settings
    from django.db import connection

    assert live_server.is_test_database(connection.settings_dict)
    base_domain = getattr(settings, "TESSERA_BASE_DOMAIN", "")
    with django_db_blocker.unblock():
        env_db = _committed_env(connection, tmp_path)
    env = {**env_db, **({"TESSERA_BASE_DOMAIN": base_domain} if SAAS else {"TESSERA_DATA_DIR": str(tmp_path)})}
    workspace = json.loads(_manage(env, "setup").strip().splitlines()[-1])
    server = live_server.start_server(env_db, base_domain)
    try:
        yield server, workspace
    finally:
        server.stop()
        if server.workdir is not None:
            shutil.rmtree(server.workdir, ignore_errors=True)
        if SAAS:
            _manage(env, "teardown", workspace["slug"])


@pytest.mark.django_db  # the test database must exist; the run itself works on committed data of its own
def test_schemathesis_finds_no_server_error_and_no_schema_violation(fuzz_server, tmp_path):
    server, workspace = fuzz_server
    host = f"{workspace['host']}:{server.port}" if SAAS else f"127.0.0.1:{server.port}"
    request = urllib.request.Request(server.url("/api/v1/schema"), headers={"Host": host})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as response:
        schema = json.loads(response.read())
    schema_path, config_path = tmp_path / "openapi.json", tmp_path / "schemathesis.toml"
    schema_path.write_text(json.dumps(schema))
    config_path.write_text(CONFIG if FULL else CONFIG + CI_ONLY)
    report = tmp_path / "report"
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config_path),
        "--no-color",
        "run",
        str(schema_path),
        "--url",
        server.origin,
        "--header",
        f"Authorization: Bearer {workspace['raw_key']}",
        "--header",
        f"Host: {host}",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES),
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--report",
        "junit",
        "--report-dir",
        str(report),
        "--output-truncate",
        "false",
    ]
    if SEED != "random":
        command += ["--seed", SEED]
    command += shlex.split(os.environ.get("TESSERA_FUZZ_ARGS", ""))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HTTP_PROXY", "HTTPS_PROXY", "http_proxy"))}
    out = subprocess.run(
        command,
        env={**env, "NO_PROXY": "*", "PYTHONPATH": str(live_server.REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        cwd=tempfile.gettempdir(),
    )
    (tmp_path / "schemathesis.out").write_text(out.stdout + out.stderr)
    if os.environ.get("TESSERA_FUZZ_OUTPUT"):
        shutil.copy(tmp_path / "schemathesis.out", os.environ["TESSERA_FUZZ_OUTPUT"])
    summary = out.stdout[-20000:]
    print(summary)  # the figures, also when it passes (pytest -s)
    assert out.returncode == 0, f"{summary}\n{out.stderr[-3000:]}\n--- server log ---\n{server.log_tail(80)}"
