"""The limits on JSON-like values a user hands to a run: run inputs, run options, the package.

Why at the door: such a value is stored, then pickled into every flow's job by a worker. A value
nested a few hundred levels deep passes `json.loads` yet makes pickle raise RecursionError inside
a worker; a self-referencing one never ends; a huge one fills Redis. So every door (the worker
client's `submit`, which the API and programs share) checks values here first and refuses a bad
one with `InputError`, naming the limit, before anything is stored or enqueued.

Invariants of `check_value` (and so of every value a run stores):
  - it never recurses (an explicit stack), so no value, however deep or cyclic, can raise
    RecursionError here; a cycle is refused as too deep;
  - it is JSON: dicts with str/int/float/bool/None keys, lists or tuples, str, int, finite float,
    bool, None;
  - containers are nested at most `max_input_depth` levels (`{"a": 1}` is 1 level);
  - no str is longer than `max_input_string` characters, no dict has more than `max_input_keys`
    keys, and all the values checked against one `Budget` have at most `max_input_nodes` nodes and
    `max_input_bytes` bytes as UTF-8 JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dizest_core.errors import InputError
from dizest_core.settings import Settings

_SCALARS = (str, int, float, bool, type(None))


@dataclass
class Budget:
    """What is left of the nodes and bytes that several values share (a run's inputs)."""

    nodes: int
    bytes: int

    @classmethod
    def of(cls, settings: Settings) -> Budget:
        return cls(settings.max_input_nodes, settings.max_input_bytes)


def check_inputs(
    values: Mapping[str, Any], settings: Settings, kind: str = "input", budget: Budget | None = None
) -> None:
    """Check each named value (`kind` 'input' or 'option'), all of them against one budget."""
    budget = budget or Budget.of(settings)
    for name, value in values.items():
        check_value(value, f"{kind} {name!r}", kind, settings, budget)


def check_value(
    value: Any, what: str, kind: str, settings: Settings, budget: Budget | None = None
) -> None:
    """Raise InputError (code `<kind>_too_deep`, ...) when `value` breaks a limit; `what` names
    it in the message ("input 'x'"). Spends its nodes and bytes from `budget`."""
    budget = budget or Budget.of(settings)
    walk = _Walk(what, kind, settings, budget)
    walk.run(value)
    try:  # bounded depth and size now: this cannot recurse too far nor grow without limit
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:  # e.g. an int of more than 4300 digits
        raise walk.error("not_json", f"is not a JSON value ({exc})") from None
    size = len(text.encode("utf-8", "surrogatepass"))
    budget.bytes -= size - walk.counted
    if budget.bytes < 0:
        raise walk.too_large()


class _Walk:
    """One iterative pass over a value: types, depth, string lengths, keys, nodes."""

    def __init__(self, what: str, kind: str, settings: Settings, budget: Budget) -> None:
        self.what, self.kind, self.settings, self.budget = what, kind, settings, budget
        # bytes taken from the budget so far: a lower bound of the JSON size (no commas, no
        # colons, a byte per character), so a value refused on it is surely too large
        self.counted = 0

    def run(self, value: Any) -> None:
        """Walk `value` with the budget in locals and the common types inline: a package of
        1000 flows is ~100 000 nodes, checked at every submit."""
        depth_limit, longest = self.settings.max_input_depth, self.settings.max_input_string
        nodes, size = self.budget.nodes, self.budget.bytes
        stack: list[tuple[Any, int]] = [(value, 0)]
        pop = stack.pop
        while stack:
            item, depth = pop()
            nodes -= 1
            kind = type(item)
            if kind is str and len(item) <= longest:
                size -= len(item) + 2  # UTF-8 spends at least a byte on a character
            elif kind is dict or kind is list or kind is tuple:
                size -= 2  # "[]" or "{}"
                if depth >= depth_limit:
                    raise self.error(
                        "too_deep",
                        f"is nested deeper than {depth_limit} levels (or contains itself)",
                        limit="max_input_depth",
                        max=depth_limit,
                    )
                if kind is dict:
                    size -= self._keys(item)
                    stack.extend([(v, depth + 1) for v in item.values()])
                else:
                    stack.extend([(v, depth + 1) for v in item])
            else:
                size -= self._scalar(item)
            if nodes < 0 or size < 0:
                raise self._over(nodes)
        self.counted += self.budget.bytes - size
        self.budget.nodes, self.budget.bytes = nodes, size

    def _keys(self, item: dict[Any, Any]) -> int:
        """The bytes of an object's keys (at least); raises on too many or a bad one."""
        limit = self.settings.max_input_keys
        if len(item) > limit:
            raise self.error(
                "too_many_keys",
                f"has an object of {len(item)} keys (the limit is {limit})",
                limit="max_input_keys",
                max=limit,
            )
        size = 0
        for key in item:
            if not isinstance(key, _SCALARS):
                raise self.error("not_json", f"has a key of type {type(key).__name__}")
            size += self._scalar(key)
        return size

    def _scalar(self, item: Any) -> int:
        """The bytes of a scalar's JSON (at least); raises when it breaks a limit."""
        if isinstance(item, str):
            limit = self.settings.max_input_string
            if len(item) > limit:
                raise self.error(
                    "string_too_long",
                    f"has a string of {len(item)} characters (the limit is {limit})",
                    limit="max_input_string",
                    max=limit,
                )
            return len(item) + 2
        if isinstance(item, float) and not math.isfinite(item):
            raise self.error("not_json", f"holds {item!r}, which JSON cannot represent")
        if not isinstance(item, _SCALARS):
            raise self.error("not_json", f"holds a {type(item).__name__}, not a JSON value")
        return 1

    def _over(self, nodes: int) -> InputError:
        if nodes < 0:
            limit = self.settings.max_input_nodes
            return self.error(
                "too_large",
                f"takes the run over {limit} JSON nodes",
                limit="max_input_nodes",
                max=limit,
            )
        return self.too_large()

    def too_large(self) -> InputError:
        limit = self.settings.max_input_bytes
        return self.error(
            "too_large",
            f"takes the run over {limit} bytes of JSON",
            limit="max_input_bytes",
            max=limit,
        )

    def error(self, code: str, message: str, **details: Any) -> InputError:
        return InputError(
            f"{self.kind}_{code}", f"{self.what} {message}", {"name": self.what, **details}
        )
