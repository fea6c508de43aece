"""The national stream's position and trim check on a real redis-server: a
node that read the stream empty ("0-0") must not take the events that came
after as lost (it reloaded everything, and a worker of a node starting
beside another one's trust-list publication loaded twice), and events that
were trimmed before it read them must count as lost."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from server.local import Redis
from server.national import EVENTS, NationalStore


@pytest.fixture()
def store_url(tmp_path: Path) -> Iterator[str]:
    r = Redis(tmp_path / "redis").start()
    try:
        yield r.url
    finally:
        r.stop()


def _run(url: str, check: Callable[[NationalStore], Awaitable[None]]) -> None:
    async def run() -> None:
        store = NationalStore(url)
        try:
            await check(store)
        finally:
            await store.close()

    asyncio.run(run())


async def _add(store: NationalStore) -> bytes:
    return bytes(await store.redis.xadd(EVENTS, {"op": "trust", "id": "", "arg": ""}))


def test_events_after_an_empty_stream_are_not_lost(store_url: str) -> None:
    async def check(store: NationalStore) -> None:
        assert await store.position() == b"0-0"
        assert not await store.trimmed_past(b"0-0")
        first = await _add(store)
        await _add(store)
        assert not await store.trimmed_past(b"0-0")
        assert not await store.trimmed_past(first)

    _run(store_url, check)


def test_trimmed_events_are_lost_and_an_emptied_stream_keeps_its_position(store_url: str) -> None:
    async def check(store: NationalStore) -> None:
        first = await _add(store)
        second = await _add(store)
        await store.redis.xtrim(EVENTS, minid=second, approximate=False)
        assert await store.trimmed_past(b"0-0"), "the first event is gone"
        assert not await store.trimmed_past(second)
        await store.redis.xtrim(EVENTS, maxlen=0, approximate=False)
        assert await store.position() == second, "trimmed empty, the position is still the last event's"
        assert not await store.trimmed_past(second)
        assert await store.trimmed_past(b"0-0")
        third = await _add(store)
        assert await store.trimmed_past(first)
        assert not await store.trimmed_past(third)

    _run(store_url, check)
