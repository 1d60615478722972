"""Tessera's ASGI app served in-process by uvicorn: one event loop thread, one or two listeners.

The console listener is 127.0.0.1 on a port the kernel picks; the LAN sync hub adds a second
listener on the same loop (so websockets of both share one in-memory channel layer). The launcher's
own routes under /_desktop/ (token-checked) sit in front of the console app.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future

import uvicorn

logger = logging.getLogger(__name__)


def loopback_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the same port again after a recovery
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


class ControlRoutes:
    """/_desktop/activate (POST, X-Tessera-Token) brings the window forward; the rest is Tessera."""

    PREFIX = "/_desktop/"

    def __init__(self, app, *, token: str, on_activate: Callable[[], bool]):
        self.app = app
        self.token = token
        self.on_activate = on_activate

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope.get("path", "").startswith(self.PREFIX):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-tessera-token", b"").decode("latin-1")
        if scope["path"] != "/_desktop/activate" or scope["method"] != "POST":
            status = 404
        elif not hmac.compare_digest(given, self.token):
            status = 403
        else:
            status = 204 if self.on_activate() else 409  # 409: no window here (server-only)
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


class ServerHost:
    def __init__(self):
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: dict[str, tuple[uvicorn.Server, Future, socket.socket]] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        ready = threading.Event()

        def run():
            try:
                import uvloop

                loop = uvloop.new_event_loop()
            except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
                loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self.loop = loop
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="asgi-server", daemon=True)
        self._thread.start()
        ready.wait()

    def serve(self, name: str, app, sock: socket.socket, *, graceful_timeout: float = 5.0) -> uvicorn.Server:
        assert self.loop is not None, "start() first"
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=graceful_timeout,
            ws="websockets-sansio",
            http="httptools",
        )
        server = uvicorn.Server(config)
        future = asyncio.run_coroutine_threadsafe(server.serve(sockets=[sock]), self.loop)
        with self._lock:
            self._servers[name] = (server, future, sock)
        return server

    def wait_started(self, name: str, timeout: float = 30.0) -> bool:
        server, future, _ = self._servers[name]
        deadline = threading.Event()
        for _ in range(int(timeout / 0.02)):
            if server.started:
                return True
            if future.done():
                future.result()  # raises what stopped it
                return False
            deadline.wait(0.02)
        return server.started

    def running(self, name: str) -> bool:
        entry = self._servers.get(name)
        return entry is not None and not entry[1].done()

    def stop(self, name: str, timeout: float = 10.0) -> None:
        with self._lock:
            entry = self._servers.pop(name, None)
        if entry is None:
            return
        server, future, sock = entry
        server.should_exit = True
        try:
            future.result(timeout)
        except Exception:
            server.force_exit = True
            logger.warning("server %s did not stop within %.0f s", name, timeout, exc_info=True)
        sock.close()

    def shutdown(self, timeout: float = 10.0) -> None:
        for name in list(self._servers):
            self.stop(name, timeout)
        if self.loop is not None and self._thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
            self._thread = None
