"""workspace_move <slug> --from <source cell's database URL>: move a workspace into this cell."""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandError

from cells.moves import workspace_move_in
from core.errors import ServiceError


class Command(BaseCommand):
    help = (
        "Move a workspace from another cell into this one (run in the target cell). Writes pause for the copy; "
        "the directory then sends the workspace's requests here. The source keeps its old schema as "
        "moved_<schema>_<time> until you drop it."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument(
            "--from",
            dest="source",
            default=os.environ.get("TESSERA_MOVE_SOURCE_DATABASE_URL", ""),
            help="The source cell's database URL (or TESSERA_MOVE_SOURCE_DATABASE_URL).",
        )
        parser.add_argument(
            "--from-redis",
            dest="source_redis",
            default=os.environ.get("TESSERA_MOVE_SOURCE_REDIS_URL", ""),
            help="The source cell's Redis URL (or TESSERA_MOVE_SOURCE_REDIS_URL): its API calls counted but not "
            "yet flushed come along. Without it they stay behind, unbilled.",
        )
        parser.add_argument(
            "--source-cell", default="", help="The source cell's name, for a workspace the directory does not know yet."
        )

    def handle(self, *args, slug: str, source: str, source_cell: str, source_redis: str, **options):
        if not source:
            raise CommandError(
                "Name the source cell's database: --from postgres://… (or TESSERA_MOVE_SOURCE_DATABASE_URL)."
            )
        try:
            report = workspace_move_in(
                slug=slug,
                source_database_url=source,
                source_cell=source_cell,
                source_redis_url=source_redis,
                say=lambda m: self.stderr.write(m),
            )
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"moved {report.slug}: {report.source_cell} -> {report.target_cell}; {report.tables} tables, "
            f"{report.rows} rows, {report.tables_caught_up} tables caught up, "
            f"{report.audit_events_verified} audit events verified; "
            f"writes frozen {report.freeze_seconds:.2f} s (copy {report.copy_seconds:.2f} s); "
            f"old schema kept in the source as {report.moved_schema}; "
            + (
                f"{report.counters_carried} usage counters carried"
                if report.counters_carried is not None
                else "usage counters NOT carried (no --from-redis)"
            )
        )
