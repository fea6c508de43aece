"""The national store on Redis: revocations and channel withdrawals (a hash
each, plus a stream every node follows so no update is lost while it is
away), the replay record, the shared trust list and the token key.

Every state change is one Lua script that updates the hash and appends to
the stream atomically, so a node that loads the hashes and then follows the
stream from the position it read first can never miss a change.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisError

import yibao_core
from server import redis_pipe

log = logging.getLogger(__name__)

# One hash tag: the national mirror's keys live in one Redis Cluster slot, so
# each script touches one node.
REVOKED = "{yibao}:revoked"
WITHDRAWN = "{yibao}:withdrawn"
EVENTS = "{yibao}:events"
TRUST_LIST = "{yibao}:trust-list"
TOKEN_KEY = "{yibao}:token-key"
REPLAY_PREFIX = "yibao:replay:"
CLUSTER_SCHEME = redis_pipe.CLUSTER_SCHEME
# Enough history for a node that was away for a long while; a node that
# falls further behind reloads the hashes.
EVENTS_MAXLEN = 1_000_000
# The follower touches the store at least every 0.5 s while it answers (it
# blocks in XREAD that long): no contact for longer than this means it is away.
CONTACT_LOST_S = 1.5

CHANNELS = range(1, 6)

_MUTATE = """
local op, id = ARGV[1], ARGV[2]
local before
if op == 'revoke' then
  before = redis.call('HGET', KEYS[1], id)
  redis.call('HSET', KEYS[1], id, ARGV[3])
elseif op == 'restore' then
  before = redis.call('HGET', KEYS[1], id)
  redis.call('HDEL', KEYS[1], id)
else
  local bit = 2 ^ tonumber(ARGV[3])
  local mask = tonumber(redis.call('HGET', KEYS[2], id) or '0')
  before = (math.floor(mask / bit) % 2 == 1) and 1 or 0
  if op == 'withdraw' and before == 0 then mask = mask + bit end
  if op == 'restore_channel' and before == 1 then mask = mask - bit end
  if mask == 0 then redis.call('HDEL', KEYS[2], id) else redis.call('HSET', KEYS[2], id, mask) end
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'op', op, 'id', id, 'arg', ARGV[3])
return before
"""

# KEYS: replay keys; ARGV: value, ttl_ms for each. Returns 1 where the key was
# new, else the value recorded by the first acceptance.
_ADMIT = """
local out = {}
for i = 1, #KEYS do
  if redis.call('SET', KEYS[i], ARGV[2 * i - 1], 'NX', 'PX', ARGV[2 * i]) then
    out[i] = 1
  else
    out[i] = redis.call('GET', KEYS[i]) or 1
  end
