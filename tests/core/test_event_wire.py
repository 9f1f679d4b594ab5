"""`Event.wire` (built from the fields, for speed) is exactly the compact JSON of `to_dict()`."""

from __future__ import annotations

import json
from dataclasses import fields

from dizest_core.events import WIRE_KEYS, Event


def test_wire_is_the_compact_json_of_to_dict() -> None:
    assert tuple(f.name for f in fields(Event)) == WIRE_KEYS
    data = {"entry": {"mime": "text/plain", "data": "é\n"}, "stream": "output", "n": [1, None]}
    for event in (
        Event("1-0", "r", "log.append", "f", data, 1.5),
        Event("2-0", "r", "log.clear", None),
    ):
        assert event.wire == json.dumps(event.to_dict(), separators=(",", ":"))
        assert json.loads(event.wire) == event.to_dict()
