"""Answers of a given size for one user of a running API (tests/api/test_slow_readers.py,
bench/download_pair.py): a drive file, which the server writes with `sendfile`, and a stored
workflow's package, JSON it writes with `sendall`."""

from __future__ import annotations

import json
import urllib.request

CHUNK = 1 << 20


def large_answers(base: str, headers: dict[str, str], size: int) -> dict[str, str]:
    """The paths of the two answers of `size` bytes at least, made for the user of `headers`."""
    put = urllib.request.Request(base + "/api/v1/files/big", b"f" * size, headers, method="PUT")
    with urllib.request.urlopen(put, timeout=60) as answer:
        assert answer.status == 201
    # apps of at most a MiB of code each: a save takes no string longer than its runs do
    # (DIZEST_MAX_INPUT_STRING, 4 Mi); the whole must stay under DIZEST_MAX_INPUT_BYTES
    parts = [min(CHUNK, size - start) for start in range(0, size, CHUNK)]
    apps = {
        f"a{i}": {"id": f"a{i}", "title": "a", "inputs": [], "outputs": [], "code": "#" + "p" * n}
        for i, n in enumerate(parts)
    }
    flows = {f"n{i}": {"id": f"n{i}", "app_id": f"a{i}", "active": True} for i in range(len(parts))}
    package = {"apps": apps, "flow": flows}
    body = json.dumps({"title": "big", "package": package}).encode()
    post = urllib.request.Request(
        base + "/api/v1/workflows", body, {**headers, "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(post, timeout=60) as answer:
        assert answer.status == 201
        made = json.loads(answer.read())
    return {"file": "/api/v1/files/big", "package": f"/api/v1/workflows/{made['id']}"}
