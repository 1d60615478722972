"""A cursor reader of the change feed sees every change exactly once while several writers race."""

import json
import os
import subprocess
import sys
import uuid

import pytest


def _assert_exactly_once(result):
    assert not result["errors"], result["errors"]
    seen, committed = result["seen"], result["committed"]
    assert len(committed) == 4 * 40
    assert seen == sorted(seen), "the reader saw sequence numbers out of order"
    assert len(seen) == len(set(seen)), "the reader saw a change twice"
    assert seen == committed, f"the reader missed {sorted(set(committed) - set(seen))[:10]}"


@pytest.mark.saas_only
@pytest.mark.django_db
def test_reader_sees_every_change_once_with_concurrent_writers_postgres(tenants_provisioned):
    # Everything runs in a helper thread with its own autocommit connection, in a throwaway tenant,
    # so the writers' commits are real and the test's own transaction stays out of the way.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(_race_in_fresh_tenant).result(timeout=300)
    _assert_exactly_once(result)


def _race_in_fresh_tenant():
    from django.db import connection

    from accounts.models import User
    from accounts.onboarding import workspace_signup
    from records.services import collection_create
    from tenants.runtime import workspace_context
    from tenants.services import tenant_drop
    from tests.conftest import ADMIN_PASSWORD
    from tests.records.feed_race import race

    slug = "race-" + uuid.uuid4().hex[:8]
    tenant = workspace_signup(
        name="Race", slug=slug, admin_email="admin@race.test", admin_password=ADMIN_PASSWORD
    ).tenant
    try:
        with workspace_context(tenant):
            admin = User.objects.get(email="admin@race.test")
            fields = [{"key": "n", "type": "integer"}, {"key": "w", "type": "integer"}]
            collection = collection_create(actor=admin, name="Race", slug="race", fields=fields)
        return race(tenant=tenant, actor=admin, collection=collection)
    finally:
        tenant_drop(tenant=tenant, hold_slug=False)
        connection.close()


@pytest.mark.desktop_only
def test_reader_sees_every_change_once_with_concurrent_writers_sqlite(tmp_path):
    # A fresh SQLite database in a subprocess: the race commits for real and leaves nothing behind.
    env = {
        **os.environ,
        "TESSERA_MODE": "desktop",
        "TESSERA_DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    out = subprocess.run(
        [sys.executable, "-m", "tests.records.feed_race_sqlite"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    _assert_exactly_once(result)
