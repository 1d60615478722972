"""A workspace for the API fuzzing run (tests/partners/test_schemathesis.py), made and removed in a
process of its own so its committed data never meets the test suite's.

    python -m tests.partners.fuzz_workspace setup      → prints {"host", "raw_key", "slug"} as JSON
    python -m tests.partners.fuzz_workspace teardown SLUG

SaaS: a throwaway tenant (its own schema) on the test database, dropped by `teardown`. Desktop: the
single tenant of the database named by TESSERA_SQLITE_PATH (the caller hands in a copy).
"""

from __future__ import annotations

import json
import os
import sys
import uuid

FIELDS_COMPANIES = [{"key": "name", "type": "text", "required": True, "unique": True}]
FIELDS_CUSTOMERS = [
    {"key": "name", "type": "text", "required": True},
    {"key": "bio", "type": "long_text"},
    {"key": "email", "type": "email", "unique": True},
    {"key": "score", "type": "integer"},
    {"key": "balance", "type": "number"},
    {"key": "active", "type": "boolean", "default": True},
    {"key": "born", "type": "date"},
    {"key": "seen_at", "type": "datetime"},
    {"key": "tier", "type": "choice", "choices": ["free", "pro"], "default": "free"},
    {"key": "site", "type": "url"},
    {"key": "company", "type": "reference", "collection": "companies"},
    {"key": "extra", "type": "json"},
]


def setup() -> dict:
    from accounts.models import User
    from accounts.onboarding import workspace_signup
    from billing.plans import Plan
    from partners.models import SCOPES
    from partners.services import api_key_create
    from rbac.roles import Role
    from records.services import collection_create, record_create
    from tenants.models import Tenant
    from tenants.runtime import is_multi_tenant, workspace_context
    from tenants.services import tenant_single_ensure

    if is_multi_tenant():
        slug = "fuzz-" + uuid.uuid4().hex[:8]
        tenant = workspace_signup(
            name="Fuzz", slug=slug, admin_email=f"admin@{slug}.test", admin_password=None, plan=Plan.ENTERPRISE
        ).tenant
    else:
        tenant = tenant_single_ensure()
        Tenant.objects.filter(pk=tenant.pk).update(plan=Plan.ENTERPRISE)  # rate limits out of the way
    with workspace_context(tenant):
        admin = User.objects.filter(role=Role.ADMIN).order_by("pk").first()
        _, raw = api_key_create(actor=admin, name="schemathesis", mode="live", scopes=list(SCOPES))
        companies = collection_create(actor=admin, name="Companies", slug="companies", fields=FIELDS_COMPANIES)
        acme = record_create(actor=admin, collection=companies, data={"name": "Acme"}, record_id="acme")
        customers = collection_create(actor=admin, name="Customers", slug="customers", fields=FIELDS_CUSTOMERS)
        for record_id in ("ada", "01JD3X8Q6N2ZK4F7T9W1B5C8HY"):  # the second is the schema's example id
            record_create(
                actor=admin, collection=customers, data={"name": "Ada", "company": acme.id}, record_id=record_id
            )
    return {"host": tenant.host(), "raw_key": raw, "slug": tenant.slug}


def teardown(slug: str) -> None:
    from tenants.models import Tenant
    from tenants.runtime import is_multi_tenant
    from tenants.services import tenant_drop

    if is_multi_tenant():
        tenant_drop(tenant=Tenant.objects.get(slug=slug), hold_slug=False)


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    if sys.argv[1] == "setup":
        print(json.dumps(setup()))
    else:
        teardown(sys.argv[2])
