"""`tessera manage reset-password EMAIL`: a new password for a member, from the computer that holds the
workspace (a desktop owner who forgot theirs: the desktop sends no mail to carry a reset link)."""

import sys

from django.core.management.base import BaseCommand, CommandError

from accounts.services import AccountError, user_password_reset_by_operator
from tenants.runtime import workspace_context, workspace_list


class Command(BaseCommand):
    help = (
        "Give a member a new password (printed; a random one unless --password-stdin) and end a lockout. "
        "On the desktop: tessera manage reset-password you@example.com"
    )

    def add_arguments(self, parser):
        parser.add_argument("email", help="The member's e-mail address")
        parser.add_argument("--workspace", help="The workspace's slug (needed where a server holds several)")
        parser.add_argument("--password-stdin", action="store_true", help="Read the new password from standard input")

    def handle(self, *args, **opts):
        workspaces = list(workspace_list())
        if opts["workspace"]:
            workspaces = [w for w in workspaces if w.schema_name == opts["workspace"] or w.slug == opts["workspace"]]
        if len(workspaces) != 1:
            raise CommandError("Name the workspace with --workspace SLUG." if workspaces else "No such workspace.")
        password = sys.stdin.readline().rstrip("\n") if opts["password_stdin"] else None
        with workspace_context(workspaces[0]):
            try:
                user, password = user_password_reset_by_operator(
                    email=opts["email"], password=password, how="tessera manage reset-password"
                )
            except AccountError as exc:
                raise CommandError(exc.message) from exc
        self.stdout.write(f"New password for {user.email}: {password}" if not opts["password_stdin"] else "Done.")
        self.stdout.write("Log in with it; to choose your own, run this again with --password-stdin.")
