"""Revocations at national size (issue #11): every target, measured on real
nodes over real gRPC and a real redis-server, beside the design before it
in the same run.

    .venv/bin/python benchmarks/revocations_scale.py [--ids 20000000] [--concurrency 4] [--no-current]

This design: node A (--workers 2) and node B on one national redis-server
(hash-max-listpack-entries 512, as the README asks). N ids are imported
through node A's Admin.RevokeBatch, 10,000 a call, `--concurrency` calls in
flight; the nodes build, publish and swap in revocation snapshots as they
go. Then, once a snapshot holds every id:
  - resident bytes per id over all processes of a node (--workers 2): the
    sum of their PSS (shared pages counted once) without the snapshot's
    mapping, plus the snapshot file's whole size (pages count in PSS only
    once touched; in service all are), for a node started after the
    import, less the same for the same node started on the empty store;
    and node A's growth over the import (it took every RevokeBatch);
  - Redis bytes per id: used_memory grown, over N;
  - ready: a fresh node (--workers 2, empty revocation directory) from
    start to SERVING;
  - enforced everywhere: 20 revocations at A, each polled at B until REVOKED;
  - degraded: the store paused, B answers a revocation of the last second
    (in its delta) REVOKED, an id only the snapshot holds UNAVAILABLE, an
    unknown id VALID.

The design before (commit 5c892f0; measured here by the same Redis
commands and core calls that code made, not by running that code): one
hash `{yibao}:revoked`, hex id -> reason text, on a redis-server of its own;
its RevokeBatch script's import rate (called directly, no gRPC, on up to a
million ids); a worker's exact mirror (RevocationSet of every id) in a
process of its own, times two workers; and its start, HSCAN of the whole
hash into the mirror as its load_mirror did.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import grpc  # noqa: E402
import machine  # noqa: E402

from server.local import Issuer, Node, Redis  # noqa: E402
from yibao.v1 import admin_pb2, admin_pb2_grpc, common_pb2, verifier_pb2, verifier_pb2_grpc  # noqa: E402

BATCH = 10_000
# A node's heap shrinks for a few seconds after it starts: both fresh nodes
# are measured this long after SERVING.
SETTLE_S = 5.0
HOSPITAL = "H44030500001"
LISTPACK = ["--hash-max-listpack-entries", "512"]
REASONS = [common_pb2.REVOCATION_REASON_LOST, common_pb2.REVOCATION_REASON_FROZEN,
           common_pb2.REVOCATION_REASON_CANCELLED, common_pb2.REVOCATION_REASON_DECEASED]  # fmt: skip
REASON_TEXT = ["LOST", "FROZEN", "CANCELLED", "DECEASED"]
REASON_BYTES = [b"\x10" + bytes([r]) for r in REASONS]

# The design before, as commit 5c892f0 had it in server/national.py.
OLD_REVOKED = "{yibao}:revoked"
OLD_EVENTS = "{yibao}:events"
OLD_REVOKE_BATCH = """
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'op', 'revoke_batch', 'id', '', 'arg', ARGV[2])
return (#ARGV - 2) / 2
"""


# Odd, so i -> i * MIX mod 2**128 is a bijection: distinct ids, spread over
# every byte, at a fraction of a hash's cost (the load generator shares the
# node's two cores; the node hashes every id itself anyway).
MIX = 0x9E3779B97F4A7C15F39CC0605CEDC835


def ids_for(i: int, count: int, salt: bytes) -> bytes:
    """`count` 16-byte ids starting at index i (the same set for both designs)."""
    key = int.from_bytes(salt, "big")
    return b"".join(((j * MIX) % (1 << 128) ^ key).to_bytes(16, "big") for j in range(i, i + count))


def revoke_batch_bytes(raw: bytes, start: int) -> bytes:
    """A RevokeBatchRequest's wire bytes for the ids in `raw` (the reason of
    id i is REASONS[i % 4]), written directly: field 1 repeated, each a
    RevokeRequest of field 1 (32 hex digits) and field 2 (the reason).
    Building protobuf objects cost the load generator several times more
    CPU than the node spends on them."""
    hexed = raw.hex().encode()
    return b"".join(
        b"\x0a\x24\x0a\x20" + hexed[32 * k : 32 * k + 32] + REASON_BYTES[(start + k) % 4] for k in range(len(raw) // 16)
    )


def used_memory(server: Redis) -> int:
    info = server.command("INFO", "memory").decode()
    return int(next(line for line in info.splitlines() if line.startswith("used_memory:")).split(":")[1])


def pss_of_tree(pid: int) -> int:
    """Resident bytes of a process and its children, for a budget: the sum
    of their proportional set sizes (a page shared by n of them counts 1/n
    in each) without the revocation snapshot's mapping, plus that file's
    whole size once. A mapped page counts only once a lookup touched it,
    and in service lookups touch them all."""
    total = 0
    snapshots: set[str] = set()
    for p in [pid, *children(pid)]:
        try:
            with open(f"/proc/{p}/smaps") as f:
                mapping = ""
                for line in f:
                    head = line.split()
                    if head and "-" in head[0] and len(head) >= 5 and not line.startswith(("Pss", "Rss")):
                        mapping = head[5] if len(head) > 5 else ""
                    elif line.startswith("Pss:"):
                        if mapping.endswith(".fuse"):
                            snapshots.add(mapping)
                        else:
                            total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total + sum(os.path.getsize(m) for m in snapshots if os.path.exists(m))


def children(pid: int) -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(p))
            except (OSError, ValueError, IndexError):
                pass
    return out


RETRIED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.RESOURCE_EXHAUSTED)


async def import_ids(
    node: Node, n: int, salt: bytes, concurrency: int, deadline_s: float, retries: dict[str, int]
) -> float:
    """RevokeBatch of every id through `node`; returns seconds. `retries`
    counts the calls sent again, by status."""
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    for start in range(0, n, BATCH):
        queue.put_nowait(start)
    for _ in range(concurrency):
        queue.put_nowait(None)
    sample = ids_for(5, 3, salt)
    assert revoke_batch_bytes(sample, 5) == admin_pb2.RevokeBatchRequest(requests=[
        admin_pb2.RevokeRequest(credential_id=sample[k:k + 16].hex(), reason=REASONS[(5 + k // 16) % 4])
        for k in range(0, len(sample), 16)]).SerializeToString(), "revoke_batch_bytes is not the protobuf encoding"  # fmt: skip
    started = time.perf_counter()
    async with grpc.aio.insecure_channel(node.target, options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
        revoke_batch = ch.unary_unary(
            "/yibao.v1.Admin/RevokeBatch", request_serializer=None, response_deserializer=admin_pb2.RevokeBatchResponse.FromString
        )

        async def worker() -> None:
            while (start := await queue.get()) is not None:
                if time.perf_counter() - started > deadline_s:
                    raise TimeoutError(f"import not done within {deadline_s:g} s")
                req = revoke_batch_bytes(ids_for(start, min(BATCH, n - start), salt), start)
                # As a bulk loader should: RevokeBatch is idempotent, so a
                # call refused or cut short by a busy node is sent again.
                for attempt in range(6):
                    try:
                        await revoke_batch(req, timeout=120)
                        break
                    except grpc.aio.AioRpcError as e:
                        if attempt == 5 or e.code() not in RETRIED:
                            raise
                        retries[e.code().name] = retries.get(e.code().name, 0) + 1
                        await asyncio.sleep(0.2 * 2**attempt)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


def verify(node: Node, issuer: Issuer, cid: str, timeout: float = 10) -> str:
    with node.channel() as ch:
        try:
            resp = verifier_pb2_grpc.VerifierStub(ch).Verify(verifier_pb2.VerifyRequest(
                code=issuer.issue(cid, "440300", 2), institution_code=HOSPITAL,
                request_id=f"v-{time.monotonic_ns()}"), timeout=timeout)  # fmt: skip
        except grpc.RpcError as e:
            return e.code().name
        return verifier_pb2.Outcome.Name(resp.outcome).removeprefix("OUTCOME_")


def snapshot_ids(server: Redis) -> int:
    raw = server.command("HGET", "{yibao}:snapshot", "ids")
    return int(raw) if raw else 0


def wait_for(what: str, ready, timeout_s: float, every_s: float = 1.0) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not ready():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{what}: not within {timeout_s:g} s")
        time.sleep(every_s)
    return time.monotonic() - started


def taken(node: Node, generation: int) -> bool:
    return f"revocation snapshot {generation} taken" in node.log.read_text(errors="replace") or (
        f"loaded from snapshot {generation}" in node.log.read_text(errors="replace")
    )


def this_design(work: Path, n: int, concurrency: int, issuer: Issuer, salt: bytes) -> dict[str, float]:
    server = Redis(work / "redis-new", extra=LISTPACK).start()
    # The province's store apart, as in production: its audit log records
    # every id of every RevokeBatch, and is not the national store's cost.
    regional = Redis(work / "redis-regional").start()
    regional_flag = ["--regional-redis-url", regional.url]
    nodes: list[Node] = []
    figures: dict[str, float] = {}
    try:
        redis_before, regional_before = used_memory(server), used_memory(regional)
        a = Node(work / "a", server.url, issuer.trust_list_path,
                 extra=["--workers", "2", "--revocation-dir", str(work / "a-dir"), *regional_flag]).start()  # fmt: skip
        nodes.append(a)
        b = Node(work / "b", server.url, issuer.trust_list_path,
                 extra=["--revocation-dir", str(work / "b-dir"), *regional_flag]).start()  # fmt: skip
        nodes.append(b)
        assert a.proc is not None
        pss_before = pss_of_tree(a.proc.pid)
        # The baseline of the fresh node measured after the import: the same
        # node, started the same way on the store still empty.
        empty = Node(work / "c-empty", server.url, issuer.trust_list_path,
                     extra=["--workers", "2", "--revocation-dir", str(work / "c-empty-dir"), *regional_flag]).start()  # fmt: skip
        assert empty.proc is not None
        time.sleep(SETTLE_S)
        pss_empty = pss_of_tree(empty.proc.pid)
        empty.stop()
        retries: dict[str, int] = {}
        seconds = asyncio.run(import_ids(a, n, salt, concurrency, deadline_s=max(600.0, n / 10_000), retries=retries))
        rate = n / seconds
        figures["import_ids_per_s"] = rate
        print(f"  imported {n:,} ids in {seconds:.1f} s: {rate:,.0f} ids/s; calls sent again: {retries or 'none'}", flush=True)
        # A snapshot of (nearly) everything: the last batches may be in the delta.
        wait_for("a snapshot holding the import", lambda: snapshot_ids(server) >= n * 0.9, timeout_s=max(900.0, n / 20_000))
        generation = int(server.command("HGET", "{yibao}:snapshot", "generation"))
        wait_for("both nodes on the snapshot", lambda: taken(a, generation) and taken(b, generation), timeout_s=600)
        time.sleep(35)  # superseded snapshots' chunks expire after 30 s
        pss_after = pss_of_tree(a.proc.pid)
        redis_after = used_memory(server)
        figures["importing_node_bytes_per_id"] = (pss_after - pss_before) / n
        figures["redis_bytes_per_id"] = (redis_after - redis_before) / n
        figures["audit_bytes_per_id"] = (used_memory(regional) - regional_before) / n
        stream_len = int(server.command("XLEN", "{yibao}:events"))
        print(f"  snapshot {generation}: {snapshot_ids(server):,} ids; node A PSS {pss_before / 2**20:.0f} -> "
              f"{pss_after / 2**20:.0f} MiB; Redis {redis_before / 2**20:.0f} -> {redis_after / 2**20:.0f} MiB; "
              f"stream {stream_len} events", flush=True)  # fmt: skip

        # Enforced everywhere: revoke at A, poll B.
        lags = []
        with a.channel() as ch:
            admin = admin_pb2_grpc.AdminStub(ch)
            for i in range(20):
                cid = os.urandom(16).hex()
                admin.Revoke(admin_pb2.RevokeRequest(credential_id=cid, reason=REASONS[i % 4]), timeout=10)
                sent = time.monotonic()
                while verify(b, issuer, cid) != "REVOKED":
                    if time.monotonic() - sent > 5:
                        break
                    time.sleep(0.02)
                lags.append(time.monotonic() - sent)
        figures["enforced_max_s"] = max(lags)

        # Degraded: the store paused.
        old_id = ids_for(7, 1, salt).hex()
        fresh = os.urandom(16).hex()
        with a.channel() as ch:
            admin_pb2_grpc.AdminStub(ch).Revoke(admin_pb2.RevokeRequest(credential_id=fresh, reason=REASONS[0]), timeout=10)
        time.sleep(1.0)
        server.pause()
        try:
            time.sleep(2.0)
            degraded = (verify(b, issuer, fresh, 15), verify(b, issuer, old_id, 15), verify(b, issuer, os.urandom(16).hex(), 15))
        finally:
            server.resume()
        figures["degraded_ok"] = float(degraded == ("REVOKED", "UNAVAILABLE", "VALID"))
        print(f"  degraded (revoked since / only in the snapshot / unknown): {degraded}", flush=True)

        # Ready: a fresh node with --workers 2 and an empty directory.
        started = time.monotonic()
        c = Node(work / "c", server.url, issuer.trust_list_path,
                 extra=["--workers", "2", "--revocation-dir", str(work / "c-dir"), *regional_flag]).start(timeout_s=600)  # fmt: skip
        nodes.append(c)
        figures["ready_s"] = time.monotonic() - started
        assert c.proc is not None
        time.sleep(SETTLE_S)
        pss_c = pss_of_tree(c.proc.pid)
        figures["node_bytes_per_id"] = (pss_c - pss_empty) / n
        print(f"  fresh node PSS {pss_empty / 2**20:.0f} MiB on the empty store -> {pss_c / 2**20:.0f} MiB after the import",
              flush=True)  # fmt: skip
        assert verify(c, issuer, ids_for(n - 1, 1, salt).hex()) == "REVOKED", "the fresh node misses the last id"
        checked = [verify(c, issuer, ids_for(i, 1, salt).hex()) for i in range(0, n, max(1, n // 200))]
        assert set(checked) == {"REVOKED"}, f"the fresh node answered {set(checked)} for imported ids"
    finally:
        for node in nodes:
            node.stop()
        server.stop()
        regional.stop()
    return figures


def before_design(work: Path, n: int, salt: bytes) -> dict[str, float]:
    figures: dict[str, float] = {}
    server = Redis(work / "redis-old").start()
    try:
        before = used_memory(server)
        # The hash as that design held it, filled fast (bytes do not depend on how).
        for start in range(0, n, 100_000):
            raw = ids_for(start, min(100_000, n - start), salt)
            args: list[str] = []
            for k in range(0, len(raw), 16):
                args += (raw[k:k + 16].hex().upper(), REASON_TEXT[(start + k // 16) % 4])
            for j in range(0, len(args), 2000):
                server.command("HSET", OLD_REVOKED, *args[j:j + 2000])
        figures["redis_bytes_per_id"] = (used_memory(server) - before) / n
        # Its RevokeBatch script, called directly, on up to a million more ids.
        m = min(n, 1_000_000)
        started = time.perf_counter()
        for start in range(0, m, BATCH):
            raw = ids_for(n + start, min(BATCH, m - start), salt)
            pairs = [(raw[k:k + 16].hex().upper(), REASON_TEXT[k % 4]) for k in range(0, len(raw), 16)]
            packed = ",".join(f"{c}:{r}" for c, r in pairs)
            server.command("EVAL", OLD_REVOKE_BATCH, "2", OLD_REVOKED, OLD_EVENTS, "1000000", packed,
                           *(x for p in pairs for x in p))  # fmt: skip
        figures["import_ids_per_s"] = m / (time.perf_counter() - started)
        server.command("DEL", OLD_EVENTS)
        # A worker's start (load_mirror: HSCAN into the exact mirror) and its
        # resident bytes, in a process of its own.
        out = subprocess.run([sys.executable, "-c", _OLD_WORKER, server.url], capture_output=True, text=True, check=True, timeout=3600)
        loaded = json.loads(out.stdout)
        figures["ready_s"] = loaded["seconds"]
        figures["node_bytes_per_id"] = 2 * loaded["rss_grown"] / loaded["ids"]
    finally:
        server.stop()
    return figures


# What one worker of that design did at start, as its load_mirror did.
_OLD_WORKER = r"""
import asyncio, json, sys, time
import redis.asyncio as aioredis
import yibao_core

