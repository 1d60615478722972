"""Print the role/permission matrix as the Markdown table the README carries."""

from django.core.management.base import BaseCommand

from rbac.permissions import matrix_markdown


class Command(BaseCommand):
    help = "Print the permission matrix (Markdown) for the README."

    def handle(self, *args, **options):
        self.stdout.write(matrix_markdown())
