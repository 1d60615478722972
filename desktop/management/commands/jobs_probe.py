"""Queue the desktop.probe job: proves the background worker runs (it leaves probes/<token>)."""

from django.core.management.base import BaseCommand

from desktop.tasks import probe


class Command(BaseCommand):
    help = "Queue a probe job; when the app's worker runs it, probes/<token> appears in the data folder."

    def add_arguments(self, parser):
        parser.add_argument("token")
        parser.add_argument("--countdown", type=float, default=0, help="Run no sooner than this many seconds")

    def handle(self, *args, **opts):
        result = probe.apply_async(args=[opts["token"]], countdown=opts["countdown"] or None)
        self.stdout.write(result.id)
