"""The revocation snapshot: a binary fuse filter of every revoked id
(yibao_core.SnapshotBuilder, about 2.26 bytes an id) that nodes
start from instead of reading every revocation, and map from one file per
machine however many workers they run.

One node at a time (a lease in the national store) builds it when its
mirror's exact delta has grown past --snapshot-after ids (or 1% of the
snapshot): it reads the stream position, then every bucket, builds the
filter, stores it in chunks under a new generation, points
`{yibao}:snapshot` at it, announces it on the stream, and trims the stream
to what came after (keeping a margin for followers a moment behind). Every
node that sees the announcement fetches the file (or finds it: the workers
of a node share a directory, and a lock), builds a new mirror over it,
replays the events since its position, and swaps it in.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from redis.exceptions import RedisError

import yibao_core
from server.national import EVENTS, NationalStore
from server.state import NodeState, replay

log = logging.getLogger(__name__)

SNAPSHOT = "{yibao}:snapshot"
GENERATION = "{yibao}:snapshot-generation"
LEASE = "{yibao}:snapshot-lease"
CHUNK_BYTES = 8 << 20
# A superseded snapshot's chunks stay this long for nodes fetching it (a
# fetch that finds them gone starts again with the new one).
OLD_CHUNKS_TTL_MS = 30_000
# Stream events older than a new snapshot's position by more than this are
# trimmed (nodes switching to it replay from its position). A follower that
# was further behind finds out after its next read (Follower.run) and
# reloads, so the margin only spares it that.
TRIM_MARGIN_MS = 10_000
LEASE_MS = 900_000
# A build reads every revocation, and every node then fetches and switches to
# it: O(revocations) each time. While they pour in (a bulk load) the next
# build waits this many times as long as the last one took, so building
# takes at most a fifth of the time however fast they come, and a bulk
# load's total building stays proportional to its size, not to its square.
BUILD_PACE = 4


@dataclass(frozen=True)
class Meta:
    generation: int
    position: bytes
    ids: int
    size: int
    sha256: str
    chunks: int
    published_ms: int
    build_ms: int

    @classmethod
    def parse(cls, raw: dict[bytes, bytes]) -> Meta | None:
        if not raw:
            return None
        return cls(
            generation=int(raw[b"generation"]),
            position=raw[b"position"],
            ids=int(raw[b"ids"]),
            size=int(raw[b"size"]),
            sha256=raw[b"sha256"].decode(),
            chunks=int(raw[b"chunks"]),
            published_ms=int(raw[b"published_ms"]),
            build_ms=int(raw[b"build_ms"]),
        )

    def due(self, now_ms: int) -> bool:
        """Whether a new build may start (BUILD_PACE)."""
        return now_ms >= self.published_ms + BUILD_PACE * self.build_ms


def _chunk_key(generation: int, index: int) -> str:
    # Its own hash tag per chunk: the chunks spread over the cluster.
    return f"yibao:snapshot:{{{generation}:{index}}}"


def file_for(directory: Path, generation: int) -> Path:
    return directory / f"revocations-{generation:012d}.fuse"


@asynccontextmanager
async def _locked(directory: Path) -> AsyncIterator[None]:
    """One process of the node at a time fetches a snapshot, so the workers
    map one file, not a copy each. Polled, not blocking: the holder may be
    a coroutine of this very process, awaiting its download."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+b") as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


async def meta(store: NationalStore) -> Meta | None:
    return Meta.parse(await store.redis.hgetall(SNAPSHOT))


async def fetch(store: NationalStore, m: Meta, directory: Path) -> Path:
    """The snapshot's file in `directory`, fetched unless a process of this
    node already has it. ValueError if the chunks do not add up (a newer
    snapshot replaced them): the caller tries again later."""
    path = file_for(directory, m.generation)
    async with _locked(directory):
        if path.exists():
            return path
        data = bytearray()
        for i in range(m.chunks):
            chunk = await store.redis.get(_chunk_key(m.generation, i))
            if chunk is None:
                raise ValueError(f"revocation snapshot {m.generation}: chunk {i} of {m.chunks} is gone")
            data += chunk
        digest = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        if len(data) != m.size or digest != m.sha256:
            raise ValueError(
                f"revocation snapshot {m.generation}: {len(data)} bytes with sha256 {digest}, "
                f"not {m.size} bytes with {m.sha256}"
            )
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        await asyncio.to_thread(tmp.write_bytes, data)
        tmp.rename(path)
    return path


async def forget_older(directory: Path, generation: int) -> None:
    """Unlink older snapshot files (a process still mapping one keeps its
    pages until it swaps; unlinking does not take them away)."""
    async with _locked(directory):
        for f in directory.glob("revocations-*.fuse"):
            if int(f.stem.split("-")[1]) < generation:
                f.unlink(missing_ok=True)


