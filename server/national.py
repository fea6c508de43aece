"""The national store on Redis: revocations, channel withdrawals, a stream
every node follows so no update is lost while it is away, the replay
record, the shared trust list and the token key.

Revocations are sharded: 2^20 bucket hashes (binary id -> one reason
byte; listpacks, about 95 ids each at 100 million) under 64 hash tags, so
they spread over 64 cluster slots; a write to them is one script per tag.
An id's bucket is the first 20 bits of its SM3 digest
(yibao_core.revocation_bucket), its tag the bucket's top six bits. The
stream and the withdrawals share the `{yibao}` tag, so a withdrawal is one
script that changes the hash and appends its event atomically. A revocation
cannot be: its bucket is in another slot. It is written to its bucket
first and announced on the stream after, both
durably, so an announced revocation is always stored, and one stored but
not announced (the node died between the two) is taken up by the next
snapshot or the caller's retry.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisError, ResponseError

import yibao_core
from server import redis_pipe

log = logging.getLogger(__name__)

# One hash tag: the national mirror's keys live in one Redis Cluster slot, so
# each script touches one node.
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
REASON_CODES = {"LOST": b"L", "FROZEN": b"F", "CANCELLED": b"C", "DECEASED": b"D"}
REASON_NAMES = {code[0]: name for name, code in REASON_CODES.items()}
# 64 hash tags x 16,384 buckets: at 100 million ids about 95 per bucket.
# Many small buckets, because a listpack's every write scans it
# (benchmarks/revocation_buckets.py: Redis's time per id grows with it).
TAGS = 64
BUCKETS_PER_TAG = 16_384

_CHANNEL = """
local op, id = ARGV[1], ARGV[2]
local bit = 2 ^ tonumber(ARGV[3])
local mask = tonumber(redis.call('HGET', KEYS[1], id) or '0')
local before = (math.floor(mask / bit) % 2 == 1) and 1 or 0
if op == 'withdraw' and before == 0 then mask = mask + bit end
if op == 'restore_channel' and before == 1 then mask = mask - bit end
if mask == 0 then redis.call('HDEL', KEYS[1], id) else redis.call('HSET', KEYS[1], id, mask) end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'op', op, 'id', id, 'arg', ARGV[3])
return before
"""

# KEYS: 1 the tag's bitmap of buckets written, 2 the bucket; ARGV: the
# binary id, the reason code ('' restores), the bucket's index in the tag.
# Returns the code before, or false.
_SET_ONE = """
redis.call('SETBIT', KEYS[1], ARGV[3], 1)
local before = redis.call('HGET', KEYS[2], ARGV[1])
if ARGV[2] == '' then redis.call('HDEL', KEYS[2], ARGV[1]) else redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end
return before
"""

# KEYS: buckets of one hash tag. Each one's fields and values joined: an id
# and its code after another, 17 bytes a revocation; one string a bucket,
# not two per id, for the reader to take apart.
_READ_BUCKETS = """
local out = {}
for i = 1, #KEYS do out[i] = table.concat(redis.call('HGETALL', KEYS[i])) end
return out
"""

# KEYS: 1 the tag's bitmap of buckets written, 2 a scratch key, then the
# bucket of each record (one hash tag); ARGV: 1 the records, 17 bytes each
# (id, reason code), in the same order; 2 the bitmap of the buckets this
# call writes, OR-ed into KEYS[1]. One argument, not two per id: packing
# 20,000 arguments cost the node more than the script. One BITOP, not a
# SETBIT per id: each of those is one more command for Redis to run and
# replicate, and with them the bulk import fell under 100,000 ids/s.
_SET_MANY = """
local r = ARGV[1]
for i = 3, #KEYS do
  local o = 17 * (i - 3)
  redis.call('HSET', KEYS[i], string.sub(r, o + 1, o + 16), string.sub(r, o + 17, o + 17))
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('BITOP', 'OR', KEYS[1], KEYS[1], KEYS[2])
redis.call('DEL', KEYS[2])
return #KEYS - 2
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

