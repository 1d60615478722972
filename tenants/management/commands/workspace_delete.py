"""Remove a workspace for good: its schema and every record in it. Its open sockets close at once and
its address is held back from sign-ups for TESSERA_SLUG_HOLD_DAYS."""

from django.core.management.base import BaseCommand, CommandError

from tenants.models import Tenant
from tenants.runtime import is_multi_tenant, public_context
from tenants.services import tenant_drop


class Command(BaseCommand):
    help = "Remove a workspace and all of its data (SaaS). Asks for the slug again unless --yes."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--yes", action="store_true", help="do not ask to type the slug again")

    def handle(self, *args, slug: str, yes: bool, **opts):
        if not is_multi_tenant():
            raise CommandError("This installation holds a single business; back it up and remove its data folder.")
        with public_context():
            tenant = Tenant.objects.filter(slug=slug, is_template=False).first()
        if tenant is None:
            raise CommandError(f"There is no workspace {slug!r} (manage.py workspace_list shows them).")
        if not yes and input(f"Type {slug} to remove {tenant.name} and all of its data: ").strip() != slug:
            raise CommandError("Not removed.")
        tenant_drop(tenant=tenant)
        self.stdout.write(f"Removed {slug}. Its address is held back from sign-ups until it is released.")
