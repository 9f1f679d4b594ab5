"""simple_websocket's Client, minus a race that made WebSocket tests flaky under load."""

from __future__ import annotations

import contextlib
from typing import Any

from simple_websocket import Client, ConnectionClosed


class WsClient(Client):
    """Frames that arrive in the same read as the handshake's answer are taken at once.

    `Client.handshake` keeps only the first event (the 101) and leaves the rest parsed but unread
    until the next read from the socket: when the server's first messages came with its 101 (a
    loaded machine reads late), `receive` waited for the next frame, the next ping 15 s away.
    """

    def handshake(self) -> None:
        super().handshake()
        self.connected = self._handle_events()

    def close(self, reason: Any = None, message: Any = None) -> None:
        """Close, unless the server did first (a run's stream ends with its run: a loaded
        machine read its last frame late, and `Client.close` raised ConnectionClosed)."""
        with contextlib.suppress(ConnectionClosed):
            super().close(reason, message)