# KEYS: 1 the snapshot's description, 2 events; ARGV: maxlen, then field,
# value pairs (generation first). Replaced whole, announced in the same step.
_PUBLISH_SNAPSHOT = """
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'op', 'snapshot', 'id', ARGV[3], 'arg', '')
return 1
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
        if not redis_pipe.supports(url, slot_key=EVENTS):
            raise ValueError(f"the national store must be a redis://, unix:// or {CLUSTER_SCHEME} URL, not {url!r}")
        self.redis = client(url, socket_timeout=1.0)
        # The follower blocks in XREAD, so it has a connection of its own.
        self._follower = client(url, socket_timeout=2.0)
        self._min_replicas, self._replica_timeout_ms = min_replicas, replica_timeout_ms
        self._writes = self._new_pipe(EVENTS)
        # Bucket writes and reads: one pipe per hash tag in a cluster (a
        # pipe serves one slot), the same pipe for all on one server.
        self._tag_pipes: dict[int, redis_pipe.RedisPipe] = {}
        self._set_many_scripts: dict[int, redis_pipe.Script] = {}
        self._readers: dict[int, tuple[redis_pipe.RedisPipe, redis_pipe.Script]] = {}
        self._channel = redis_pipe.Script(self._writes, _CHANNEL, durable=True)
        self._set_token_key = redis_pipe.Script(self._writes, _SET_TOKEN_KEY, durable=True)
        self._publish_trust = redis_pipe.Script(self._writes, _PUBLISH_TRUST, durable=True)
        self._publish_snapshot = redis_pipe.Script(self._writes, _PUBLISH_SNAPSHOT, durable=True)
        # The replay script runs for every batch: on a standalone server it
        # has a pipelined connection of its own (server/redis_pipe.py).
        self._pipe = redis_pipe.RedisPipe(url, timeout_s=1.0, observe=observe) if redis_pipe.supports(url) else None
        self._admit: Callable[..., Awaitable[Any]] = (
            redis_pipe.Script(self._pipe, _ADMIT) if self._pipe is not None else self.redis.register_script(_ADMIT)
        )
        self._on_error = on_error
        self.last_contact = time.monotonic()

    def _new_pipe(self, slot_key: str) -> redis_pipe.RedisPipe:
        return redis_pipe.RedisPipe(
            self._url,
            timeout_s=1.0,
            slot_key=slot_key,
            min_replicas=self._min_replicas,
            replica_timeout_ms=self._replica_timeout_ms,
        )

    def tag_pipe(self, tag: int) -> redis_pipe.RedisPipe:
        """The pipe to the primary that holds hash tag `tag`'s buckets."""
        if not self.cluster:
            return self._writes
        pipe = self._tag_pipes.get(tag)
        if pipe is None:
            pipe = self._tag_pipes[tag] = self._new_pipe(_tag_key(tag))
        return pipe

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
        for pipe in (self._pipe, self._writes, *self._tag_pipes.values(), *(p for p, _ in self._readers.values())):
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
        if op in ("revoke", "restore"):
            cid = bytes.fromhex(credential_id)
            b = yibao_core.revocation_bucket(cid)
            tag, index = divmod(b, BUCKETS_PER_TAG)
            code = REASON_CODES[arg] if op == "revoke" else b""
            before = await redis_pipe.Script(self.tag_pipe(tag), _SET_ONE, durable=True)(
                keys=[_used_key(tag), _bucket_key_of(b)], args=[cid, code, index]
            )
            await self._announce(op, credential_id, arg)
            return before is not None
        before = await self._channel(keys=[WITHDRAWN, EVENTS], args=[op, credential_id, arg, EVENTS_MAXLEN])
        self.touch()
        return before not in (None, 0, b"0")

    async def _announce(self, op: str, cid: str, arg: str | bytes) -> None:
        await self._writes.execute_durable("XADD", EVENTS, "MAXLEN", "~", EVENTS_MAXLEN, "*", "op", op, "id", cid, "arg", arg)
        self.touch()

    async def revoke_batch(self, records: bytes) -> None:
        """Store 17-byte records (id, reason code: yibao_core.revocation_records),
        one durable script per hash tag, then announce them in one event."""
        shards = yibao_core.revocations_by_shard(records, BUCKETS_PER_TAG)
        await asyncio.gather(
            *(
                self._set_many(tag)(
                    keys=[_used_key(tag), _scratch_key(tag), *_bucket_keys(tag, buckets)], args=[part, _bitmap(buckets)]
                )
                for tag, buckets, part in shards
            )
        )
        await self._announce("revoke_records", "", records)

    def _set_many(self, tag: int) -> redis_pipe.Script:
        script = self._set_many_scripts.get(tag)
        if script is None:
            script = self._set_many_scripts[tag] = redis_pipe.Script(self.tag_pipe(tag), _SET_MANY, durable=True)
        return script

    async def revocation_reasons(self, credential_ids: Sequence[bytes]) -> list[str | None]:
        """The stored reason of each 16-byte id, None where not revoked: the
        exact answer behind the snapshot's "maybe"."""
        lookups = []
        for cid in credential_ids:
            tag, key = bucket(cid)
            lookups.append(self.tag_pipe(tag).execute("HGET", key, cid))
        codes = await asyncio.gather(*lookups)
        self.touch()
        return [None if c is None else _reason_name(cid, c) for cid, c in zip(credential_ids, codes)]

    async def revoked_parts(self) -> AsyncIterator[bytes]:
        """Every stored revocation, as 17-byte records (id, reason code), a
        bucket at a time (its HGETALL, joined, is exactly that). Only the
        buckets ever written, by the tag's bitmap: a store with few
        revocations is read in a fraction of a second, not 2^20 HGETALLs.
        One script at a time on connections of their own: a build reads the
        whole store while a bulk load writes to it, and neither should wait
        behind the other's queue."""
        for tag in range(TAGS):
            pipe, read = self._bucket_reader(tag)
            used = await pipe.execute("GET", _used_key(tag))
            keys = _bucket_keys(tag, _set_bits(used or b""))
            for i in range(0, len(keys), 1024):
                for joined in await read(keys=keys[i : i + 1024], args=[]):
                    yield joined
            self.touch()

    async def revoked_records(self) -> bytes:
        """Every stored revocation as 17-byte records, in one piece (for a
        store small enough to be held exactly)."""
        return b"".join([part async for part in self.revoked_parts()])

    def _bucket_reader(self, tag: int) -> tuple[redis_pipe.RedisPipe, redis_pipe.Script]:
        """The read pipe to tag `tag`'s primary and the bucket-reading script on it."""
        key = tag if self.cluster else 0
        reader = self._readers.get(key)
        if reader is None:
            # Reads of up to 1.6 MB each, behind the writes of a bulk load:
            # more time than a call's 1 s before the build gives up.
            pipe = redis_pipe.RedisPipe(self._url, timeout_s=5.0, slot_key=_tag_key(tag))
            reader = self._readers[key] = (pipe, redis_pipe.Script(pipe, _READ_BUCKETS))
        return reader

    async def publish_snapshot(self, key: str, fields: dict[str, str | int | bytes]) -> None:
        """Point `key` at a new revocation snapshot and announce it."""
        await self._publish_snapshot(keys=[key, EVENTS], args=[EVENTS_MAXLEN, *(x for kv in fields.items() for x in kv)])
        self.touch()

    async def withdrawals(self) -> dict[str, int]:
        """Credential id -> bitmask of withdrawn channels."""
        out = {cid.decode(): int(mask) async for cid, mask in self.redis.hscan_iter(WITHDRAWN, count=10_000)}
        self.touch()
        return out

    async def position(self) -> bytes:
        """The id of the stream's newest event; of the last one ever added
        if trimming emptied it; b"0-0" if there never was one."""
        last = await self.redis.xrevrange(EVENTS, count=1)
        self.touch()
        if last:
            return last[0][0]
        info = await self._stream_info()
        return info["last-generated-id"] if info else b"0-0"

    async def events_between(self, after: bytes, upto: bytes) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Events after `after` up to and including `upto`."""
        out: list[tuple[bytes, dict[bytes, bytes]]] = []
        start = b"(" + after
        # Small pages: an event of a RevokeBatch is 170 kB.
        while True:
            page = await self.redis.xrange(EVENTS, min=start, max=upto, count=50)
            out += page
            if len(page) < 50:
                break
            start = b"(" + page[-1][0]
        self.touch()
        return out

    async def events_since(self, position: bytes, block_ms: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Events after `position`, waiting up to block_ms for the first."""
        # 100 at a time: an event of a RevokeBatch is 170 kB, and a follower
        # behind by thousands of them must not ask for gigabytes in one reply.
        reply = await self._follower.xread({EVENTS: position}, block=block_ms, count=100)
        self.touch()
        return reply[0][1] if reply else []

    async def trimmed_past(self, position: bytes) -> bool:
        """Has the stream been trimmed beyond `position`, so that events this
        node never saw are gone? Then the caller reloads from the hashes."""
        info = await self._stream_info()
        if info is None:
            return False
        if position == b"0-0":
            # Read from a stream that never had an event: every event since
            # came after it, so lost ones are any that are no longer there.
            return int(info["entries-added"]) > int(info["length"])
        first = info["first-entry"]
        oldest = first[0] if first else info["last-generated-id"]
        # Conservative: the event at `position` itself gone also counts
        # (a reload too many, never an event missed).
        return _stream_id(oldest) > _stream_id(position)

    async def _stream_info(self) -> dict[str, Any] | None:
        """XINFO STREAM of the events, None if the stream does not exist."""
        try:
            info: dict[str, Any] = await self.redis.xinfo_stream(EVENTS)
        except ResponseError as e:
            if "no such key" in str(e):
                return None
            raise
        self.touch()
        return info

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


