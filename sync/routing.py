"""The websocket side of the ASGI app: `/sync/v1/` (the sync consumer), nothing else.

The consumer finds the workspace from the Host header exactly as HTTP does; an unknown host, the
public site or a suspended workspace has none and the connection is refused.
"""

from __future__ import annotations

import re

from sync.consumers import SyncConsumer

SYNC_PATH = re.compile(r"^/sync/v1/?$")


class SyncWebsocketRouter:
    """Routes websocket connections: /sync/v1/ to the sync consumer; any other path is refused."""

    def __init__(self):
        self.consumer = SyncConsumer.as_asgi()

    async def __call__(self, scope, receive, send):
        if not SYNC_PATH.match(scope.get("path", "")):
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 4404})
            return
        return await self.consumer(scope, receive, send)


websocket_application = SyncWebsocketRouter()
