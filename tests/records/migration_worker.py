"""`python -m tests.records.migration_worker <workspace slug> <collection slug>`: what a Celery worker does
with records.tasks.collection_records_migrate_task, run as its own process with the production settings
(tests/live_server.run_module): the records the request did not carry, with their live sync frames sent
through the same channel layer as the server's."""

from __future__ import annotations

import sys

import django

django.setup()

from records.models import Collection  # noqa: E402
from records.services import collection_records_migrate  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tenants.runtime import workspace_context  # noqa: E402

if __name__ == "__main__":
    workspace_slug, collection_slug = sys.argv[1:3]
    with workspace_context(Tenant.objects.get(slug=workspace_slug)):
        collection = Collection.objects.get(slug=collection_slug, livemode=True)
        print("done" if collection_records_migrate(collection=collection) else "left")
