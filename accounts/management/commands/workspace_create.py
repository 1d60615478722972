"""Create a business workspace (SaaS): schema cloned from the template, first Admin, audit trail."""

import getpass

from django.core.management.base import BaseCommand, CommandError

from accounts.onboarding import workspace_signup
from core.errors import ServiceError


class Command(BaseCommand):
    help = "Create a workspace with its first Admin."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="Subdomain, e.g. acme")
        parser.add_argument("--name", required=True, help="Business name")
        parser.add_argument("--admin-email", required=True)
        parser.add_argument("--admin-name", default="")
        parser.add_argument("--admin-password", help="Prompted for when omitted (and a TTY is attached)")
        parser.add_argument("--plan", default="free")

    def handle(self, *args, **opts):
        password = opts["admin_password"]
        if password is None and opts.get("interactive", True):
            try:
                password = getpass.getpass("Admin password: ")
            except (EOFError, OSError):
                password = None
        try:
            result = workspace_signup(
                name=opts["name"],
                slug=opts["slug"],
                admin_email=opts["admin_email"],
                admin_password=password or None,
                admin_name=opts["admin_name"],
                plan=opts["plan"],
            )
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Created {result.tenant.name} at {result.tenant.host()} ({result.tenant.schema_name}) "
                f"in {result.seconds * 1000:.0f} ms; Admin {result.admin.email}"
            )
        )
