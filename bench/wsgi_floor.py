"""CPU floor of one HTTP connection in gunicorn's gthread worker: a bare WSGI callable vs Flask.

`sse_connect.py` finds 1.5-1.8 ms of API CPU per SSE connect; 5000 clients onto one API process
within 5 s need <= 1 ms. What do gunicorn + Flask alone cost, without dizest, Redis or auth? It
starts `gunicorn -k gthread --threads 128 -w 1` itself (in a temporary directory) for each app:
`bare`, a WSGI callable answering "ok" with a Content-Length, and `flask`, a Flask app whose one
route, `/api/v1/runs/<run_id>/events`, answers "ok". A pass: `--clients` connections sending
`GET /api/v1/runs/abc/events` (`Connection: close`), read to EOF, one at a time or in a burst,
apps interleaved to show drift; printed: wall time, the worker's CPU a connection (and sys).

    .venv/bin/python bench/wsgi_floor.py [--clients 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
REQUEST = b"GET /api/v1/runs/abc/events HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
MODES = ("one at a time", "burst")
APPS = {
    "bare": """\
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
""",
    "flask": """\
from flask import Flask
app = Flask(__name__)
@app.get("/api/v1/runs/<run_id>/events")
def events(run_id):
    return "ok"
""",
}


@dataclass
class Gunicorn:
    name: str
    port: int
    master: subprocess.Popen[bytes]
    worker: int


def raise_open_files(wanted: int) -> None:
    """One socket per client in a burst (gunicorn inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        raise SystemExit(f"RLIMIT_NOFILE: {wanted} open files needed, hard limit {hard}")
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def cpu(pid: int) -> tuple[float, float]:
    """(utime + stime, stime) of `pid`, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK, int(fields[12]) / CLK_TCK


def children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return [int(c) for task in tasks for c in (task / "children").read_text().split()]


def check(answer: bytes) -> None:
    if not answer.startswith(b"HTTP/1.1 200") or not answer.endswith(b"ok"):
        raise RuntimeError(f"bad answer: {answer[:200]!r}")


def get(port: int) -> None:
    """One connection: the request sent, the response read to EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(REQUEST)
        check(b"".join(iter(lambda: sock.recv(65536), b"")))


def burst(port: int, clients: int) -> None:
    """All connections opened and sent, each answer read as it comes and closed at its EOF:
    gunicorn 27's gthread main thread lingers (<= 2 s) on each closing socket until the client
    closes it, so reading in connect order stalls it (the master kills it after --timeout)."""
    sel = selectors.DefaultSelector()

    def read(timeout: float) -> None:
        for key, _ in sel.select(timeout):
            sock, chunks = key.data
            if data := sock.recv(65536):
                chunks.append(data)
            else:
                sel.unregister(sock)
                sock.close()
                check(b"".join(chunks))

    for _ in range(clients):
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        sock.sendall(REQUEST)
        sel.register(sock, selectors.EVENT_READ, (sock, []))
        read(0)
    while sel.get_map():
        read(60)


@contextlib.contextmanager
def gunicorn(name: str, tmp: Path, clients: int) -> Iterator[Gunicorn]:
    (tmp / f"{name}_app.py").write_text(APPS[name])
    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    log = (tmp / f"{name}.log").open("wb")
    command = [sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", "128", "-w", "1"]
    command += ["-b", f"127.0.0.1:{port}", "--backlog", str(clients + 256), "--chdir", str(tmp)]
    command += ["--no-control-socket"]  # gunicorn 27: one shared ~/.gunicorn socket otherwise
    master = subprocess.Popen(
        [*command, f"{name}_app:app"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # ready once the worker answers (the master alone would accept connections)
            with contextlib.suppress(OSError):
                get(port)
                break
            if master.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn {name} did not start; see {tmp / f'{name}.log'}")
            time.sleep(0.05)
        (worker,) = children(master.pid)  # -w 1
        for _ in range(100):  # warm up: first-request imports, thread pool
            get(port)
        yield Gunicorn(name, port, master, worker)
    finally:
        if master.poll() is None:
            master.terminate()  # SIGTERM to the master: it stops its worker
        try:
            master.wait(timeout=30)
        except subprocess.TimeoutExpired:
            print(f"gunicorn {name}: no exit 30 s after SIGTERM, SIGKILL", file=sys.stderr)
            os.killpg(master.pid, signal.SIGKILL)
            master.wait()
        log.close()


def run_pass(server: Gunicorn, clients: int, at_once: bool) -> tuple[float, float, float]:
    """(wall s, worker CPU ms a connection, its sys ms a connection)."""
    (cpu0, sys0), t0 = cpu(server.worker), time.perf_counter()
    if at_once:
        burst(server.port, clients)
    else:
        for _ in range(clients):
            get(server.port)
    wall, (cpu1, sys1) = time.perf_counter() - t0, cpu(server.worker)
    if children(server.master.pid) != [server.worker]:
        raise RuntimeError(f"gunicorn {server.name}: the worker was replaced")
    return wall, (cpu1 - cpu0) / clients * 1e3, (sys1 - sys0) / clients * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--clients", type=int, default=2000, help="connections per pass")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of (bare, flask)")
    args = ap.parse_args()
    raise_open_files(args.clients + 256)
    load = os.getloadavg()
    spent: dict[tuple[str, str], list[float]] = {}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dizest-wsgi-")))
        servers = [stack.enter_context(gunicorn(n, tmp, args.clients)) for n in APPS]
        for _ in range(args.rounds):
            for server in servers:
                for mode in MODES:
                    wall, per, per_sys = run_pass(server, args.clients, mode == "burst")
                    spent.setdefault((server.name, mode), []).append(per)
                    print(
                        f"{server.name:>5} {mode:>13}: {args.clients} connections in "
                        f"{wall:.2f} s ({args.clients / wall:.0f}/s); worker {per:.3f} ms CPU "
                        f"a connection (sys {per_sys:.3f})"
                    )
    after = os.getloadavg()
    print(f"load avg {' '.join(f'{v:.2f}' for v in load)} -> {' '.join(f'{v:.2f}' for v in after)}")
    floor = {n: " / ".join(f"{sum(spent[n, m]) / args.rounds:.3f}" for m in MODES) for n in APPS}
    print(
        f"worker ms CPU a connection (one at a time / burst, mean of {args.rounds} rounds): "
        f"bare WSGI {floor['bare']}, Flask {floor['flask']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
