"""What a revocation bucket's size costs Redis (issue #11): why the national
store has 2^20 buckets, not 2^16.

    .venv/bin/python benchmarks/revocation_buckets.py [--ids 2000000]

A bucket is a listpack hash, and every HSET into one scans it. The same
`--ids` random ids are written, by the node's own bulk script (_SET_MANY,
10,000 ids a call), into as many buckets as give each the size it has at
20 and 100 million ids with 2^16 and with 2^20 buckets; the last 200,000
ids are measured: Redis's CPU (used_cpu_user + used_cpu_sys) per id, and
used_memory per id at the end. One redis-server per row, on a free port,
hash-max-listpack-entries 4096 so that even the largest stay listpacks.
"""

from __future__ import annotations

import argparse
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
from server.national import _SET_MANY, _bitmap, _scratch_key, _used_key  # noqa: E402

BATCH = 10_000
MEASURED = 200_000
# (label, ids per bucket)
ROWS = [
    ("100 million ids, 2^16 buckets (before)", 100_000_000 / 2**16),
    ("20 million ids, 2^16 buckets (before)", 20_000_000 / 2**16),
    ("100 million ids, 2^20 buckets (now)", 100_000_000 / 2**20),
    ("20 million ids, 2^20 buckets (now)", 20_000_000 / 2**20),
]


def write(r: redis.Redis, sha: str, buckets: int, n: int) -> None:
    """n random ids into `buckets` buckets of one hash tag, as the node
    names them and with the bitmap of the buckets written, BATCH to a
    script call."""
    for start in range(0, n, BATCH):
        k = min(BATCH, n - start)
        raw = os.urandom(16 * k)
        ids = [raw[16 * i : 16 * i + 16] for i in range(k)]
        numbers = [int.from_bytes(i[:4], "big") % buckets for i in ids]
        keys = [f"yibao:rv:{{rv00}}:{b:05x}" for b in numbers]
        records = b"".join(i + b"L" for i in ids)
        r.evalsha(sha, k + 2, _used_key(0), _scratch_key(0), *keys, records, _bitmap(numbers))


def cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def row(ids: int, per_bucket: float, work: Path) -> tuple[float, float, float]:
    """(Redis CPU µs per id, wall ids/s, used_memory bytes per id)."""
    server = Redis(work, extra=["--hash-max-listpack-entries", "4096"]).start()
    try:
        r = redis.Redis(port=server.port)
        sha = r.script_load(_SET_MANY)
        empty = int(r.info("memory")["used_memory"])
        buckets = max(1, round(ids / per_bucket))
        write(r, sha, buckets, ids - MEASURED)
        before, started = cpu(r), time.monotonic()
        write(r, sha, buckets, MEASURED)
        elapsed, spent = time.monotonic() - started, cpu(r) - before
        memory = int(r.info("memory")["used_memory"]) - empty
        return 1e6 * spent / MEASURED, MEASURED / elapsed, memory / ids
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ids", type=int, default=2_000_000, help="ids written per row (default 2,000,000)")
    a = ap.parse_args()
    if a.ids <= MEASURED:
        ap.error(f"--ids {a.ids}: more than {MEASURED:,} are needed (the last {MEASURED:,} are measured)")
    print(f"# Revocation bucket size and Redis's cost ({machine.describe()})")
    print(f"{a.ids:,} ids per row; the last {MEASURED:,} measured\n")
    print("| buckets as at | ids per bucket | Redis CPU per id written, µs | ids/s (one client) | Redis bytes per id |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="yibao-buckets-") as tmp:
        for i, (label, per_bucket) in enumerate(ROWS):
            us, rate, per_id = row(a.ids, per_bucket, Path(tmp) / str(i))
            print(f"| {label} | {per_bucket:,.0f} | {us:.2f} | {rate:,.0f} | {per_id:.1f} |", flush=True)


if __name__ == "__main__":
    main()
