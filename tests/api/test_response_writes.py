"""`SendBounded` on real loopback TCP connections: a write to a client that reads nothing stalls
once the send timeout passed without progress, never before; a client that pauses for half of
the timeout between its reads (several ticks of SO_SNDTIMEO each) gets every byte, of `sendall`
and of `sendfile` alike (tests/api/test_slow_readers.py has them under `dizest serve`). And
`WholeSends`, as a WebSocket writes (tests/api/test_slow_websockets.py has it under a serve)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dizest_api.response_writes import ResponseStalled, SendBounded, WholeSends

SEND_S = 1.0
SIZE = 10 << 20  # more than both kernels buffer (a sender's 4 MiB at most; the reader's is small)


@contextlib.contextmanager
def connection(receive_buffer: int) -> Iterator[tuple[SendBounded, socket.socket]]:
    """(the server's side, bounded; the client's, with a small receive buffer)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        client.connect(listener.getsockname())
        kind = (listener.family, listener.type, listener.proto)
        server = SendBounded.accept_from(listener, SEND_S, kind)[0]
    with server, client:
        yield server, client


def reading(client: socket.socket, pause_s: float, got: bytearray) -> threading.Thread:
    """A thread reading what has come every `pause_s` until the server closes."""

    def read() -> None:
        while data := client.recv(1 << 20):
            got.extend(data)
            time.sleep(pause_s)  # the client's own pace, the thing under test

    thread = threading.Thread(target=read)
    thread.start()
    return thread


@pytest.fixture
def sends(tmp_path: Path) -> Iterator[dict[str, Callable[[SendBounded], object]]]:
    """SIZE random bytes, written with `sendall` or (from a file) with `sendfile`."""
    data = os.urandom(SIZE)
    path = tmp_path / "answer"
    path.write_bytes(data)
    with path.open("rb") as file:
        yield {
            "sendall": lambda server: server.sendall(data),
            "sendfile": lambda server: server.sendfile(file, 0, SIZE),
        }


@pytest.mark.parametrize("kind", ["sendall", "sendfile"])
def test_a_client_that_reads_nothing_stalls_the_write_after_the_timeout(
    sends: dict[str, Callable[[SendBounded], object]], kind: str
) -> None:
    with connection(64 * 1024) as (server, _client):
        start = time.monotonic()
        with pytest.raises(ResponseStalled):
            sends[kind](server)
        took = time.monotonic() - start
    assert SEND_S <= took < 4 * SEND_S, took


@pytest.mark.parametrize("kind", ["sendall", "sendfile"])
def test_a_client_pausing_most_of_the_timeout_gets_every_byte(
    sends: dict[str, Callable[[SendBounded], object]], kind: str
) -> None:
    with connection(512 * 1024) as (server, client):
        got = bytearray()
        reader = reading(client, 0.5 * SEND_S, got)  # four ticks, and room for a busy host
        start = time.monotonic()
        sends[kind](server)
        took = time.monotonic() - start
        server.shutdown(socket.SHUT_WR)
        reader.join(timeout=60)
    assert len(got) == SIZE
    assert took > 1.5 * SEND_S, took  # the write waited past the timeout in all, reads between


def test_whole_sends_of_two_threads_arrive_whole_one_after_the_other() -> None:
    """simple-websocket's two writers (the view, the ping thread) each send a frame larger than
    the buffers: `sendall`'s calls of one and of the other took turns on the connection."""
    with connection(256 * 1024) as (server, client):
        server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)  # no autotuning
        sends = WholeSends(server)
        frames = [bytes([n]) * (SIZE // 8) for n in (1, 2)]
        got = bytearray()
        reader = reading(client, SEND_S / 4, got)  # past a tick: a blocking send returns part
        writers = [threading.Thread(target=sends.send, args=(frame,)) for frame in frames]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(timeout=60)
        server.shutdown(socket.SHUT_WR)
        reader.join(timeout=60)
    assert bytes(got) in (frames[0] + frames[1], frames[1] + frames[0])


def test_a_stalled_whole_send_resets_the_connection_and_ends_every_later_call() -> None:
    with connection(4096) as (server, client):
        sends = WholeSends(server)
        received: list[bytes] = []
        receiver = threading.Thread(target=lambda: received.append(sends.recv(4096)))
        receiver.start()  # as the ping thread's read
        with pytest.raises(ResponseStalled):
            sends.send(b"x" * SIZE)
        receiver.join(timeout=SEND_S)
        assert received == [b""]  # its read ended with the reset, not at the client's close
        start = time.monotonic()
        with pytest.raises(ResponseStalled):
            sends.send(b"close frame")
        assert time.monotonic() - start < SEND_S / 10
        sends.close()  # the ping thread's, as it ends: the connection stays the server's
        assert server.fileno() != -1
        server.close()
        client.settimeout(10)
        with pytest.raises(ConnectionResetError):
            while client.recv(1 << 20):
                pass