async def catch_up(store: NationalStore, mirror: yibao_core.RevocationSet, since: bytes, upto: bytes) -> bool:
    """Apply the stream's events after `since` up to `upto` to `mirror`
    (off the event loop: after a bulk load, millions of ids). False, and
    nothing applied, if the stream was trimmed past `since`: events are
    missing, so the mirror must come from a newer snapshot."""
    events = await store.events_between(since, upto)
    if await store.trimmed_past(since):
        return False
    await asyncio.to_thread(replay, mirror, events)
    return True


async def load(store: NationalStore, directory: Path) -> tuple[yibao_core.RevocationSet, bytes, int]:
    """The mirror a node starts from, the stream position to follow from
    and the snapshot's generation: the published snapshot if there is one,
    else every revocation, held exactly (generation 0: a national store
    that never grew past --snapshot-after)."""
    while True:
        m = await meta(store)
        if m is None:
            position = await store.position()  # first: later events apply twice, harmlessly
            mirror = yibao_core.RevocationSet()
            mirror.revoke_records(await store.revoked_records())
            generation = 0
        else:
            try:
                path = await fetch(store, m, directory)
            except ValueError as e:
                log.warning("%s; trying again", e)
                await asyncio.sleep(1.0)
                continue
            mirror = yibao_core.RevocationSet(path)
            position, generation = m.position, m.generation
        for cid, mask in (await store.withdrawals()).items():
            for channel in range(1, 6):
                if mask >> channel & 1:
                    mirror.withdraw_channel(cid, channel)
        # Caught up to the stream's head before the node serves: a revocation
        # after the snapshot's position must not wait for the follower.
        head = await store.position()
        if await catch_up(store, mirror, position, head):
            position = head
            if generation:
                log.info("revocation mirror loaded from snapshot %d: %d ids", generation, mirror.snapshot_ids)
            else:
                log.info("revocation mirror loaded exactly from the store: %d ids", len(mirror))
            return mirror, position, generation
        log.warning("the stream moved past the snapshot while it was fetched; fetching again")


async def publish(store: NationalStore, directory: Path) -> Meta:
    """Build a snapshot of every stored revocation and make it the current
    one (the caller holds the lease)."""
    started = time.monotonic()
    position = await store.position()
    builder = yibao_core.SnapshotBuilder()
    async for part in store.revoked_parts():
        builder.add(part)
    generation = int(await store.redis.incr(GENERATION))
    directory.mkdir(parents=True, exist_ok=True)
    path = file_for(directory, generation)
    # Written beside its name and renamed: no lock needed, nobody else
    # writes this generation.
    ids = await asyncio.to_thread(builder.write, path)
    data = await asyncio.to_thread(path.read_bytes)
    sha = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
    chunks = max(1, -(-len(data) // CHUNK_BYTES))
    for i in range(chunks):
        await store.redis.set(_chunk_key(generation, i), data[i * CHUNK_BYTES : (i + 1) * CHUNK_BYTES])
    old = await meta(store)
    m = Meta(generation, position, ids, len(data), sha, chunks,
             published_ms=int(time.time() * 1000), build_ms=int((time.monotonic() - started) * 1000))  # fmt: skip
    await store.publish_snapshot(SNAPSHOT, {f: getattr(m, f) for f in Meta.__dataclass_fields__})
    if old is not None:
        for i in range(old.chunks):
            await store.redis.pexpire(_chunk_key(old.generation, i), OLD_CHUNKS_TTL_MS)
    ms = int(position.split(b"-")[0]) - TRIM_MARGIN_MS
    if ms > 0:
        await store.redis.xtrim(EVENTS, minid=f"{ms}-0", approximate=False)
    log.info(
        "revocation snapshot %d published: %d ids, %.1f MiB, position %s, built in %.1f s",
        generation, ids, len(data) / 2**20, position.decode(), m.build_ms / 1000,
    )
    return m


async def keep(store: NationalStore, state: NodeState, directory: Path, snapshot_after: int) -> None:
    """Build a new snapshot whenever the delta outgrows the threshold and no
    other node is building one."""
    me = secrets.token_hex(8)
    while True:
        await asyncio.sleep(5.0)
        mirror = state.mirror
        if mirror.delta_len < max(snapshot_after, mirror.snapshot_ids // 100):
            continue
        try:
            last = await meta(store)
            if last is not None and not last.due(int(time.time() * 1000)):
                continue
            if not await store.redis.set(LEASE, me, nx=True, px=LEASE_MS):
                continue
            try:
                await publish(store, directory)
            finally:
                if await store.redis.get(LEASE) == me.encode():
                    await store.redis.delete(LEASE)
        except (RedisError, OSError, ValueError) as e:
            log.warning("revocation snapshot not built, trying again later: %s", e)
