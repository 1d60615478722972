"""The console's session store: Django's database sessions, two statements lighter per log-in.

Every log-in cycles the session key (Django's defence against fixation): the stock store first asks
whether a new random key is taken (a SELECT), and deletes the old row by reading it first (a SELECT,
then the DELETE). Here a new key is simply inserted — a clash, 32 random characters, would fail the
insert and another key is drawn, as the stock store already does when two processes race — and the old
row is deleted by its key in one statement (bench/sso). The rows are Django's own, so everything that
reads sessions (ending a member's sessions) works unchanged.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import connections
from django.utils.crypto import get_random_string


class SessionStore(DatabaseSessionStore):
    def _get_new_session_key(self) -> str:
        return get_random_string(32, VALID_KEY_CHARS)

    async def _aget_new_session_key(self) -> str:
        return get_random_string(32, VALID_KEY_CHARS)

    def delete(self, session_key: str | None = None) -> None:
        """One DELETE. (QuerySet.delete() would read the row first: django-tenants listens to every
        model's post_delete, which turns Django's fast delete off; no one listens for sessions'.)"""
        session_key = session_key if session_key is not None else self.session_key
        if session_key is None:
            return
        alias = self.model.objects.db
        table = connections[alias].ops.quote_name(self.model._meta.db_table)
        with connections[alias].cursor() as cursor:  # one statement: atomic on its own
            cursor.execute(f"DELETE FROM {table} WHERE session_key = %s", [session_key])  # noqa: S608 - our table name

    async def adelete(self, session_key: str | None = None) -> None:
        await sync_to_async(self.delete)(session_key)