def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))

async def main(url):
    before = rss()
    started = time.perf_counter()
    r = aioredis.from_url(url)
    mirror = yibao_core.RevocationSet()
    by_reason = {}
    async for cid, reason in r.hscan_iter("{yibao}:revoked", count=10_000):
        by_reason.setdefault(reason.decode(), bytearray()).extend(bytes.fromhex(cid.decode()))
    for reason, ids in by_reason.items():
        mirror.revoke_many(bytes(ids), reason)
    seconds = time.perf_counter() - started
    del by_reason
    import gc; gc.collect()
    print(json.dumps({"seconds": seconds, "rss_grown": rss() - before, "ids": len(mirror)}))
    await r.aclose()

asyncio.run(main(sys.argv[1]))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ids", type=int, default=20_000_000, help="revoked ids (default %(default)s)")
    p.add_argument("--concurrency", type=int, default=4, help="RevokeBatch calls in flight (default %(default)s)")
    p.add_argument("--no-current", action="store_true", help="skip the design before (it needs ~180 bytes an id of memory)")
    a = p.parse_args()
    if a.ids < 200_000:
        p.error("--ids: at least 200,000 (a snapshot is built past 100,000)")
    print(f"# Revocations at {a.ids:,} ids ({machine.describe()})", flush=True)
    salt = os.urandom(16)
    with tempfile.TemporaryDirectory(prefix="yibao-rvscale-") as tmp:
        work = Path(os.environ.get("YIBAO_BENCH_KEEP") or tmp)
        issuer = Issuer.create(work)
        print("this design:", flush=True)
        new = this_design(work, a.ids, a.concurrency, issuer, salt)
        old: dict[str, float] = {}
        if not a.no_current:
            print("the design before:", flush=True)
            old = before_design(work, a.ids, salt)

    def cell(d: dict[str, float], k: str, fmt: str) -> str:
        return format(d[k], fmt) if k in d else "not run"

    rows = [
        ("resident bytes per revoked id, all processes of a node with --workers 2", "node_bytes_per_id", ".2f", "<= 4", lambda v: v <= 4),
        ("Redis bytes per revoked id", "redis_bytes_per_id", ".1f", "<= 40", lambda v: v <= 40),
        ("node ready after start, s", "ready_s", ".1f", "<= 60", lambda v: v <= 60),
        ("bulk import, ids/s", "import_ids_per_s", ",.0f", ">= 100,000", lambda v: v >= 100_000),
        ("a new revocation enforced at another node, worst of 20, s", "enforced_max_s", ".2f", "<= 1", lambda v: v <= 1),
    ]
    print(f"\n| figure ({a.ids:,} ids) | this design | the design before | target | met |")
    print("|---|---:|---:|---|---|")
    all_met = True
    for name, key, fmt, target, ok in rows:
        met = ok(new[key])
        all_met &= met
        print(f"| {name} | {cell(new, key, fmt)} | {cell(old, key, fmt)} | {target} | {'yes' if met else 'NO'} |")
    degraded = bool(new.get("degraded_ok"))
    all_met &= degraded
    print(f"| degraded mode answers from local data (REVOKED / UNAVAILABLE for a maybe / VALID) | "
          f"{'yes' if degraded else 'no'} | | yes | {'yes' if degraded else 'NO'} |")  # fmt: skip
    print(f"\nnode A, which took every RevokeBatch: {new['importing_node_bytes_per_id']:.2f} resident bytes per id")
    print(f"the regional store's audit log, which lists every id of each RevokeBatch: {new['audit_bytes_per_id']:.1f} bytes per id")
    print(f"\n{'every target met' if all_met else 'NOT every target met'}")


if __name__ == "__main__":
    main()