def bucket(credential_id: bytes) -> tuple[int, str]:
    """The hash tag and bucket key of a 16-byte id. Hashed, not the id's
    own prefix: ids are opaque and need not be spread evenly."""
    b = yibao_core.revocation_bucket(credential_id)
    return b // BUCKETS_PER_TAG, _bucket_key_of(b)


def _reason_name(credential_id: bytes, code: bytes) -> str:
    """The reason stored for a revoked id. A byte no node writes is still a
    revocation (the id is in its bucket): REVOKED, reason LOST, and logged."""
    name = REASON_NAMES.get(code[0]) if code else None
    if name is None:
        log.error("revocation of %s stored with reason code %r, which is none of L F C D: answered as LOST",
                  credential_id.hex().upper(), code)  # fmt: skip
        return "LOST"
    return name


def _tag_key(tag: int) -> str:
    return f"yibao:rv:{{rv{tag:02d}}}"


def _used_key(tag: int) -> str:
    """Tag `tag`'s bitmap: bit i set once bucket i of the tag was written
    (never cleared; an emptied bucket is read, and answers nothing)."""
    return f"yibao:rvused:{{rv{tag:02d}}}"


def _scratch_key(tag: int) -> str:
    """A key of tag `tag`'s slot that a script sets and deletes again."""
    return f"yibao:rvscratch:{{rv{tag:02d}}}"


