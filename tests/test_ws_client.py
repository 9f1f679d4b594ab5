"""tests.ws_client.WsClient takes messages that came in the same read as the 101."""

from __future__ import annotations

import base64
import hashlib
import socket
import threading

from tests.ws_client import WsClient

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def test_a_message_sent_with_the_handshake_answer_is_received_at_once() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            key = next(
                line.split(b":", 1)[1].strip()
                for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            answer += b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            conn.sendall(answer + b"\x81\x05hello")  # the 101 and a text frame, one write
            done.wait(10)  # then nothing: no ping, no other frame

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        ws = WsClient.connect(f"ws://127.0.0.1:{port}/")
        assert ws.receive(timeout=2) == "hello"
    finally:
        done.set()
        server.join(timeout=5)
        listener.close()
