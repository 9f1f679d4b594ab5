"""The run options as command-line flags, one set for `dizest run`, `dizest submit` and
`dizest workflows run`: each names one of dizest_core.options.RUN_OPTIONS, and the command gets
the ones given as one `options` dict (what the engine or the server then validates whole, with
the package's own options and the server's bounds)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from dizest_core.options import MAX_RETRIES, RUN_OPTIONS
from dizest_core.settings import MAX_CPUS, MAX_MEMORY_MB, MIN_CPUS, MIN_MEMORY_MB, NETWORKS

F = TypeVar("F", bound=Callable[..., Any])

_FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "flow_timeout": (
        "--flow-timeout",
        {
            "type": click.FloatRange(min=0, min_open=True),
            "metavar": "S",
            "help": "Per-flow wall-clock limit (s); the flow's process group is killed.",
        },
    ),
    "memory_limit_mb": (
        "--memory-limit",
        {
            "type": click.IntRange(MIN_MEMORY_MB, MAX_MEMORY_MB),
            "metavar": "MB",
            "help": "Per-flow memory cap.",
        },
    ),
    "cpus": (
        "--cpus",
        {
            "type": click.FloatRange(MIN_CPUS, MAX_CPUS),
            "metavar": "N",
            "help": "The most CPUs a flow's processes use at once (e.g. 0.5, 2).",
        },
    ),
    "network": (
        "--network",
        {
            "type": click.Choice(NETWORKS),
            "help": "A flow's network: none, egress (outgoing connections only) or full.",
        },
    ),
    "retries": (
        "--retries",
        {
            "type": click.IntRange(0, MAX_RETRIES),
            "help": "Retries of a failing flow (backoff DIZEST_RETRY_BACKOFF_S, doubled each time).",
        },
    ),
}
assert set(_FLAGS) == set(RUN_OPTIONS), "a run option without its flag, or a flag without one"


def run_option_flags(command: F) -> F:
    """Add a flag per run option to `command`, which takes `options: dict[str, Any]` instead:
    the flags given, by run option name (a flow's or app's own `"dizest"` options come first)."""

    @functools.wraps(command)
    def with_options(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in _FLAGS}
        options = {name: value for name, value in given.items() if value is not None}
        return command(*args, options=options, **kwargs)

    decorated: Any = with_options
    for name, (flag, settings) in reversed(_FLAGS.items()):
        decorated = click.option(flag, name, **settings)(decorated)
    return decorated  # type: ignore[no-any-return]


idempotency_option = click.option(
    "--idempotency-key",
    metavar="KEY",
    help="Start the run once: a submit with a key used before (1 to 200 characters) answers "
    "that key's run and starts nothing; retry a submit that timed out with the same key.",
)
