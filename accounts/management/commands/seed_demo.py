"""Seed a demo workspace with an Admin (credentials printed) and one member per role."""

import secrets
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import User
from accounts.onboarding import workspace_settings_update, workspace_signup
from accounts.services import user_create
from audit.services import audit_event_record
from core.actors import Actor
from rbac.roles import Role
from tenants.backends import tenancy_backend
from tenants.models import Tenant
from tenants.runtime import workspace_context
from tenants.services import tenant_single_ensure

DEMO_ADMIN = "admin@demo.tessera.localhost"
DEMO_MEMBERS = [
    ("maria.manager@demo.tessera.localhost", "Maria Manager", Role.MANAGER),
    ("ana.analyst@demo.tessera.localhost", "Ana Analyst", Role.ANALYST),
    ("victor.viewer@demo.tessera.localhost", "Victor Viewer", Role.VIEWER),
]


class Command(BaseCommand):
    help = "Create (or refresh) the demo workspace and print how to log in."

    def add_arguments(self, parser):
        parser.add_argument("--slug", default="demo")
        parser.add_argument("--name", default="Demo Business")
        parser.add_argument("--credentials-file", help="Keeps the demo password between runs (default: data folder)")

    def _password(self, opts) -> str:
        path = opts["credentials_file"] or getattr(settings, "TESSERA_DEMO_CREDENTIALS_FILE", None)
        if path is not None:
            path = Path(path)
            if path.exists() and path.read_text().strip():
                return path.read_text().strip()
        password = "demo-" + secrets.token_urlsafe(9)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(password)
            path.chmod(0o600)
        return password

    def handle(self, *args, **opts):
        password = self._password(opts)
        backend = tenancy_backend()
        if backend.multi_tenant:
            tenant = Tenant.objects.filter(slug=opts["slug"]).first()
            if tenant is None:
                tenant = workspace_signup(
                    name=opts["name"],
                    slug=opts["slug"],
                    admin_email=DEMO_ADMIN,
                    admin_password=password,
                    admin_name="Demo Admin",
                ).tenant
        else:
            tenant = tenant_single_ensure(name=opts["name"])
        with workspace_context(tenant), transaction.atomic():
            admin = User.objects.filter(email=DEMO_ADMIN).first()
            if admin is None:
                admin = user_create(email=DEMO_ADMIN, password=password, full_name="Demo Admin", role=Role.ADMIN)
                audit_event_record(action="user.signed_up", actor=Actor.system("seed_demo"), target=admin)
                workspace_settings_update(
                    actor=Actor.system("seed_demo"), tenant=tenant, name=opts["name"], timezone=tenant.timezone
                )
            admin.set_password(password)
            admin.is_active, admin.role = True, Role.ADMIN
            admin.save()
            for email, name, role in DEMO_MEMBERS:
                if not User.objects.filter(email=email).exists():
                    user_create(email=email, password=password, full_name=name, role=role)
        self.stdout.write(f"Demo workspace: {tenant.name}")
        self.stdout.write(f"  Admin e-mail:  {DEMO_ADMIN}")
        self.stdout.write(f"  Password:      {password}")
        self.stdout.write(f"  (members {', '.join(e for e, _, _ in DEMO_MEMBERS)} share the password)")