end
return out
"""

_PUBLISH_TRUST = """
redis.call('SET', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'op', 'trust', 'id', '', 'arg', '')
return 1
"""

# KEYS: 1 revoked hash, 2 events. ARGV: 1 maxlen, 2 the batch as
# "ID:REASON,ID:REASON,...", then id, reason pairs. One event for the batch.
_REVOKE_BATCH = """
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'op', 'revoke_batch', 'id', '', 'arg', ARGV[2])
return (#ARGV - 2) / 2
"""

_SET_TOKEN_KEY = """
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
"""


class StoreUnavailable(Exception):
    """The national store cannot be reached."""


class NationalStore:
    def __init__(
        self,
        url: str,
        *,
        on_error: Callable[[], None] = lambda: None,
        min_replicas: int = 0,
        replica_timeout_ms: int = 500,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        """`observe` is given the seconds of each replay script. `min_replicas`: how many replicas must hold a revocation change,
        a trust-list publication or the token key before it is answered
        (WAIT, on a pipe of its own so that a slow replica never delays the
        replay record's script)."""
        self._url = url
        self.cluster = url.startswith(CLUSTER_SCHEME)
        self.redis = client(url, socket_timeout=1.0)
        # The follower blocks in XREAD, so it has a connection of its own.
        self._follower = client(url, socket_timeout=2.0)
        if not redis_pipe.supports(url, slot_key=EVENTS):
            if min_replicas:
                raise ValueError(f"min_replicas {min_replicas} needs a redis://, unix:// or {CLUSTER_SCHEME} URL")
            self._writes = None
        else:
            self._writes = redis_pipe.RedisPipe(
                url, timeout_s=1.0, slot_key=EVENTS, min_replicas=min_replicas, replica_timeout_ms=replica_timeout_ms
            )

        def durable(source: str) -> Callable[..., Awaitable[Any]]:
            if self._writes is None:
                return self.redis.register_script(source)  # type: ignore[no-any-return]
            return redis_pipe.Script(self._writes, source, durable=True)

        self._mutate = durable(_MUTATE)
        self._revoke_batch = durable(_REVOKE_BATCH)
        self._set_token_key = durable(_SET_TOKEN_KEY)
        # The replay script runs for every batch: on a standalone server it
        # has a pipelined connection of its own (server/redis_pipe.py).
        self._pipe = redis_pipe.RedisPipe(url, timeout_s=1.0, observe=observe) if redis_pipe.supports(url) else None
        self._admit: Callable[..., Awaitable[Any]] = (
            redis_pipe.Script(self._pipe, _ADMIT) if self._pipe is not None else self.redis.register_script(_ADMIT)
        )
        self._publish_trust = durable(_PUBLISH_TRUST)
        self._on_error = on_error
        self.last_contact = time.monotonic()

    async def ping(self) -> None:
        try:
            await self.redis.ping()
        except (RedisError, OSError) as e:
            raise StoreUnavailable(f"cannot reach the national store at {self._url}: {e}") from e
        self.touch()

    def touch(self) -> None:
        self.last_contact = time.monotonic()

    def since_contact(self) -> float:
        """Seconds since the store last answered; above CONTACT_LOST_S it is away."""
        return time.monotonic() - self.last_contact

    def failed(self) -> None:
        self._on_error()

    async def close(self) -> None:
        for pipe in (self._pipe, self._writes):
            if pipe is not None:
                await pipe.aclose()
        await self.redis.aclose()
        await self._follower.aclose()

    # --- the token key, shared by every node so any node accepts any token ---

    async def token_key(self) -> bytes:
        # Durable: a key lost in a failover would be made anew by the next
        # node to start, and the nodes would refuse each other's tokens.
        key = await self._set_token_key(keys=[TOKEN_KEY], args=[secrets.token_bytes(32)])
        if not isinstance(key, bytes) or len(key) != 32:
            raise StoreUnavailable(f"{TOKEN_KEY} holds no 32-byte key")
        return key

    # --- revocations and channel withdrawals ---

    async def mutate(self, op: str, credential_id: str, arg: str = "") -> bool:
        """Apply one change and append it to the event stream; True if the
        state before was revoked / withdrawn."""
        before = await self._mutate(keys=[REVOKED, WITHDRAWN, EVENTS], args=[op, credential_id, arg, EVENTS_MAXLEN])
        self.touch()
        return before not in (None, 0, b"0")

    async def revoke_batch(self, revocations: Sequence[tuple[str, str]]) -> str:
        """Record (credential id, reason) pairs in one script with one event;
        returns the batch as the event carries it (for the local mirror)."""
        packed = ",".join(f"{cid}:{reason}" for cid, reason in revocations)
        await self._revoke_batch(
            keys=[REVOKED, EVENTS], args=[EVENTS_MAXLEN, packed, *(x for pair in revocations for x in pair)]
        )
        self.touch()
        return packed

    async def load_mirror(self) -> tuple[yibao_core.RevocationSet, bytes]:
        """A fresh mirror from the hashes and the stream position to follow
        from. The position is read first, so events after it that the hashes
        already show are applied twice, which is harmless: every event sets
        a state rather than toggling one."""
        last = await self.redis.xrevrange(EVENTS, count=1)
        position = last[0][0] if last else b"0-0"
        mirror = yibao_core.RevocationSet()
        by_reason: dict[str, bytearray] = {}
        async for cid, reason in self.redis.hscan_iter(REVOKED, count=10_000):
            by_reason.setdefault(reason.decode(), bytearray()).extend(bytes.fromhex(cid.decode()))
        for reason, ids in by_reason.items():
            mirror.revoke_many(bytes(ids), reason)
        async for cid, mask in self.redis.hscan_iter(WITHDRAWN, count=10_000):
            for channel in CHANNELS:
                if int(mask) >> channel & 1:
                    mirror.withdraw_channel(cid.decode(), channel)
        self.touch()
        return mirror, position

    async def events_since(self, position: bytes, block_ms: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Events after `position`, waiting up to block_ms for the first."""
        reply = await self._follower.xread({EVENTS: position}, block=block_ms, count=10_000)
        self.touch()
        return reply[0][1] if reply else []

    async def trimmed_past(self, position: bytes) -> bool:
        """Has the stream been trimmed beyond `position`, so that events this
        node never saw are gone? Then the caller reloads from the hashes."""
        first = await self.redis.xrange(EVENTS, count=1)
        self.touch()
        return bool(first) and _stream_id(first[0][0]) > _stream_id(position)

    # --- the replay record ---

    async def admit(self, keys: Sequence[str], args: Sequence[str | int]) -> list[bytes | None]:
        """Record each key if absent, in one round trip and one command for
        the whole batch. `args` holds, per key in order, the value to record
        and its time to live in ms (the replay script's ARGV). Per key: None
        if newly recorded, else the value of the first acceptance."""
        if not keys:
            return []
        if not self.cluster:
            reply = await self._admit(keys=keys, args=args)
        else:
            # A script's keys must share a slot in a cluster: one script per
            # slot, all sent at once.
            groups: dict[int, list[int]] = {}
            for i, key in enumerate(keys):
                groups.setdefault(key_slot(key.encode()), []).append(i)
            replies = await asyncio.gather(
                *(
                    self._admit(keys=[keys[i] for i in g], args=[a for i in g for a in args[2 * i : 2 * i + 2]])
                    for g in groups.values()
                )
            )
            reply = [None] * len(keys)
            for g, r in zip(groups.values(), replies):
                for i, value in zip(g, r):
                    reply[i] = value
        self.touch()
        return [None if r == 1 else r for r in reply]

    # --- the trust list ---

    async def publish_trust_list(self, text: str) -> None:
        await self._publish_trust(keys=[TRUST_LIST, EVENTS], args=[text, EVENTS_MAXLEN])
        self.touch()

    async def trust_list(self) -> str | None:
        text = await self.redis.get(TRUST_LIST)
        self.touch()
        return text.decode() if text is not None else None


def replay_key(credential_id: str, nonce: str) -> str:
    """The replay record's key. The hash tag (the credential id's first hex
    digit) spreads records over at most 16 cluster slots, so a batch costs
    at most 16 scripts there, and one on a standalone server."""
    return f"{REPLAY_PREFIX}{{{credential_id[0]}}}{credential_id}{nonce}"


class HiredisPackedConnection(aioredis.Connection):
    """A connection that packs commands with hiredis (C) instead of
    redis-py's Python loop: the replay script of a batch of 500 codes has
    1,500 arguments, and packing them was a tenth of the node's CPU per code
    (benchmarks/RESULTS.md). The bytes on the wire are the same."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if any(isinstance(a, (float, memoryview)) for a in args):
            return super().pack_command(*args)  # encodings hiredis would spell differently
        first = args[0]
        if isinstance(first, str) and " " in first:  # "SCRIPT LOAD" is two arguments
            args = (*first.split(), *args[1:])
        return [hiredis.pack_command(args)]


def client(url: str, *, socket_timeout: float = 1.0) -> aioredis.Redis | RedisCluster:
    # Short timeouts: a dead store must turn into degraded answers fast, not
    # into stalled calls.
    if url.startswith(CLUSTER_SCHEME):
        return RedisCluster.from_url(
            "redis://" + url.removeprefix(CLUSTER_SCHEME), socket_timeout=socket_timeout, socket_connect_timeout=1.0
        )
    # A blocking pool: a burst of calls waits for a connection rather than
    # failing with "too many connections" (which would read as the store down).
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=256, timeout=socket_timeout, socket_timeout=socket_timeout, socket_connect_timeout=1.0,
        health_check_interval=5, connection_class=HiredisPackedConnection,
    )
    return aioredis.Redis(connection_pool=pool)


def _stream_id(raw: bytes) -> tuple[int, int]:
    ms, _, seq = raw.decode().partition("-")
    return int(ms), int(seq or 0)
