"""Wall time of one large write on loopback, with busy threads in the writing process: a plain
socket against the `SendBounded` socket (`dizest_api/response_writes.py`) of each checkout given.

A reader process reads everything as fast as it can; the bench writes `--mb` MiB with `sendall`
(bytes in memory) and with `sendfile` (a temporary file), `--rounds` times each, the sockets
alternated, with 0 and then `--busy` threads counting in a loop (the GIL is contended as in a
busy API process). Printed: the median wall time of each, per kind and number of busy threads.

    .venv/bin/python bench/send_gil.py /path/to/checkout-a [/path/to/checkout-b ...]
        [--mb 64] [--rounds 6] [--busy 4]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

READER = r"""
import socket
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
while True:
    conn, _ = listener.accept()
    size, got = int.from_bytes(conn.recv(8), "little"), 0
    while got < size and (data := conn.recv(1 << 20)):
        got += len(data)
    conn.sendall(b"k")
    conn.close()
"""


def bounded_class(checkout: Path) -> Any:
    """`SendBounded` of `checkout`, imported under a name of its own."""
    name = f"response_writes_{abs(hash(checkout))}"
    spec = importlib.util.spec_from_file_location(
        name, checkout / "dizest_api" / "response_writes.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.SendBounded


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("checkouts", nargs="+", type=Path)
    ap.add_argument("--mb", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--busy", type=int, default=4)
    args = ap.parse_args()
    size = args.mb << 20
    wrap: dict[str, Callable[[socket.socket], socket.socket]] = {"plain socket": plain}
    for checkout in args.checkouts:
        wrap[f"SendBounded of {checkout}"] = partial(bounded_class(checkout.resolve()), send_s=60.0)
    reader = subprocess.Popen([sys.executable, "-c", READER], stdout=subprocess.PIPE)
    assert reader.stdout is not None
    port = int(reader.stdout.readline())
    data = b"x" * size
    with tempfile.TemporaryFile() as file:
        file.write(data)
        file.flush()

        def once(name: str, kind: str) -> float:
            with wrap[name](socket.create_connection(("127.0.0.1", port))) as sock:
                sock.sendall(size.to_bytes(8, "little"))
                start = time.perf_counter()
                if kind == "sendfile":
                    sock.sendfile(file, 0, size)
                else:
                    sock.sendall(data)
                sock.recv(1)  # the reader has it all
                return time.perf_counter() - start

        stop = threading.Event()
        print(f"load average {os.getloadavg()[0]:.2f}")
        for busy in (0, args.busy):
            stop.clear()
            spinners = [threading.Thread(target=spin, args=(stop,)) for _ in range(busy)]
            for spinner in spinners:
                spinner.start()
            took: dict[tuple[str, str], list[float]] = {}
            for i in range(args.rounds):
                names = list(wrap) if i % 2 == 0 else list(wrap)[::-1]
                for kind in ("sendall", "sendfile"):
                    for name in names:
                        took.setdefault((kind, name), []).append(once(name, kind))
            stop.set()
            for spinner in spinners:
                spinner.join()
            for (kind, name), times in took.items():
                median = statistics.median(times) * 1000
                print(f"{busy} busy threads, {kind:8} {name}: {median:.1f} ms")
        print(f"load average {os.getloadavg()[0]:.2f}")
    reader.kill()
    return 0


def plain(sock: socket.socket) -> socket.socket:
    return sock


def spin(stop: threading.Event) -> None:
    count = 0
    while not stop.is_set():
        count += 1


if __name__ == "__main__":
    raise SystemExit(main())
