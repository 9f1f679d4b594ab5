"""Output downloads that one user cannot turn against the API process: an artifact file changed
after its run is not read past its stored size, and one user's slow conversions do not hold up
another's. Against the app on a real worker (its converter sandboxed, in this process)."""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator

import pytest

from dizest_core.job import Artifact
from tests.api.test_runs import Live, serve_live
from tests.conftest import package


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
