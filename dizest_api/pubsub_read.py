"""Reading the events channel's pubsub without waiting, and without losing the subscription.

The event hub reads whatever messages are waiting at once, as one batch. `get_message(timeout=0)`
did that, but under load a message only partly arrived made its read time out at once, and
redis-py then reconnected: the hub lost its subscription, and with it what was published
meanwhile (its streams catch up from the run's stream, a 0.5 s gap in live events). So a read
starts only when some of a message is there, and may take a while for the rest.
"""

from __future__ import annotations

from typing import Any

REST_OF_MESSAGE_S = 1.0  # to read the rest of a message begun


def waiting(pubsub: Any) -> Any:
    """The next message if some of it has arrived, else None, without waiting for one."""
    conn = pubsub.connection
    if conn is None or not conn.can_read(timeout=0):
        return None
    return pubsub.get_message(timeout=REST_OF_MESSAGE_S)
