"""Run feed_race on a fresh desktop (SQLite) database; print the result as JSON on the last line."""

import json

import django

django.setup()

from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0)

from accounts.services import user_create  # noqa: E402
from rbac.roles import Role  # noqa: E402
from records.services import collection_create  # noqa: E402
from tenants.services import tenant_single_ensure  # noqa: E402
from tests.records.feed_race import race  # noqa: E402

tenant = tenant_single_ensure(name="Race")
admin = user_create(email="admin@race.test", password="correct-horse-battery-9", role=Role.ADMIN)
collection = collection_create(
    actor=admin, name="Race", slug="race", fields=[{"key": "n", "type": "integer"}, {"key": "w", "type": "integer"}]
)
result = race(tenant=tenant, actor=admin, collection=collection)
print(
    json.dumps(
        {"seen": result["seen"], "committed": result["committed"], "errors": [repr(e) for e in result["errors"]]}
    )
)
