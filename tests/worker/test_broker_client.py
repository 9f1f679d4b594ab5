"""A kombu channel keeps one redis-py client (dizest_worker.broker_client): messages published,
received and acked through a real Redis build no client per message, and a channel whose pool
was replaced (a connection loss) gets a client of the new pool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Consumer, Exchange, Queue

from dizest_worker.celery_app import base_celery
from tests.worker.conftest import make_settings


def counting_clients(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many redis.Redis objects are built from now on (the real constructor runs)."""
    built = [0]
    real = redis.Redis.__init__

    def init(self: Any, *args: Any, **kw: Any) -> None:
        built[0] += 1
        real(self, *args, **kw)

    monkeypatch.setattr(redis.Redis, "__init__", init)
    return built


def test_messages_and_acks_reuse_the_channels_client(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(redis_url, tmp_path)
    app = base_celery("t", settings)
    queue = Queue(settings.queue, Exchange(settings.queue), settings.queue)
    received: list[Any] = []
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        consumer = Consumer(channel, [queue], callbacks=[lambda body, m: received.append(m)])
        with consumer:
            producer = app.amqp.Producer(channel)
            producer.publish({"n": 0}, exchange=queue.exchange, routing_key=settings.queue)
            conn.drain_events(timeout=10)
            received.pop().ack()
            built = counting_clients(monkeypatch)
            for n in range(1, 21):
                producer.publish({"n": n}, exchange=queue.exchange, routing_key=settings.queue)
                conn.drain_events(timeout=10)
                message = received.pop()
                assert message.payload == {"n": n}
                message.ack()
            assert built[0] == 0  # kombu alone built 2 or more a message
            first = channel._create_client()
            assert channel._create_client() is first
            channel._pool = None  # what kombu does when it drops a broken connection's pool
            again = channel._create_client()
            assert again is not first and again.connection_pool is channel.pool
            assert again.ping()
        with redis.Redis.from_url(redis_url) as plain:
            assert plain.llen(settings.queue) == 0  # every message taken
