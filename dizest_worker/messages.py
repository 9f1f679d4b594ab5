"""Flow task messages: what one broker message holds (one attempt, or a batch of one run's), how
many go in a batch, and the priority level a message is sent at.

The level is a property of the broker message, not of its payload: `Plan.level` of the flow,
0 the most urgent (the longest path still ahead), PRIORITY_LEVELS of them, which is what kombu's
Redis transport orders by (one list per level, level 0 first). No Celery here (see celery_app).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dizest_core.errors import DizestError
from dizest_worker.context import RunContext

if TYPE_CHECKING:
    import redis

MAX_BATCH = 64
PRIORITY_LEVELS = 10  # kombu's Redis transport: priorities 0-9
RUN_FLOW = "dizest.run_flow"  # the Celery task every flow message is for
KOMBU_SEP = "\x06\x16"  # between a queue's name and its level, in kombu's list names


class InvalidTask(DizestError, ValueError):
    """A task message that does not describe a flow attempt."""


@dataclass(frozen=True)
class FlowTask:
    """The message of one flow attempt; validates itself."""

    run_id: str
    flow_id: str
    attempt: int = 1
    # its message's priority level; a resend made without the run's plan at hand goes first
    level: int = field(default=0, compare=False)

    @classmethod
    def decode(cls, payload: Any) -> FlowTask:
        if not isinstance(payload, dict):
            raise InvalidTask(f"task payload must be an object, not {type(payload).__name__}")
        run_id, flow_id, attempt = (
            payload.get("run_id"),
            payload.get("flow_id"),
            payload.get("attempt", 1),
        )
        if not isinstance(run_id, str) or not run_id or not isinstance(flow_id, str) or not flow_id:
            raise InvalidTask("task payload needs non-empty 'run_id' and 'flow_id' strings")
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
            raise InvalidTask("task 'attempt' must be a positive integer")
        return cls(run_id, flow_id, attempt)

    def encode(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "flow_id": self.flow_id, "attempt": self.attempt}


def flow_task(ctx: RunContext, flow_id: str, attempt: int = 1) -> FlowTask:
    """The task of a flow attempt, at its flow's priority level in the run's plan."""
    return FlowTask(ctx.run_id, flow_id, attempt, ctx.plan.level(flow_id, PRIORITY_LEVELS))


def decode_tasks(payload: Any) -> list[FlowTask]:
    """A message is one task (an object) or a batch of tasks of one run (a list of them)."""
    items = payload if isinstance(payload, list) else [payload]
    if not items or len(items) > MAX_BATCH:
        raise InvalidTask(f"a task batch holds 1 to {MAX_BATCH} tasks, not {len(items)}")
    tasks = [FlowTask.decode(item) for item in items]
    if len({t.run_id for t in tasks}) != 1:
        raise InvalidTask("the tasks of one batch must belong to one run")
    return tasks


def chunked(tasks: list[FlowTask]) -> list[list[FlowTask]]:
    """Split many tasks of one run and queue into batches of one level each, most urgent level
    first, in the order given within a level: fewer broker messages, yet enough of them
    (about 8) for several workers to share."""
    levels: dict[int, list[FlowTask]] = {}
    for task in tasks:
        levels.setdefault(task.level, []).append(task)
    size = max(1, min(MAX_BATCH // 4, len(tasks) // 8))
    return [
        group[i : i + size]
        for _, group in sorted(levels.items())
        for i in range(0, len(group), size)
    ]


def broker_lists(queue: str) -> list[str]:
    """The Redis lists kombu keeps `queue`'s messages in, level 0 (the queue's own name) first."""
    return [queue, *(f"{queue}{KOMBU_SEP}{level}" for level in range(1, PRIORITY_LEVELS))]


def queue_depth(client: redis.Redis, queue: str) -> int:
    """Messages waiting in `queue`, at every priority level (one pipelined round trip)."""
    pipe = client.pipeline(transaction=False)
    for name in broker_lists(queue):
        pipe.llen(name)
    return sum(int(n) for n in pipe.execute())


def has_backlog(client: redis.Redis, queue: str) -> bool:
    """Whether a message waits in `queue` at any level: one EXISTS over its lists (Redis drops
    an empty list), cheaper than counting them."""
    return int(client.exists(*broker_lists(queue))) > 0


Enqueue = Callable[[list[tuple[FlowTask, str]], float], None]  # [(task, queue)], countdown
