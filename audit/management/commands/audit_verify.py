"""Verify every tenant's audit hash chain; name the first broken event. Exit 1 if any is broken."""

from django.core.management.base import BaseCommand, CommandError

from audit.selectors import audit_chain_verify
from tenants.runtime import workspace_context, workspace_list


class Command(BaseCommand):
    help = "Verify the audit log hash chain of every workspace (or one, with --tenant SLUG)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Only this workspace (its slug).")

    def handle(self, *args, **options):
        tenants = workspace_list()
        if options["tenant"]:
            tenants = tenants.filter(slug=options["tenant"])
            if not tenants.exists():
                raise CommandError(f"No workspace with slug {options['tenant']!r}.")
        broken = 0
        for tenant in tenants:
            with workspace_context(tenant):
                result = audit_chain_verify()
            if result.ok:
                self.stdout.write(f"{tenant.slug}: OK, {result.checked} events verified")
            else:
                broken += 1
                self.stdout.write(
                    f"{tenant.slug}: BROKEN at event #{result.broken_seq}"
                    + (f" (id {result.broken_id})" if result.broken_id else "")
                    + f": {result.reason}; {result.checked} events before it verified"
                )
        if broken:
            raise CommandError(f"{broken} workspace(s) have a broken audit chain.", returncode=1)
