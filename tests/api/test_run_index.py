"""Who owns which run (dizest_api.data.run_index): a claim once read is kept by the process (an
SSE connect storm on one run read it once per connect); a run not claimed yet is asked again."""

from __future__ import annotations

from pathlib import Path

from dizest_api.data.accounts import text_client
from dizest_api.data.run_index import RunIndex
from tests.worker.conftest import make_settings, redis_url  # noqa: F401


def index_of(redis_url: str, tmp_path: Path) -> RunIndex:  # noqa: F811
    settings = make_settings(redis_url, tmp_path)
    return RunIndex(text_client(settings), settings)


def test_a_run_read_before_its_claim_is_found_once_claimed(
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A stream may ask between the run's creation and its claim: that answer is not kept."""
    index = index_of(redis_url, tmp_path)
    assert index.get("r1") is None
    assert index.claim("r1", "alice", "wf1")
    found = index.get("r1")
    assert found is not None and found["owner"] == "alice" and found["workflow_id"] == "wf1"


def test_a_kept_claim_is_the_stored_one_whatever_a_caller_does_with_its_copy(
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    index = index_of(redis_url, tmp_path)
    assert index.claim("r1", "alice", "wf1")
    first = index.get("r1")
    assert first is not None
    first["owner"] = "mallory"
    again = index.get("r1")
    assert again is not None and again["owner"] == "alice"
    assert not index.claim("r1", "mallory", "wf1")  # written once: what is kept stays true
    assert index.get("r1") == {"owner": "alice", "workflow_id": "wf1"}
