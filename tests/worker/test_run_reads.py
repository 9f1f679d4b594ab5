"""A stream's replay (RunReader.events with shared=True, what the API's streams read): the
events decoded once per entry are given again, never for other stored bytes, within a bound."""

from __future__ import annotations

import json
from pathlib import Path

from dizest_worker.connection import redis_client
from dizest_worker.run_reads import DecodedEvents, RunReader
from tests.worker.conftest import make_settings, redis_url  # noqa: F401


def line(text: str) -> dict[str, str]:
    event = {"run_id": "r1", "type": "log.append", "flow_id": "f", "data": {"entry": text}}
    return {"e": json.dumps(event)}


def test_a_replayed_entry_is_the_event_decoded_before_unless_its_bytes_differ(
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    settings = make_settings(redis_url, tmp_path)
    reader = RunReader(redis_client(settings), settings)
    stream = reader.keys.events("r1")
    reader.client.xadd(stream, line("one"), id="1-1")
    reader.client.xadd(stream, line("two"), id="1-2")
    first, again = reader.events("r1", shared=True), reader.events("r1", shared=True)
    assert [e.data["entry"] for e in again] == ["one", "two"]
    assert all(a is b for a, b in zip(first, again, strict=True))  # decoded once
    assert reader.events("r1")[0] is not first[0]  # not shared unless asked
    # the same ids with other bytes (a stream made again): decoded again, never the kept ones
    reader.client.delete(stream)
    reader.client.xadd(stream, line("uno"), id="1-1")
    reader.client.xadd(stream, line("two"), id="1-2")
    fresh = reader.events("r1", shared=True)
    assert [e.data["entry"] for e in fresh] == ["uno", "two"]
    assert fresh[1] is first[1]


def test_decoded_events_kept_stay_within_their_bound() -> None:
    kept = DecodedEvents(max_bytes=64 * 200)  # entries up to 200 bytes are kept
    stored = line("x" * 100)["e"].encode()  # ~170 bytes
    entries = [(f"1-{i}".encode(), {b"e": stored}) for i in range(100)]
    events = kept.events("s", entries)
    assert [e.id for e in events] == [f"1-{i}" for i in range(100)]
    assert 0 < kept._bytes <= kept.max_bytes
    assert kept.events("s", entries[-3:])[0] is events[-3]  # the newest stay
    assert kept.events("s", entries[:1])[0] is not events[0]  # the oldest went
