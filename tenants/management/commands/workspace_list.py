"""List the workspaces of this installation."""

from django.core.management.base import BaseCommand

from tenants.runtime import workspace_list


class Command(BaseCommand):
    help = "List workspaces: slug, name, plan, status, host, schema."

    def handle(self, *args, **opts):
        rows = [(t.slug, t.name, t.plan, t.status, t.host(), t.schema_name) for t in workspace_list().order_by("slug")]
        header = ("SLUG", "NAME", "PLAN", "STATUS", "HOST", "SCHEMA")
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            self.stdout.write("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        self.stdout.write(f"{len(rows)} workspace(s)")