def _bitmap(buckets: list[int]) -> bytes:
    """A tag's bitmap with the bits of `buckets` set (bucket numbers, or
    their indices in the tag)."""
    bits = bytearray(BUCKETS_PER_TAG // 8)
    for b in buckets:
        i = b & (BUCKETS_PER_TAG - 1)
        bits[i >> 3] |= 0x80 >> (i & 7)
    return bytes(bits)


def _set_bits(bitmap: bytes) -> list[int]:
    """The offsets of a Redis bitmap's set bits (SETBIT's order: the most
    significant bit of the first byte is offset 0)."""
    return [8 * i + j for i, byte in enumerate(bitmap) if byte for j in range(8) if byte & (0x80 >> j)]


def _bucket_key_of(b: int) -> str:
    """Bucket b's key, 0 <= b < 2^20."""
    return _TAG_KEYS[b >> 14] + _INDEX_SUFFIXES[b & 16383]


def _bucket_keys(tag: int, buckets: list[int]) -> list[str]:
    """The keys of buckets that are all in hash tag `tag`, by their number
    (0 to 2^20 - 1) or their index in the tag (0 to 16,383)."""
    prefix, suffixes = _TAG_KEYS[tag], _INDEX_SUFFIXES
    return [prefix + suffixes[b & 16383] for b in buckets]


# A batch names 10,000 buckets: their keys are joined from these 16,448
# parts (cheaper than formatting each, lighter than keeping all 2^20).
_TAG_KEYS = [_tag_key(t) for t in range(TAGS)]
_INDEX_SUFFIXES = [f":{i:04x}" for i in range(BUCKETS_PER_TAG)]
assert TAGS * BUCKETS_PER_TAG == 1 << 20 and BUCKETS_PER_TAG == 1 << 14, "_bucket_key_of's shifts"


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
    return aioredis.Redis.from_pool(pool)  # owns the pool: aclose() closes its connections


def _stream_id(raw: bytes) -> tuple[int, int]:
    ms, _, seq = raw.decode().partition("-")
    return int(ms), int(seq or 0)
