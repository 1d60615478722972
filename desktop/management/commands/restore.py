"""Replace the workspace with a backup file's content (a backup of the current state is kept first)."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from desktop import paths
from desktop.instance import InstanceLock
from desktop.services import BackupError, backup_restore


class Command(BaseCommand):
    help = (
        "Restore the workspace from a .tessera-backup file, also onto a new computer or over a damaged database "
        "(what was there is kept in backups/ first). Quit the app first (or use the console's Restore)."
    )

    def add_arguments(self, parser):
        parser.add_argument("backup", help="The .tessera-backup file")

    def handle(self, *args, **opts):
        path = Path(opts["backup"]).expanduser().resolve()
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        lock = InstanceLock(paths.instance_lock(Path(settings.DATA_DIR)))
        if not lock.acquire():
            raise CommandError("Tessera is running on this data folder: quit it first, or restore from its console.")
        try:
            info = backup_restore(path=path, offline=True)
        except BackupError as exc:
            raise CommandError(exc.message) from exc
        finally:
            lock.release()
        self.stdout.write(f"Restored {info.workspace or 'the workspace'} as of {info.created_at:%Y-%m-%d %H:%M} UTC.")
