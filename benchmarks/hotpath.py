"""The node's per-code Python, in process and without gRPC: VerifyEngine.verify
on batches of fresh valid codes against a private redis-server, timed per
code and split by stage with cProfile. A quiet, repeatable figure for
before/after comparisons of server/engine.py and server/tokens.py (the
whole-node figures of benchmarks/node.py move with whatever else the machine
runs).

    .venv/bin/python benchmarks/hotpath.py [--batch 500] [--batches 40] [--profile]

Prints the server CPU per code of engine.verify (process time, so the core's
worker threads count), beside the core's check_batch alone on the same codes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import machine  # noqa: E402

import yibao_core  # noqa: E402
from server.config import Config  # noqa: E402
from server.engine import VerifyEngine  # noqa: E402
from server.local import Issuer, Redis  # noqa: E402
from server.national import NationalStore  # noqa: E402
from server.state import NodeState  # noqa: E402
from yibao.v1 import verifier_pb2  # noqa: E402


def codes(issuer: Issuer, n: int) -> list[verifier_pb2.VerifyRequest]:
    now = int(time.time() * 1000)
    return [
        verifier_pb2.VerifyRequest(
            code=yibao_core.issue(issuer.private_key, credential_id=os.urandom(16).hex(), insured_region="440300",
                                  channel=1 + i % 5, issued_at_ms=now, ttl_s=300),
            institution_code=f"H440300{i % 20:05d}",
            request_id=f"bench-{i}",
        )
        for i in range(n)
    ]


async def measure(redis_url: str, issuer: Issuer, batch: int, batches: int, profile: bool) -> dict[str, float]:
    store = NationalStore(redis_url)
    await store.ping()
    trust = yibao_core.TrustList.from_json(issuer.trust_list_path.read_text())
    engine = VerifyEngine(Config(), store, NodeState(trust_list=trust), await store.token_key())
    reqs = codes(issuer, batch * (batches + 2))
    chunks = [reqs[i : i + batch] for i in range(0, len(reqs), batch)]
    for r in await engine.verify(chunks.pop()):  # warm-up
        assert r.outcome == verifier_pb2.OUTCOME_VALID
    prof = cProfile.Profile() if profile else None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if prof:
        prof.enable()
    for chunk in chunks[:batches]:
        answers = await engine.verify(chunk)
    if prof:
        prof.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    assert all(r.outcome == verifier_pb2.OUTCOME_VALID for r in answers)
    n = batch * batches
    # The core alone on codes of the same kind (replays are not its business).
    now = int(time.time() * 1000)
    texts = [r.code for r in chunks[-1]]
    c0 = time.process_time()
    for _ in range(batches):
        yibao_core.check_batch(texts, trust, now, revocations=NodeState(trust_list=trust).mirror)
    core = time.process_time() - c0
    engine.close()
    await store.close()
    if prof:
        stats = pstats.Stats(prof)
        stats.sort_stats("tottime").print_stats(25)
    return {"engine_us": cpu / n * 1e6, "engine_wall_us": wall / n * 1e6, "core_us": core / n * 1e6}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--profile", action="store_true", help="print cProfile's top functions (slows the figures)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="yibao-hotpath-") as tmp:
        redis = Redis(Path(tmp) / "redis").start()
        try:
            issuer = Issuer.create(Path(tmp))
            f = asyncio.run(measure(redis.url, issuer, a.batch, a.batches, a.profile))
        finally:
            redis.stop()
    print(f"Machine: {machine.describe()}\n")
    print(f"| per code, batches of {a.batch} | CPU µs |")
    print("|---|---:|")
    print(f"| VerifyEngine.verify (core + replay record + responses + metrics) | {f['engine_us']:.1f} |")
    print(f"| yibao_core.check_batch alone | {f['core_us']:.1f} |")
    print(f"| Python around the core | {f['engine_us'] - f['core_us']:.1f} |")
    print(f"\nwall time per code of VerifyEngine.verify: {f['engine_wall_us']:.1f} µs")


if __name__ == "__main__":
    main()
