"""`manage.py billing_usage_reconcile [--days N]`: the usage ledger against Stripe's meter event
summaries, per customer; exits 1 when they differ."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.metering import usage_reconcile


class Command(BaseCommand):
    help = "Compare the local usage ledger with Stripe's Billing Meter summaries."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=35, help="How far back (Stripe keeps 35 days of events).")

    def handle(self, *args, days: int, **options):
        end = timezone.now() + timedelta(minutes=5)
        rows = usage_reconcile(start=end - timedelta(days=days), end=end)
        differing = [r for r in rows if not r.matches]
        for r in rows:
            mark = "ok" if r.matches else "DIFFERS"
            self.stdout.write(f"{r.customer}: ledger {r.ledger} stripe {r.stripe} unreported {r.unreported} {mark}")
        if differing:
            raise CommandError(f"{len(differing)} customer(s) differ between the ledger and Stripe.")
        self.stdout.write(f"{len(rows)} customer(s); the ledger and Stripe agree.")
