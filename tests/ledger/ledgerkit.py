"""Helpers shared by the ledger tests (imported as ``ledgerkit``; the
fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
from collections.abc import AsyncIterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import redis
import redis.asyncio as aioredis

from server.ledger import Ledger
from server.local import Redis
from server.redis_pipe import RedisPipe

__all__ = ["Redis", "cid", "dirty", "dump", "flush", "ledger"]

REGION = "44"
INSURED = "440300"
INST = "H44030000001"
INST2 = "P44010000002"
#: 2026-03-01 16:00:00 UTC = 2026-03-02 00:00:00 in Beijing.
MIDNIGHT_MS = int(dt.datetime(2026, 3, 1, 16, 0, tzinfo=dt.UTC).timestamp() * 1000)
#: Mid-morning in Beijing on 2026-03-02.
NOW = MIDNIGHT_MS + 10 * 3_600_000


def cid(n: int) -> str:
    """A credential id, 32 upper-case hex digits."""
    return f"{n:032X}"


@contextlib.asynccontextmanager
async def ledger(url: str, region: str = REGION, *, via_pipe: bool = True, **client_kw) -> AsyncIterator[Ledger]:
    """A Ledger as the node builds one: scripts on a pipelined connection
    (server/redis_pipe.py), the rest on redis-py; `via_pipe=False` runs the
    scripts on redis-py too (what a Redis Cluster gets)."""
    # redis-py 8 raises MaxConnectionsError past its pool's default of 100
    # connections instead of waiting; the tests run 200 calls at once.
    client_kw.setdefault("max_connections", 512)
    client = aioredis.Redis.from_url(url, **client_kw)
    pipe = RedisPipe(url, timeout_s=client_kw.get("socket_timeout") or 5.0) if via_pipe else None
    try:
        yield Ledger(client, region, pipe)
    finally:
        await client.aclose()
        if pipe is not None:
            await pipe.aclose()


async def dump(r: aioredis.Redis) -> dict[str, object]:
    """Every key with its type, whole content and TTL."""
    out: dict[str, object] = {}
    async for raw in r.scan_iter(count=1000):
        key = raw.decode()
        kind = (await r.type(raw)).decode()
        if kind == "string":
            value: object = await r.get(raw)
        elif kind == "hash":
            value = sorted((await r.hgetall(raw)).items())
        elif kind == "list":
            value = await r.lrange(raw, 0, -1)
        elif kind == "stream":
            value = await r.xrange(raw)
        elif kind == "set":
            value = sorted(await r.smembers(raw))
        elif kind == "zset":
            value = await r.zrange(raw, 0, -1, withscores=True)
        else:  # pragma: no cover
            value = await r.dump(raw)
        out[key] = (kind, value, await r.pttl(raw))
    return out


async def dirty(r: aioredis.Redis) -> int:
    """Writes since the last save, as Redis counts them."""
    return int((await r.info("persistence"))["rdb_changes_since_last_save"])


def flush(url: str) -> None:
    with redis.Redis.from_url(url) as c:
        c.flushall()
