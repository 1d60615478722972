"""A workspace for the real-server sync tests (tests/sync/test_live.py), made, changed and removed in
a process of its own so its committed data never meets the rest of the suite's.

    python -m tests.sync.live_workspace setup               → {"host", "slug", "token", "api_key", …}
    python -m tests.sync.live_workspace revoke SLUG DEVICE  (on commit: the device's sockets close)
    python -m tests.sync.live_workspace teardown SLUG

SaaS: a throwaway tenant (its own schema) on the test database, dropped by `teardown`. Desktop: the
single tenant of the database named by TESSERA_SQLITE_PATH (the caller hands in a copy).
"""

from __future__ import annotations

import json
import os
import sys
import uuid

FIELDS = [{"key": "title", "type": "text"}, {"key": "notes", "type": "text"}, {"key": "qty", "type": "integer"}]


def _tenant(slug: str | None = None):
    from accounts.onboarding import workspace_signup
    from billing.plans import Plan
    from tenants.models import Tenant
    from tenants.runtime import is_multi_tenant
    from tenants.services import tenant_single_ensure

    if not is_multi_tenant():
        tenant = tenant_single_ensure()
        Tenant.objects.filter(pk=tenant.pk).update(plan=Plan.ENTERPRISE)
        return tenant
    if slug:
        return Tenant.objects.get(slug=slug)
    slug = "sync-" + uuid.uuid4().hex[:8]
    return workspace_signup(
        name="Sync live", slug=slug, admin_email=f"admin@{slug}.test", admin_password=None, plan=Plan.ENTERPRISE
    ).tenant


def setup() -> dict:
    from accounts.models import User
    from partners.models import SCOPES
    from partners.services import api_key_create
    from rbac.roles import Role
    from records.services import collection_create, record_create
    from sync.services import pairing_exchange, pairing_start
    from tenants.runtime import workspace_context

    tenant = _tenant()
    with workspace_context(tenant):
        admin = User.objects.filter(role=Role.ADMIN).order_by("pk").first()
        _, raw_key = api_key_create(actor=admin, name="sync live", mode="live", scopes=list(SCOPES))
        jobs = collection_create(actor=admin, name="Live jobs", slug="livejobs", fields=FIELDS)
        for i in range(3):
            record_create(actor=admin, collection=jobs, data={"title": f"Job {i}", "qty": i}, record_id=f"job{i}")
        devices = []
        for name in ("Live phone", "Phone to revoke"):
            started = pairing_start(actor=admin, role=Role.MANAGER)
            devices.append(pairing_exchange(tenant=tenant, code=started.code, name=name))
    (_, token), (to_revoke, revoke_token) = devices
    return {
        "host": tenant.host(),
        "slug": tenant.slug,
        "token": token,
        "api_key": raw_key,
        "revoke_token": revoke_token,
        "revoke_device_id": to_revoke.pk,
    }


def revoke(slug: str, device_id: str) -> None:
    from accounts.models import User
    from rbac.roles import Role
    from sync.models import Device
    from sync.services import device_revoke
    from tenants.runtime import workspace_context

    with workspace_context(_tenant(slug)):
        admin = User.objects.filter(role=Role.ADMIN).order_by("pk").first()
        device_revoke(actor=admin, device=Device.objects.get(pk=int(device_id)))


def teardown(slug: str) -> None:
    from tenants.runtime import is_multi_tenant
    from tenants.services import tenant_drop

    if is_multi_tenant():
        tenant_drop(tenant=_tenant(slug), hold_slug=False)


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    command, args = sys.argv[1], sys.argv[2:]
    if command == "setup":
        print(json.dumps(setup()))
    elif command == "revoke":
        revoke(*args)
    else:
        teardown(*args)
