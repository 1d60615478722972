"""directory_register: record every workspace of this cell (and its Stripe customer) in the directory
(once, when a deployment that predates the directory joins it, or a cell is added with workspaces of
its own)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from billing.models import BillingAccount
from directory.services import workspace_location_customer_set, workspace_location_register
from tenants.runtime import public_context, workspace_list


class Command(BaseCommand):
    help = "Record this cell's workspaces in the cells' directory (existing entries are left as they are)."

    def handle(self, *args, **options):
        added = clashes = 0
        with public_context():
            slugs = list(workspace_list().values_list("slug", flat=True))
        for slug in slugs:
            location = workspace_location_register(
                slug=slug, cell=settings.TESSERA_CELL, region=settings.TESSERA_REGION
            )
            if location.cell != settings.TESSERA_CELL:
                clashes += 1
                self.stderr.write(f"{slug}: the directory has it in cell {location.cell}: rename one of them")
            else:
                added += 1
        # Stripe customers, so the events of this cell's customers reaching another cell come here
        with public_context():
            customers = list(
                BillingAccount.objects.exclude(stripe_customer_id="").values_list(
                    "workspace__slug", "stripe_customer_id"
                )
            )
        for slug, customer in customers:
            workspace_location_customer_set(slug=slug, stripe_customer_id=customer)
        self.stdout.write(f"{added} workspaces of cell {settings.TESSERA_CELL} in the directory; {clashes} clashes")
