"""Build (or rebuild) the analytics rollups of existing collections: the backfill for data written before
rollups existed, or restored from a backup. Each workspace in turn, each collection at a time."""

from django.core.management.base import BaseCommand

from analytics.rollups import rollup_build
from records.models import Collection
from tenants.runtime import workspace_context, workspace_list


class Command(BaseCommand):
    help = "Build the analytics rollups of every collection (or of --collection) in every workspace (or --workspace)."

    def add_arguments(self, parser):
        parser.add_argument("--workspace", help="Only this workspace (its schema name; the desktop has one)")
        parser.add_argument("--collection", help="Only the collections with this slug")
        parser.add_argument(
            "--min-records", type=int, default=0, help="Skip collections with fewer live records than this"
        )

    def handle(self, *args, **opts):
        built = 0
        for tenant in workspace_list():
            if opts["workspace"] and tenant.schema_name != opts["workspace"]:
                continue
            with workspace_context(tenant):
                collections = Collection.objects.filter(deleted_at=None).order_by("pk")
                if opts["collection"]:
                    collections = collections.filter(slug=opts["collection"])
                for collection in collections:
                    live = collection.records.filter(deleted_at=None).count()
                    if live < opts["min_records"]:
                        continue
                    rollup = rollup_build(collection=collection, time_zone=tenant.timezone)
                    built += 1
                    self.stdout.write(
                        f"{tenant.schema_name}/{collection.slug} ({'live' if collection.livemode else 'sandbox'}): "
                        f"{rollup.status}, {rollup.records:,} records in {rollup.cells.count():,} cells "
                        f"({rollup.build_seconds or 0:.1f} s)"
                    )
        self.stdout.write(f"{built} rollup(s) built.")
