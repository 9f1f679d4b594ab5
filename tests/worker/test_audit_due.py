"""A worker that lives on after losing a BRPOP reply with its connection asks for a
lost-message audit (dizest_worker.broker_fix, dizest_worker.audit_due): that reply may have
carried a message Redis had popped, now in no list and in no unacked hash, and no worker died to
start an audit. Against a real Redis and kombu's real Redis channel, whose BRPOP connection is
killed by the server while the BRPOP waits (as a Redis restart or a reset network does)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kombu
import pytest
import redis

from dizest_worker import audit_due, broker_fix
from dizest_worker.keys import Keys
from tests.conftest import wait_for
from tests.redis_server import EmbeddedRedis, free_port
from tests.worker.conftest import cleanup, make_settings


@pytest.fixture
def told() -> Iterator[list[int]]:
    """The `on_lost_reply` hook's calls, while the test runs."""
    broker_fix.install()
    calls: list[int] = []

    def hook() -> None:
        calls.append(1)

    broker_fix.on_lost_reply(hook)
    yield calls
    broker_fix._LOST_REPLY_HOOKS.remove(hook)


def waiting_brpop(conn: kombu.Connection, queue: str) -> tuple[Any, int]:
    """A channel consuming `queue` with its BRPOP sent and waiting, as the worker's poller has
    it (`_register_BRPOP`); the id of that BRPOP's connection."""
    channel: Any = conn.channel()
    channel.basic_consume(queue, False, lambda message: None, f"tag-{queue}")
    connection = channel.client.connection = channel.client.connection_pool.get_connection()
    connection.send_command("CLIENT", "ID")
    client_id = int(connection.read_response())
    conn.transport.cycle._register_BRPOP(channel)  # type: ignore[attr-defined]
    assert channel._in_poll is connection  # the BRPOP waits on that connection
    return channel, client_id


def test_a_brpop_reply_lost_with_its_connection_is_told_and_the_close_still_completes(
    redis_url: str, told: list[int]
) -> None:
    killer = redis.Redis.from_url(redis_url)
    conn = kombu.Connection(redis_url)
    queue = f"q{uuid.uuid4().hex[:10]}"
    try:
        channel, client_id = waiting_brpop(conn, queue)
        killer.client_kill_filter(_id=client_id)
        with pytest.raises(channel.connection_errors):
            channel._brpop_read()  # as the poller does when the socket turns readable
        assert told == [1]
        channel.close()  # nothing pending: nothing more is told
        assert told == [1]

        channel, client_id = waiting_brpop(conn, queue)
        killer.client_kill_filter(_id=client_id)
        channel.close()  # reads the pending reply, loses it, and closes all the same
        assert told == [1, 1]
        assert channel.closed

        channel, _ = waiting_brpop(conn, queue)
        killer.lpush(f"{queue}", b"not a message of ours")  # a reply that arrives is not lost
        with pytest.raises(Exception) as raised:
            channel._brpop_read()
        assert not isinstance(raised.value, channel.connection_errors)
        assert told == [1, 1]
    finally:
        conn.release()
        killer.delete(queue)
        killer.close()


def test_the_audit_is_asked_for_once_redis_answers_again(tmp_path: Path) -> None:
    port = free_port()
    server = EmbeddedRedis(tmp_path / "redis", port=port)
    settings = make_settings(server.url, tmp_path)
    key = Keys(settings.prefix).audit_due
    try:
        server.stop()  # the loss came with Redis going away
        audit_due.lost_a_reply(settings)
        assert audit_due.lost_any()
        server = EmbeddedRedis(tmp_path / "redis", port=port)
        client = redis.Redis.from_url(server.url)
        wait_for(lambda: client.exists(key), timeout=15)
        client.delete(key)
        audit_due.lost_a_reply(settings)  # a later loss asks again
        wait_for(lambda: client.exists(key), timeout=15)
    finally:
        cleanup(settings)
        server.stop()
