"""`manage.py billing_catalogue_sync`: the Stripe account's Products, Prices and Meter made to match the
plan catalogue (idempotent: run it after every change of billing.plans)."""

from django.core.management.base import BaseCommand

from billing.catalogue import catalogue_sync


class Command(BaseCommand):
    help = "Create or update the Stripe Products, Prices (lookup keys) and Meter of the plan catalogue."

    def handle(self, *args, **options):
        changes = catalogue_sync()
        for line in changes:
            self.stdout.write(line)
        self.stdout.write(f"{len(changes)} change(s); the Stripe catalogue matches billing.plans.")
