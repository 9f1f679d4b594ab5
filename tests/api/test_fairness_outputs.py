"""Output downloads that one user cannot turn against the API process: an artifact file changed
after its run is not read past its stored size, and one user's slow conversions do not hold up
another's. Against the app on a real worker (its converter sandboxed, in this process)."""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from dizest_core.job import Artifact
from tests.api.test_runs import Live, serve_live
from tests.conftest import package, wait_for


@pytest.fixture(scope="module")
def live(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with serve_live(redis_url, tmp_path_factory.mktemp("fair-out")) as found:
        yield found


@pytest.fixture
def converting(live: Live) -> Iterator[Live]:
    """`live`, its converter (a zygote, a child of this process) closed afterwards."""
    yield live
    found = live.app.extensions.pop("dizest_convert", None)
    if found is not None:
        found.close()


def produce(live: Live, headers: dict[str, str], code: str) -> str:
    """A finished run of one flow `f` with output `v`."""
    pkg = package({"a": {"code": code, "outputs": ["v"]}}, {"f": {"app": "a"}})
    answer = live.call("POST", "/runs", headers, json={"package": pkg})
    assert answer.status_code == 201, answer.json
    report = live.wait(answer.json["run_id"], headers, timeout=60)
    assert report["status"] == "ready", report
    return str(answer.json["run_id"])


def test_an_artifact_changed_after_its_run_is_refused_never_read_whole(converting: Live) -> None:
    live = converting
    alice = live.user("alice")
    run_id = produce(live, alice, "v = b'x' * (3 << 20)")  # over the inline limit: a file
    stored = live.services.client.output_value(run_id, "f", "v")
    assert isinstance(stored, Artifact)
    path = f"/runs/{run_id}/flows/f/outputs/v"
    whole = live.call("GET", f"{path}?format=pickle", alice)
    assert whole.status_code == 200 and pickle.loads(whole.data) == b"x" * (3 << 20)
    assert live.call("GET", f"{path}?format=bytes", alice).data == b"x" * (3 << 20)
    for size in (stored.size + (64 << 20), stored.size - 1):  # grown (sparse), cut short
        os.truncate(stored.path, size)
        for fmt in ("json", "bytes", "pickle"):
            answer = live.call("GET", f"{path}?format={fmt}", alice)
            assert answer.status_code == 409, (fmt, answer.status_code)
            error = answer.json["error"]
            assert error["code"] == "output_changed", error
            assert error["details"] == {"stored_bytes": stored.size, "file_bytes": size}


# A value whose unpickling (in the converter) says it started, then holds its converter until
# the test lets it go: a file `go` in its working directory.
HOLD = """
class Slow:
    def __reduce__(self):
        return (exec, ("import os, time\\nopen('started', 'w').close()\\n"
                       "while not os.path.exists('go'):\\n    time.sleep(0.02)\\n",))
v = Slow()
"""


def started(live: Live) -> list[Path]:
    """The working folders of conversions whose value has started unpickling."""
    assert live.worker_settings is not None
    root = Path(live.worker_settings.workdir_root)
    return [marker.parent for marker in root.glob(".convert-*/started")]


def let_go(folders: list[Path]) -> None:
    for folder in folders:
        with contextlib.suppress(FileNotFoundError):  # done and deleted already
            (folder / "go").touch()


def test_one_user_s_slow_conversions_do_not_hold_up_another_s(converting: Live) -> None:
    """mallory's value holds a converter: her second conversion is refused at once (429),
    alice's completes meanwhile; once eve's holds the other converter too, alice waits a few
    seconds at most (503, Retry-After), and gets hers once one is free."""
    live = converting
    mallory, eve, alice = live.user("mallory"), live.user("eve"), live.user("alice")
    slow = {name: produce(live, who, HOLD) for name, who in (("mallory", mallory), ("eve", eve))}
    mine = produce(live, alice, "v = 42")
    path = "/runs/{}/flows/f/outputs/v?format=json"
    pool = ThreadPoolExecutor(4)

    def get(headers: dict[str, str], run_id: str) -> Any:
        client = live.app.test_client()  # one per thread
        return client.get(f"/api/v1{path.format(run_id)}", headers=headers)

    held: list[Path] = []
    try:
        first = pool.submit(get, mallory, slow["mallory"])
        held += wait_for(lambda: started(live), timeout=30)
        again = pool.submit(get, mallory, slow["mallory"]).result(timeout=10)
        assert again.status_code == 429, again.status_code
        assert again.json["error"]["code"] == "too_many_conversions"
        assert int(again.headers["Retry-After"]) > 0
        answer = pool.submit(get, alice, mine).result(timeout=20)  # not behind mallory's
        assert (answer.status_code, answer.data) == (200, b"42")
        assert not first.done(), "mallory's conversion was not running meanwhile"
        blocker = pool.submit(get, eve, slow["eve"])
        held += wait_for(lambda: [f for f in started(live) if f not in held], timeout=30)
        busy = pool.submit(get, alice, mine).result(timeout=20)
        assert busy.status_code == 503, busy.status_code
        assert busy.json["error"]["code"] == "converter_busy"
        assert int(busy.headers["Retry-After"]) > 0
        let_go(held[:1])  # mallory's ends: alice gets its converter
        assert first.result(timeout=20).status_code == 200
        answer = pool.submit(get, alice, mine).result(timeout=20)
        assert (answer.status_code, answer.data) == (200, b"42")
        let_go(held)
        assert blocker.result(timeout=20).status_code == 200
    finally:
        let_go(held + started(live))
        pool.shutdown(wait=True)
