"""Memory and lookup speed of the revocation mirror at national scale:
10 million revoked 16-byte credential ids in one RevocationSet.

    .venv/bin/python benchmarks/revocations.py [--ids 10000000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import machine  # noqa: E402

import yibao_core  # noqa: E402


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", type=int, default=10_000_000, help="revoked ids to load (default %(default)s)")
    args = parser.parse_args()
    chunk = 1_000_000
    revocations = yibao_core.RevocationSet()
    before = rss_bytes()
    started = time.perf_counter()
    sample = b""
    for done in range(0, args.ids, chunk):
        ids = os.urandom(16 * min(chunk, args.ids - done))
        revocations.revoke_many(ids, "LOST")
        sample = ids[:16 * 1000]
    load_s = time.perf_counter() - started
    grown = rss_bytes() - before
    assert len(revocations) == args.ids

    trust_key = yibao_core.sm2_generate_private_key()
    public = yibao_core.sm2_public_key(trust_key)
    trust = yibao_core.TrustList.from_json(
        '{"version": 1, "keys": [{"key_id": "%s", "public_key": "%s", "not_before": "2020-01-01T00:00:00Z",'
        ' "not_after": "2100-01-01T00:00:00Z"}]}' % (yibao_core.key_id(public), public.hex())
    )
    now = int(time.time() * 1000)
    revoked = [sample[i:i + 16].hex() for i in range(0, len(sample), 16)]
    codes = [yibao_core.issue(trust_key, credential_id=c, insured_region="440300", channel=2, issued_at_ms=now)
             for c in revoked]
    started = time.perf_counter()
    results = yibao_core.check_batch(codes, trust, now, revocations=revocations)
    check_s = time.perf_counter() - started
    assert all(r.outcome == "REVOKED" for r in results)

    print(f"Machine: {machine.describe()}\n")
    print("| what | figure |")
    print("|---|---:|")
    print(f"| revoked ids loaded | {args.ids:,} |")
    print(f"| resident memory added | {grown / 2**20:,.0f} MiB ({grown / args.ids:.1f} bytes per id) |")
    print(f"| bulk load (revoke_many, 1M ids per call) | {args.ids / load_s:,.0f} ids/s |")
    print(f"| check_batch of {len(codes)} revoked codes against the full set | {len(codes) / check_s:,.0f} codes/s, all REVOKED |")


if __name__ == "__main__":
    main()
