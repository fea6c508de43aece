"""server/redis_pipe.py against a real redis-server: replies matched to
commands under pipelining, error replies, scripts Redis has forgotten,
AUTH and SELECT, a server that stops answering, one that dies and comes back."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time

import nodekit
import pytest
import redis
from redis.exceptions import ResponseError

from server.national import _ADMIT
from server.redis_pipe import RedisPipe, Script, supports


def test_supports_plain_and_unix_urls_only() -> None:
    assert supports("redis://127.0.0.1:6379/0")
    assert supports("unix:///run/redis.sock?db=2")
    assert not supports("rediss://127.0.0.1:6380/0")
    assert not supports("redis+cluster://127.0.0.1:7000")
    with pytest.raises(ValueError, match="rediss://"):
        RedisPipe("rediss://127.0.0.1:6380/0")


def test_many_commands_in_flight_get_their_own_replies(redis_server) -> None:
    db = redis_server.next_db()

    async def main() -> None:
        pipe = RedisPipe(redis_server.url(db))
        await asyncio.gather(*(pipe.execute("SET", f"k{i}", i) for i in range(500)))
        values = await asyncio.gather(*(pipe.execute("GET", f"k{i}") for i in range(500)))
        assert values == [str(i).encode() for i in range(500)]
        # the database of the URL, not database 0
        assert redis.Redis.from_url(redis_server.url(db)).get("k7") == b"7"
        assert redis.Redis.from_url(redis_server.url(0)).get("k7") is None
        await pipe.aclose()

    asyncio.run(main())


def test_error_reply_is_a_response_error_and_the_stream_stays_in_step(redis_server) -> None:
    async def main() -> None:
        pipe = RedisPipe(redis_server.url(redis_server.next_db()))
        results = await asyncio.gather(
            pipe.execute("SET", "a", "1"), pipe.execute("INCR", "a", "too many"), pipe.execute("GET", "a"),
            return_exceptions=True,
        )
        assert results[0] == b"OK"
        assert isinstance(results[1], ResponseError) and "wrong number of arguments" in str(results[1])
        assert results[2] == b"1"
        await pipe.aclose()

    asyncio.run(main())


def test_script_is_loaded_again_after_script_flush(redis_server) -> None:
    url = redis_server.url(redis_server.next_db())

    async def main() -> None:
        pipe = RedisPipe(url)
        admit = Script(pipe, _ADMIT)
        assert await admit(keys=["r1", "r2"], args=["first", 60_000, "second", 60_000]) == [1, 1]
        redis.Redis.from_url(url).script_flush()
        assert await admit(keys=["r1", "r3"], args=["again", 60_000, "third", 60_000]) == [b"first", 1]
        assert await admit(keys=["r3"], args=["later", 60_000]) == [b"third"]
        await pipe.aclose()

    asyncio.run(main())


def test_auth_with_password_from_the_url(tmp_path) -> None:
    port = nodekit.free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--requirepass", "s3cret", "--dir", str(tmp_path), "--logfile", str(tmp_path / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    try:
        _wait_listening(port)

        async def set_after(turns: int, pipe: RedisPipe) -> None:
            for _ in range(turns):
                await asyncio.sleep(0)
            assert await pipe.execute("SET", f"k{turns}", turns) == b"OK"

        async def main() -> None:
            pipe = RedisPipe(f"redis://:s3cret@127.0.0.1:{port}/3")
            # Callers one event-loop turn apart, from before the connection
            # exists until after it has authenticated and selected database
            # 3: none may slip in between AUTH and SELECT.
            await asyncio.gather(*(set_after(turns, pipe) for turns in range(300)))
            await pipe.aclose()
            wrong = RedisPipe(f"redis://:nope@127.0.0.1:{port}/0")
            with pytest.raises(ResponseError, match="WRONGPASS|invalid password"):
                await wrong.execute("PING")
            await wrong.aclose()

        asyncio.run(main())
        assert redis.Redis(port=port, password="s3cret", db=3).dbsize() == 300
        assert redis.Redis(port=port, password="s3cret", db=0).dbsize() == 0
    finally:
        proc.terminate()
        proc.wait(10)


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server on port {port} did not start")


def test_a_server_that_stops_answering_times_out_then_recovers(private_redis) -> None:
    async def main() -> None:
        pipe = RedisPipe(private_redis.url(), timeout_s=0.3)
        assert await pipe.execute("PING") == b"PONG"
        os.kill(private_redis.proc.pid, signal.SIGSTOP)
        try:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            with pytest.raises(TimeoutError, match="within 0.3 s"):
                await pipe.execute("PING")
            assert 0.25 <= loop.time() - t0 < 2.0
        finally:
            os.kill(private_redis.proc.pid, signal.SIGCONT)
        assert await pipe.execute("PING") == b"PONG"  # a new connection
        await pipe.aclose()

    asyncio.run(main())


def test_commands_in_flight_fail_when_redis_dies_and_the_next_reconnects(private_redis) -> None:
    async def main() -> None:
        pipe = RedisPipe(private_redis.url(), timeout_s=5.0)
        assert await pipe.execute("PING") == b"PONG"
        os.kill(private_redis.proc.pid, signal.SIGSTOP)
        in_flight = asyncio.ensure_future(pipe.execute("PING"))
        await asyncio.sleep(0.1)
        private_redis.kill9()
        with pytest.raises(ConnectionError):
            await in_flight
        with pytest.raises(OSError):  # nothing listens: refused
            await pipe.execute("PING")
        private_redis.restart()
        assert await pipe.execute("PING") == b"PONG"
        await pipe.aclose()

    asyncio.run(main())

