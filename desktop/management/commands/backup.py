"""Back up the whole workspace (database, files, secret key) to one file."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from desktop.services import BackupError, backup_create


class Command(BaseCommand):
    help = "Back up the workspace to one .tessera-backup file (default: the data folder's backups/)."

    def add_arguments(self, parser):
        parser.add_argument("output", nargs="?", help="Where to write the backup file")

    def handle(self, *args, **opts):
        dest = Path(opts["output"]).expanduser().resolve() if opts["output"] else None
        try:
            info = backup_create(reason="manual", dest=dest)
        except BackupError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(str(info.path))
