"""A TCP proxy the browser talks through, so a test can cut every connection at once (a dropped
network, as a browser sees it) while the server and the run go on."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.redis_server import free_port


class CuttingProxy:
    """127.0.0.1:<port> forwarded to `target_port`; `cut()` closes every open connection."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.requests: list[bytes] = []  # the first line of each request seen
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._open.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, requests: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if requests and data[:4] in (b"GET ", b"POST", b"PUT ", b"DELE"):
                    self.requests.append(data.split(b"\r\n", 1)[0])
                sink.sendall(data)
        self._close(source, sink)

    def _close(self, *socks: socket.socket) -> None:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            with self._lock:
                self._open.discard(sock)

    def cut(self) -> int:
        """Close every connection now; how many there were."""
        with self._lock:
            socks = list(self._open)
        self._close(*socks)
        return len(socks)

    def close(self) -> None:
        self._stopped = True
        self._server.close()
        self.cut()
