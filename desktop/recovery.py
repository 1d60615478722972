"""The page shown when Tessera cannot start: what went wrong, and, for a damaged or unreadable
database, the latest automatic backup with a button to restore it.

A small ASGI app of its own (no Django: the database is what failed), served by the launcher on the
console's loopback address until the problem is solved. The button posts a token only this page
carries; the restore then runs as `tessera manage restore` would (what is there is kept first), and
the launcher starts again on the same address, so the page's next load is the console.
"""

from __future__ import annotations

import hmac
import html
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

from desktop.backup import BackupInfo
from desktop.storage import StorageFailure

OFFERS_BACKUP = {"database_damaged", "database_unwritable"}


@dataclass
class RecoveryState:
    failure: StorageFailure
    backup: BackupInfo | None
    data_dir: str
    restoring: bool = False
    result: str = ""  # after a restore: what happened


_STYLE = """body{font-family:system-ui,sans-serif;max-width:42rem;margin:8vh auto;padding:0 1rem;color:#222;
background:#f6f7f9}h1{font-size:1.4rem}code{background:#e8eaee;padding:.1rem .3rem;border-radius:3px}
.box{background:#fff;border:1px solid #d6d9de;border-radius:6px;padding:1rem 1.2rem;margin:1rem 0}
button{font:inherit;padding:.5rem 1rem;border-radius:6px;border:1px solid #1d4ed8;background:#2563eb;color:#fff}
.muted{color:#666}@media (prefers-color-scheme:dark){body{background:#1d1f23;color:#eee}
.box{background:#26292e;border-color:#3a3e45}code{background:#2b2e34}.muted{color:#aaa}}"""


def recovery_page(state: RecoveryState, token: str) -> str:
    esc = html.escape
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Tessera could not start</title>"
        f"<style>{_STYLE}</style>",
        "<meta http-equiv='refresh' content='2'>" if state.restoring else "",
        "</head><body><main>",
        "<h1>Tessera could not start</h1>",
        f"<p data-testid='cause' data-code='{esc(state.failure.code)}'>{esc(state.failure.message)}</p>",
    ]
    if state.restoring:
        parts.append("<p>Restoring the backup, then starting Tessera…</p>")
    elif state.result:
        parts.append(f"<p role='alert'>{esc(state.result)}</p>")
    if state.failure.code in OFFERS_BACKUP and not state.restoring:
        if state.backup is not None:
            made = state.backup.created_at.strftime("%Y-%m-%d %H:%M")
            parts.append(
                "<div class='box' data-testid='offer'>"
                f"<p>The latest automatic backup is from <strong>{esc(made)} UTC</strong> "
                f"(<code>{esc(state.backup.name)}</code>, {state.backup.size / 1e6:.1f} MB). Restoring it brings "
                "the workspace back as it was then; the damaged database is kept in the backups folder.</p>"
                "<form method='post' action='/restore'>"
                f"<input type='hidden' name='token' value='{esc(token)}'>"
                f"<input type='hidden' name='name' value='{esc(state.backup.name)}'>"
                "<button type='submit'>Restore this backup</button></form></div>"
            )
        else:
            parts.append(
                "<p>There is no automatic backup in the data folder. If you have a backup file, restore it with "
                "<code>tessera manage restore FILE</code>.</p>"
            )
    parts.append(f"<p class='muted'>Data folder: <code>{esc(state.data_dir)}</code></p></main></body></html>")
    return "".join(parts)


class RecoveryApp:
    """GET / → the page; POST /restore (token) → `on_restore(name)` on a thread of the launcher's."""

    def __init__(self, state: RecoveryState, *, on_restore: Callable[[str], None]):
        self.state = state
        self.token = secrets.token_urlsafe(24)
        self.on_restore = on_restore

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1013})
            return
        path, method = scope.get("path", "/"), scope.get("method", "GET")
        if path == "/health":
            checks = {"storage": {"ok": False, "error": self.state.failure.code, "detail": self.state.failure.message}}
            body = json.dumps({"status": "unavailable", "checks": checks}).encode()
            await self._send(send, 503, body, b"application/json")
            return
        if method == "POST" and path == "/restore":
            form = parse_qs((await self._body(receive)).decode("utf-8", "replace"))
            given = (form.get("token") or [""])[0]
            name = (form.get("name") or [""])[0]
            if not hmac.compare_digest(given, self.token):
                await self._send(send, 403, b"This page has expired: reload it.", b"text/plain; charset=utf-8")
                return
            if not self.state.restoring:
                self.state.restoring = True
                self.on_restore(name)
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [(b"location", b"/"), (b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        page = recovery_page(self.state, self.token).encode()
        await self._send(send, 503, page, b"text/html; charset=utf-8")

    @staticmethod
    async def _body(receive) -> bytes:
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
            if sum(len(c) for c in chunks) > 64 * 1024:
                break
        return b"".join(chunks)

    @staticmethod
    async def _send(send, status: int, body: bytes, content_type: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
