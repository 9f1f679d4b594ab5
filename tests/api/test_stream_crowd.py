"""SSE streams of a run this `dizest serve` streams already (a crowd connecting): each one takes
its subscription first, then reads the run's record and first events in one round trip
(`routes.run_events.follow_run`). Every client still gets every event once, in order; one
refused (404, 429, 503) leaves no subscription behind; the process's cap counts it once."""

from __future__ import annotations

import re
import socket
import struct
import threading
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from tests.api.test_fairness_streams import user_token
from tests.api.test_runs import slow
from tests.conftest import package, wait_for
from tests.serve_process import Served, call, serving

LINES, CLIENTS = 300, 40
CHATTY = package(
    {
        "talk": {
            "code": f"import time\nfor i in range({LINES}):\n    print(i)\n    time.sleep(0.005)\n"
        }
    },
    {"t": {"app": "talk"}},
)
LONG = 700  # lines a run prints at once, then it waits: a replay longer than one batch (500)
VERBOSE = package(
    {"talk": {"code": f"import time\nfor i in range({LONG}):\n    print(i)\ntime.sleep(60)\n"}},
    {"t": {"app": "talk"}},
)


def stream_request(served: Served, run_id: str, headers: dict[str, str]) -> socket.socket:
    url = urlsplit(served.base)
    sock = socket.create_connection((url.hostname or "", url.port or 80), timeout=30)
    head = f"GET /api/v1/runs/{run_id}/events HTTP/1.1\r\nHost: {url.netloc}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall((head + "Accept: text/event-stream\r\n\r\n").encode())
    return sock


def status_of(sock: socket.socket) -> int:
    head = b""
    while b"\r\n" not in head:
        head += sock.recv(1)
    return int(head.split()[1])


def read_to_end(sock: socket.socket) -> bytes:
    received = bytearray()
    while piece := sock.recv(65536):
        received.extend(piece)
    return bytes(received)


def ids(received: bytes) -> list[str]:
    return [m.decode() for m in re.findall(rb"\nid: (\d+-\d+)\n", received)]


def stream_clients(served: Served) -> int:
    request = urllib.request.Request(served.base + "/metrics", headers=served.token)
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read().decode()
    found = re.search(r"^dizest_stream_clients (\S+)$", text, re.M)
    assert found, text
    return int(float(found.group(1)))


class Reader(threading.Thread):
    """Reads one stream to its end in a thread; what came so far in `data`."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock, self.data = sock, bytearray()
        self.start()

    def run(self) -> None:
        while piece := self.sock.recv(65536):
            self.data.extend(piece)


def test_a_crowd_connecting_to_a_run_as_it_runs_gets_every_event_once_in_order(
    tmp_path: Path,
) -> None:
    with serving(tmp_path) as served:
        status, run, _ = call(
            served.base, "POST", "/api/v1/runs", {"package": CHATTY}, served.token
        )
        assert status == 201, run
        readers = []
        for i in range(CLIENTS):  # the first subscribes the run here; the others find it so
            sock = stream_request(served, run["run_id"], served.token)
            assert status_of(sock) == 200
            readers.append(Reader(sock))
            if i == 0:  # the others connect while its lines come
                wait_for(lambda: b"event: log.append" in readers[0].data, timeout=30)
        for reader in readers:
            reader.join(timeout=60)
        assert b"event: workflow.status" in readers[-1].data
        everything = ids(read_to_end(stream_request(served, run["run_id"], served.token)))
        assert len(everything) > LINES  # the run's lines and statuses, replayed after its end
        for i, reader in enumerate(readers):
            assert ids(bytes(reader.data)) == everything, i
            assert reader.data.endswith(b"0\r\n\r\n")


def test_a_crowd_client_whose_replay_is_longer_than_a_batch_gets_it_all_in_order(
    tmp_path: Path,
) -> None:
    with serving(tmp_path) as served:
        status, run, _ = call(
            served.base, "POST", "/api/v1/runs", {"package": VERBOSE}, served.token
        )
        assert status == 201, run
        first = stream_request(served, run["run_id"], served.token)
        assert status_of(first) == 200
        early = Reader(first)
        wait_for(lambda: len(ids(bytes(early.data))) > LONG, timeout=30)
        late = stream_request(served, run["run_id"], served.token)  # its replay: LONG lines +
        assert status_of(late) == 200
        later = Reader(late)
        wait_for(lambda: len(ids(bytes(later.data))) >= len(ids(bytes(early.data))), timeout=30)
        call(served.base, "POST", f"/api/v1/runs/{run['run_id']}/cancel", None, served.token)
        early.join(timeout=30)
        later.join(timeout=30)
        assert len(ids(bytes(early.data))) > LONG
        assert ids(bytes(later.data)) == ids(bytes(early.data))
        assert later.data.endswith(b"0\r\n\r\n")


def test_a_stream_refused_on_a_run_streamed_here_leaves_nothing_subscribed(
    tmp_path: Path,
) -> None:
    with serving(tmp_path, max_streams="20") as served:
        alice, bob = user_token(served.base, "alice"), user_token(served.base, "bob")
        status, run, _ = call(served.base, "POST", "/api/v1/runs", {"package": slow(60)}, alice)
        assert status == 201, run
        held = [stream_request(served, run["run_id"], alice) for _ in range(2)]
        try:
            assert [status_of(sock) for sock in held] == [200, 200]
            wait_for(lambda: stream_clients(served) == 2, timeout=10)
            stranger = stream_request(served, run["run_id"], bob)  # not hers to read: 404
            assert status_of(stranger) == 404
            stranger.close()
            more = [stream_request(served, run["run_id"], alice) for _ in range(7)]
            assert sorted(status_of(sock) for sock in more) == [200] * 6 + [429]  # her 8 places
            held += more
            assert stream_clients(served) == 8
            for sock in held[2:]:  # they leave: the hub sees them go
                sock.close()
            del held[2:]
            wait_for(lambda: stream_clients(served) == 2, timeout=10)
            for _ in range(20):  # clients that leave before their answer (a reset)
                gone = stream_request(served, run["run_id"], alice)
                gone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                gone.close()
            wait_for(lambda: stream_clients(served) == 2, timeout=10)
        finally:
            for sock in held:
                sock.close()
            call(served.base, "POST", f"/api/v1/runs/{run['run_id']}/cancel", None, alice)


def test_the_process_cap_counts_a_crowd_stream_once(tmp_path: Path) -> None:
    with serving(tmp_path, max_streams="6") as served:
        status, run, _ = call(
            served.base, "POST", "/api/v1/runs", {"package": slow(60)}, served.token
        )
        assert status == 201, run
        held = [stream_request(served, run["run_id"], served.token) for _ in range(7)]
        try:
            assert sorted(status_of(sock) for sock in held) == [200] * 6 + [503]  # at once
        finally:
            for sock in held:
                sock.close()
            call(served.base, "POST", f"/api/v1/runs/{run['run_id']}/cancel", None, served.token)
