"""Redis bytes per revoked id: today's layout beside a sharded, compact one
(#11 item 2, a layout measurement to choose the design by; not yet the
national store's code).

    .venv/bin/python benchmarks/revocations_redis_layout.py [--ids 2000000] [--buckets 4096 65536]

Today: one hash `{yibao}:revoked`, hex id -> reason text, written by the
national store's own RevokeBatch script (NationalStore.revoke_batch, 10,000
per call), so one key and one cluster slot. Sharded: BUCKETS hashes
`{yibao:rv:P}` (P = the id's leading bits, so the buckets spread over the
cluster's slots), the 16-byte binary id -> a 1-byte reason code, with
hash-max-listpack-entries raised so each bucket stays a listpack. Each layout
gets a redis-server of its own; bytes per id is used_memory grown / ids. The
bootstrap figure reads every bucket (HGETALL, pipelined) as a node with no
snapshot would.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import machine  # noqa: E402
import redis  # noqa: E402

from server.local import Redis  # noqa: E402
from server.national import NationalStore  # noqa: E402

BATCH = 10_000
# Today's reasons as the Admin API takes them; the compact layout stores a
# byte per id instead of the text.
REASON = "LOST"
REASON_CODE = b"\x03"


def used_memory(server: Redis) -> int:
    info = server.command("INFO", "memory").decode()
    return int(next(line for line in info.splitlines() if line.startswith("used_memory:")).split(":")[1])


async def load_today(server: Redis, ids: int, seed: bytes) -> float:
    store = NationalStore(server.url)
    try:
        started = time.perf_counter()
        for done in range(0, ids, BATCH):
            chunk = _ids(seed, done, min(BATCH, ids - done))
            await store.revoke_batch([(cid.hex(), REASON) for cid in chunk])
        return time.perf_counter() - started
    finally:
        await store.close()


def _ids(seed: bytes, start: int, count: int) -> list[bytes]:
    """Deterministic random-looking ids, so both layouts hold the same set."""
    return [hashlib.blake2b(i.to_bytes(8, "little"), digest_size=16, key=seed).digest() for i in range(start, start + count)]


def bucket_of(cid: bytes, buckets: int) -> str:
    bits = buckets.bit_length() - 1
    return f"{{yibao:rv:{int.from_bytes(cid[:4], 'big') >> (32 - bits):x}}}"


def load_sharded(server: Redis, ids: int, seed: bytes, buckets: int) -> float:
    client = redis.Redis(host="127.0.0.1", port=server.port)
    started = time.perf_counter()
    for done in range(0, ids, BATCH):
        by_bucket: dict[str, list[bytes]] = {}
        for cid in _ids(seed, done, min(BATCH, ids - done)):
            by_bucket.setdefault(bucket_of(cid, buckets), []).append(cid)
        pipe = client.pipeline(transaction=False)
        for key, members in by_bucket.items():
            pipe.hset(key, mapping=dict.fromkeys(members, REASON_CODE))
        pipe.execute()
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


def read_all(server: Redis, buckets: int) -> tuple[float, int]:
    client = redis.Redis(host="127.0.0.1", port=server.port)
    started = time.perf_counter()
    total = 0
    step = 256
    for first in range(0, buckets, step):
        pipe = client.pipeline(transaction=False)
        for b in range(first, min(buckets, first + step)):
            pipe.hgetall(f"{{yibao:rv:{b:x}}}")
        total += sum(len(h) for h in pipe.execute())
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed, total


def encoding_of(server: Redis, key: str) -> str:
    return server.command("OBJECT", "ENCODING", key).decode()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ids", type=int, default=2_000_000, help="revoked ids (default %(default)s)")
    p.add_argument("--buckets", type=int, nargs="+", default=[4096, 65536], help="bucket counts, powers of two")
    a = p.parse_args()
    if any(b & (b - 1) or b < 2 for b in a.buckets):
        p.error(f"--buckets: {a.buckets}: each must be a power of two of at least 2")
    seed = os.urandom(16)
    rows = []
    with tempfile.TemporaryDirectory(prefix="yibao-rvlayout-") as tmp:
        server = Redis(Path(tmp) / "today").start()
        try:
            before = used_memory(server)
            seconds = asyncio.run(load_today(server, a.ids, seed))
            grown = used_memory(server) - before
            rows.append(("today: one hash, hex id -> reason text (RevokeBatch script)", grown / a.ids, a.ids / seconds,
                         None, encoding_of(server, "{yibao}:revoked")))
        finally:
            server.stop()
        for buckets in a.buckets:
            per_bucket = a.ids // buckets
            limit = max(128, 2 * per_bucket)
            server = Redis(Path(tmp) / f"b{buckets}", extra=["--hash-max-listpack-entries", str(limit)]).start()
            try:
                before = used_memory(server)
                seconds = load_sharded(server, a.ids, seed, buckets)
                grown = used_memory(server) - before
                read_s, read_n = read_all(server, buckets)
                assert read_n == a.ids, f"read back {read_n} of {a.ids} ids"
                rows.append((f"sharded: {buckets} bucket hashes, binary id -> 1 byte (listpack up to {limit})",
                             grown / a.ids, a.ids / seconds, read_s, encoding_of(server, "{yibao:rv:0}")))
            finally:
                server.stop()
    print(f"Machine: {machine.describe()}\n")
    print(f"{a.ids:,} revoked ids; target at most 40 Redis bytes per id.\n")
    print("| layout | Redis bytes per id | target | write ids/s | read all (s) | encoding |")
    print("|---|---:|---|---:|---:|---|")
    for name, per_id, rate, read_s, enc in rows:
        met = "met" if per_id <= 40 else "not met"
        read = f"{read_s:.1f}" if read_s is not None else "(HSCAN in load_mirror)"
        print(f"| {name} | {per_id:.1f} | {met} | {rate:,.0f} | {read} | {enc} |")


if __name__ == "__main__":
    main()
