"""Commands sent at once on one pooled connection (`dizest_worker.round_trip`): raw replies in
order, an error reply raised without leaving its connection to the next caller, a dropped
connection ridden out as the client's own commands ride it out, a script the server forgot
loaded again."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import redis

from dizest_worker.connection import redis_client
from dizest_worker.round_trip import round_trip, run_script
from tests.conftest import wait_for
from tests.worker.conftest import make_settings, redis_url  # noqa: F401


@pytest.fixture
def client(redis_url: str, tmp_path: Path) -> redis.Redis:  # noqa: F811
    return redis_client(make_settings(redis_url, tmp_path))


def test_replies_come_raw_and_in_order(client: redis.Redis, tmp_path: Path) -> None:
    key, stream = f"{tmp_path.name}:h", f"{tmp_path.name}:s"
    client.hset(key, "status", "running")
    client.xadd(stream, {"e": "one", "n": "1"}, id="1-1")
    try:
        status, entries, missing = round_trip(
            client, ("HGET", key, "status"), ("XRANGE", stream, "-", "+"), ("HGET", key, "x")
        )
    finally:
        client.delete(key, stream)
    assert status == b"running"
    assert entries == [[b"1-1", [b"e", b"one", b"n", b"1"]]]  # no response callback
    assert missing is None


def test_an_error_reply_raises_and_leaves_no_reply_for_the_next_caller(
    client: redis.Redis, tmp_path: Path
) -> None:
    """The reply after an error one may not have come yet when the pool lends the connection
    again (its check sees no data): the next caller must not read it as its own."""
    key = f"{tmp_path.name}:text"
    client.set(key, "not a number")
    try:
        with pytest.raises(redis.ResponseError):  # then a reply 0.3 s later, never read
            round_trip(client, ("INCR", key), ("BLPOP", f"{tmp_path.name}:empty", 0.3))
        assert round_trip(client, ("ECHO", "mine")) == [b"mine"]
    finally:
        client.delete(key)


def test_a_connection_dropped_during_a_call_is_ridden_out(
    client: redis.Redis,
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The server drops the connection while the call waits for its reply: the call is made
    again on a new connection (the client's retries), not failed."""
    (mine,) = round_trip(client, ("CLIENT", "ID"))  # the connection the next call is lent
    other = redis.Redis.from_url(redis_url)

    def drop_it() -> None:
        wait_for(lambda: b"cmd=blpop" in other.execute_command("CLIENT", "LIST", "ID", mine))
        other.client_kill_filter(_id=mine)

    killer = threading.Thread(target=drop_it)
    killer.start()
    try:
        assert round_trip(client, ("BLPOP", f"{tmp_path.name}:empty", 1)) == [None]
    finally:
        killer.join()
        other.close()
    assert round_trip(client, ("CLIENT", "ID"))[0] != mine


def test_a_script_the_server_does_not_know_is_loaded_again(client: redis.Redis) -> None:
    script = client.register_script("return {KEYS[1], ARGV[1]}")
    script.sha = "0" * 40  # as after a restart or SCRIPT FLUSH: NOSCRIPT for the one it had
    assert run_script(client, script, ["k"], ["v"]) == [b"k", b"v"]
    assert run_script(client, script, ["k2"], ["v2"]) == [b"k2", b"v2"]
