"""RedisPipe's durable writes on a real primary with a real replica: a
write is answered once the replica holds it, the writes of one turn share
one WAIT, a stopped replica turns into NotReplicated within the replica
timeout (never a stalled connection), and the pipe recovers with it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.local import Redis
from server.redis_pipe import NotReplicated, RedisPipe


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Redis, Redis]]:
    # No delay before the first full sync (5 s by default).
    primary = Redis(tmp_path / "primary", appendfsync="always", extra=("--repl-diskless-sync-delay", "0")).start()
    replica = Redis(tmp_path / "replica", appendfsync="always", extra=("--replicaof", "127.0.0.1", str(primary.port)))
    replica.start()
    try:
        deadline = time.monotonic() + 10
        while b"master_link_status:up" not in replica.command("INFO", "replication"):
            assert time.monotonic() < deadline, "the replica did not connect"
            time.sleep(0.05)
        yield primary, replica
    finally:
        replica.resume()
        replica.kill()
        primary.kill()


def _waits(primary: Redis) -> int:
    for line in primary.command("INFO", "commandstats").decode().splitlines():
        if line.startswith("cmdstat_wait:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def test_a_durable_write_is_on_the_replica_when_answered(pair: tuple[Redis, Redis]) -> None:
    primary, replica = pair

    async def run() -> None:
        pipe = RedisPipe(f"redis://127.0.0.1:{primary.port}/0", min_replicas=1, replica_timeout_ms=2000)
        try:
            await pipe.execute("PING")  # connected: the writes below all go out in one turn
            await asyncio.gather(*(pipe.execute_durable("SET", f"k{i}", i) for i in range(200)))
        finally:
            await pipe.aclose()

    before = _waits(primary)
    asyncio.run(run())
    # Asked of the replica itself, right away: every write is already there.
    assert [replica.command("GET", f"k{i}") for i in range(200)] == [str(i).encode() for i in range(200)]
    # Two hundred writes from one turn of the event loop: one WAIT covered them.
    assert _waits(primary) - before == 1


def test_a_stopped_replica_means_not_replicated_and_a_working_pipe_after(pair: tuple[Redis, Redis]) -> None:
    primary, replica = pair

    async def run() -> tuple[list[BaseException | object], float, object, object]:
        pipe = RedisPipe(f"redis://127.0.0.1:{primary.port}/0", min_replicas=1, replica_timeout_ms=200)
        try:
            replica.pause()
            started = time.monotonic()
            # Five turns of writes while the replica is stopped: each waits
            # for one WAIT at most, not for the WAITs of the turns before.
            results: list[BaseException | object] = []
            for turn in range(5):
                results += await asyncio.gather(
                    *(pipe.execute_durable("SET", f"t{turn}-{i}", "x") for i in range(10)), return_exceptions=True
                )
            took = time.monotonic() - started
            plain = await pipe.execute("GET", "t0-0")  # not a durable write: answered as usual
            replica.resume()
            # Back in step once it has read what piled up while it was stopped.
            after: object = None
            for _ in range(50):
                try:
                    after = await pipe.execute_durable("SET", "after", "1")
                    break
                except NotReplicated:
                    continue
            return results, took, plain, after
        finally:
            replica.resume()
            await pipe.aclose()

    results, took, plain, after = asyncio.run(run())
    assert all(isinstance(r, NotReplicated) for r in results), results
    assert "0 of the 1 replicas" in str(results[0])
    assert took < 5 * 0.2 + 1.0, f"five turns took {took:.2f} s: WAITs queued behind one another"
    assert plain == b"x"  # the write stands on the primary: NotReplicated is not a refusal
    assert after == b"OK"


def test_without_replicas_required_no_wait_is_sent(pair: tuple[Redis, Redis]) -> None:
    primary, _ = pair

    async def run() -> None:
        pipe = RedisPipe(f"redis://127.0.0.1:{primary.port}/0")
        try:
            await asyncio.gather(*(pipe.execute_durable("SET", f"n{i}", i) for i in range(10)))
        finally:
            await pipe.aclose()

    before = _waits(primary)
    asyncio.run(run())
    assert _waits(primary) == before


@pytest.mark.parametrize(
    ("url", "kwargs"),
    [
        ("redis+cluster://127.0.0.1:7000", {}),  # a cluster pipe serves one slot: it must be named
        ("redis://127.0.0.1:7000/0", {"min_replicas": -1}),
        ("redis://127.0.0.1:7000/0", {"replica_timeout_ms": 0}),
    ],
)
def test_bad_settings_are_refused(url: str, kwargs: dict) -> None:
    with pytest.raises(ValueError, match="RedisPipe"):
        RedisPipe(url, **kwargs)
