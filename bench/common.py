"""What the benches compute and print the same way: medians, percentiles, verdicts, tables, the
load average, progress lines on stderr and the closing block of failed checks.

Standard library only: `sandbox_cost.py`'s layer process imports it and must stay lean (it
stands in for the zygote, whose size is part of what it measures).
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


def med(values: Sequence[float]) -> float:
    """The median; nan when empty."""
    return statistics.median(values) if values else math.nan


def pct(values: Sequence[float], q: float) -> float:
    """q-th percentile (0-100), linear between closest ranks; nan when empty."""
    if not values:
        return math.nan
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo = math.floor(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def rank_pct(values: Sequence[float], q: float) -> float:
    """q-th percentile (0-100) by nearest rank, no interpolation (the API benches' figures);
    nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def verdict(value: float | None, limit: float) -> str:
    """PASS when `value` is at most `limit`, MISS above it, "?" when either is unknown."""
    if value is None or math.isnan(value) or math.isnan(limit):
        return "?"
    return "PASS" if value <= limit else "MISS"


@dataclass(frozen=True)
class Target:
    """A goal: `value` at most `limit`, in `unit`."""

    limit: float
    unit: str

    def text(self) -> str:
        return f"<={self.limit:g}{self.unit}"

    def verdict(self, value: float | None) -> str:
        return verdict(value, self.limit)


def fmt(value: float | None, digits: int = 3) -> str:
    """`value` to `digits` decimals; "-" for None."""
    return "-" if value is None else f"{value:.{digits}f}"


def fmt_known(value: float, digits: int = 3) -> str:
    """`value` to `digits` decimals; "-" for nan."""
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def table(head: list[str], rows: list[list[str]], indent: str = "") -> None:
    """Left-aligned columns as wide as their widest cell, a dashed line under the head."""
    body = [head, *rows]
    widths = [max(len(line[i]) for line in body) for i in range(len(head))]
    for i, line in enumerate(body):
        print(indent + "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            print(indent + "  ".join("-" * w for w in widths))


def load_text() -> str:
    """The 1, 5 and 15-minute load averages now."""
    return "load avg " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def load_change(before: float) -> str:
    """The 1-minute load average at the start (`before`) and now."""
    return f"load avg {before:.2f} -> {os.getloadavg()[0]:.2f}"


def timed(label: str, fn: Callable[[], Any]) -> Any:
    """`fn()`, with `label` and the seconds it took on stderr."""
    print(f"  {label} ...", end="", flush=True, file=sys.stderr)
    t0 = time.perf_counter()
    try:
        return fn()
    finally:
        print(f" {time.perf_counter() - t0:.1f} s", file=sys.stderr)


def step(label: str, fn: Callable[[], Any], failures: list[str]) -> None:
    """One measurement, as `timed`; an exception is recorded, the other measurements go on."""
    try:
        timed(label, fn)
    except Exception as exc:
        failures.append(f"{label}: {type(exc).__name__}: {exc}")


def print_failures(failures: list[str]) -> None:
    """Make failed output checks impossible to miss at the end of a bench run."""
    if failures:
        print("\n" + "!" * 72 + "\nOUTPUT CHECK FAILED:")
        for line in failures[:30]:
            print("  " + line)
        print("!" * 72)
