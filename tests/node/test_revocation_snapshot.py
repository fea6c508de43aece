"""The revocation snapshot at CI size (#11): nodes with --snapshot-after 2000
on one real redis-server; 6,000 revocations make one of them build and
publish the binary fuse filter, every node swaps it in, and Verify still
answers exactly: REVOKED with the stored reason for ids only the filter
holds, VALID for an id the filter wrongly says "maybe" to, VALID after a
restoration, REVOKED for what came after. A node started later loads the
snapshot instead of every revocation; the workers of a node map one file;
with the national store gone a "maybe" is UNAVAILABLE, never a guess."""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

import yibao_core
from server.local import Issuer, Node, Redis
from yibao.v1 import admin_pb2, admin_pb2_grpc, common_pb2, verifier_pb2, verifier_pb2_grpc

HOSPITAL = "H44030500001"
REASONS = {
    common_pb2.REVOCATION_REASON_LOST: "LOST",
    common_pb2.REVOCATION_REASON_FROZEN: "FROZEN",
    common_pb2.REVOCATION_REASON_CANCELLED: "CANCELLED",
    common_pb2.REVOCATION_REASON_DECEASED: "DECEASED",
}
SNAPSHOT_AFTER = 2000
IDS = 6000


class Cluster:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.redis = Redis(work / "redis").start()
        self.issuer = Issuer.create(work)
        self.nodes: list[Node] = []

    def node(self, name: str, *extra: str) -> Node:
        n = Node(self.work / name, self.redis.url, self.issuer.trust_list_path,
                 extra=["--snapshot-after", str(SNAPSHOT_AFTER), *extra]).start()  # fmt: skip
        self.nodes.append(n)
        return n

    def verify(self, node: Node, cid: str, timeout: float = 10) -> verifier_pb2.VerifyResponse:
        with node.channel() as ch:
            return verifier_pb2_grpc.VerifierStub(ch).Verify(verifier_pb2.VerifyRequest(
                code=self.issuer.issue(cid, "440300", 2), institution_code=HOSPITAL,
                request_id=f"v-{time.monotonic_ns()}"), timeout=timeout)  # fmt: skip

    def admin(self, node: Node) -> admin_pb2_grpc.AdminStub:
        return admin_pb2_grpc.AdminStub(node.channel())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, dict[str, int]]]:
    c = Cluster(tmp_path_factory.mktemp("snapshot"))
    shared = c.work / "shared-dir"
    try:
        a = c.node("a")
        c.node("b", "--workers", "2", "--revocation-dir", str(shared))
        revoked = {os.urandom(16).hex().upper(): random.choice(list(REASONS)) for _ in range(IDS)}
        items = list(revoked.items())
        for start in range(0, IDS, 3000):
            c.admin(a).RevokeBatch(admin_pb2.RevokeBatchRequest(requests=[
                admin_pb2.RevokeRequest(credential_id=cid, reason=r) for cid, r in items[start:start + 3000]]),
                timeout=30)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not c.redis.command("HGET", "{yibao}:snapshot", "generation"):
            time.sleep(0.5)
        yield c, revoked
    finally:
        for n in c.nodes:
            n.stop()
        c.redis.stop()


def _generation(c: Cluster) -> int:
    raw = c.redis.command("HGET", "{yibao}:snapshot", "generation")
    assert raw, "no revocation snapshot was published after 6,000 revocations with --snapshot-after 2000"
    return int(raw)


def _taken(node: Node, generation: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if f"revocation snapshot {generation} taken" in node.log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{node.target} did not take snapshot {generation}: {node.log.read_text()[-2000:]}")


def test_every_node_takes_the_snapshot_and_answers_exactly(world) -> None:  # type: ignore[no-untyped-def]
    c, revoked = world
    generation = _generation(c)
    meta = c.redis.command("HGETALL", "{yibao}:snapshot")
    fields = dict(zip(meta[::2], meta[1::2]))
    assert int(fields[b"ids"]) >= SNAPSHOT_AFTER
    for node in c.nodes:
        _taken(node, generation)
    for node in c.nodes:
        for cid in random.sample(list(revoked), 20):
            resp = c.verify(node, cid)
            assert verifier_pb2.Outcome.Name(resp.outcome) == "OUTCOME_REVOKED", cid
            assert resp.revocation_reason == revoked[cid], cid
        assert verifier_pb2.Outcome.Name(c.verify(node, os.urandom(16).hex()).outcome) == "OUTCOME_VALID"


def test_the_workers_of_a_node_map_one_file(world) -> None:  # type: ignore[no-untyped-def]
    c, _ = world
    generation = _generation(c)
    b = c.nodes[1]
    _taken(b, generation)
    files = sorted((c.work / "shared-dir").glob("revocations-*.fuse"))
    assert [f.name for f in files] == [f"revocations-{generation:012d}.fuse"], files
    workers = [int(p) for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == b.proc.pid]  # type: ignore[union-attr]
    assert len(workers) == 2
    mapped = {_mapped_inode(pid, files[0].name) for pid in workers}
    assert mapped == {files[0].stat().st_ino}, f"each worker should map the one file: {mapped}"


def test_a_false_maybe_is_valid_and_changes_since_are_exact(world) -> None:  # type: ignore[no-untyped-def]
    c, revoked = world
    generation = _generation(c)
    a = c.nodes[0]
    _taken(a, generation)
    snapshot = next((c.work / "shared-dir").glob(f"revocations-{generation:012d}.fuse"))
    view = yibao_core.RevocationSet(snapshot)
    # An id the filter says "maybe" to though it was never revoked (one in
    # 65,536): only the national store's answer keeps it VALID.
    stranger = next(cid for cid in (os.urandom(16) for _ in range(5_000_000)) if view.reason(cid) == "UNCONFIRMED")
    assert stranger.hex().upper() not in revoked
    assert verifier_pb2.Outcome.Name(c.verify(a, stranger.hex()).outcome) == "OUTCOME_VALID"
    # Restored after the snapshot: the tombstone overrules the filter at every node.
    restored = next(iter(revoked))
    c.admin(a).Restore(admin_pb2.RestoreRequest(credential_id=restored), timeout=10)
    late = os.urandom(16).hex().upper()
    c.admin(a).Revoke(admin_pb2.RevokeRequest(credential_id=late, reason=common_pb2.REVOCATION_REASON_DECEASED), timeout=10)
    time.sleep(1.0)
    for node in c.nodes:
        assert verifier_pb2.Outcome.Name(c.verify(node, restored).outcome) == "OUTCOME_VALID"
        resp = c.verify(node, late)
        assert verifier_pb2.Outcome.Name(resp.outcome) == "OUTCOME_REVOKED"
        assert resp.revocation_reason == common_pb2.REVOCATION_REASON_DECEASED
    # Put back for the tests after this one.
    c.admin(a).Revoke(admin_pb2.RevokeRequest(credential_id=restored, reason=revoked[restored]), timeout=10)


def test_a_node_started_later_loads_the_snapshot(world) -> None:  # type: ignore[no-untyped-def]
    c, revoked = world
    generation = _generation(c)
    late = c.node("late")
    assert f"revocation mirror loaded from snapshot {generation}" in late.log.read_text()
    for cid in random.sample(list(revoked), 20):
        resp = c.verify(late, cid)
        assert verifier_pb2.Outcome.Name(resp.outcome) == "OUTCOME_REVOKED", cid
        assert resp.revocation_reason == revoked[cid]


def test_a_node_serves_only_once_it_holds_what_came_after_the_snapshot(world) -> None:  # type: ignore[no-untyped-def]
    """Revocations after the snapshot's position are in a starting node's
    mirror before it says SERVING, not left to its follower: its start-up
    line counts them."""
    c, _ = world
    generation = _generation(c)
    a = c.nodes[0]
    tail = [os.urandom(16).hex().upper() for _ in range(1_500)]  # under --snapshot-after: no new build
    c.admin(a).RevokeBatch(admin_pb2.RevokeBatchRequest(requests=[
        admin_pb2.RevokeRequest(credential_id=cid, reason=common_pb2.REVOCATION_REASON_LOST) for cid in tail]),
        timeout=30)  # fmt: skip
    assert _generation(c) == generation, "a new snapshot would hold the tail and prove nothing"
    snapshot_ids = int(c.redis.command("HGET", "{yibao}:snapshot", "ids"))
    starting = c.node("after-tail")
    line = next(x for x in starting.log.read_text().splitlines() if " serving on port " in x)
    counted = int(re.search(r"(\d+) revoked credentials", line).group(1))  # type: ignore[union-attr]
    assert counted >= snapshot_ids + len(tail), line
    for cid in random.sample(tail, 20):
        assert verifier_pb2.Outcome.Name(c.verify(starting, cid).outcome) == "OUTCOME_REVOKED", cid


def test_with_the_store_gone_a_maybe_is_unavailable_not_a_guess(world) -> None:  # type: ignore[no-untyped-def]
    c, revoked = world
    a = c.nodes[0]
    in_snapshot = random.choice(list(revoked))
    c.redis.pause()
    try:
        time.sleep(2.0)  # past CONTACT_LOST_S: degraded
        with pytest.raises(grpc.RpcError) as e:
            c.verify(a, in_snapshot, timeout=15)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "may be revoked" in (e.value.details() or "")
        # An id the filter certainly does not hold is answered from local data.
        assert verifier_pb2.Outcome.Name(c.verify(a, os.urandom(16).hex(), timeout=15).outcome) == "OUTCOME_VALID"
    finally:
        c.redis.resume()


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def _mapped_inode(pid: int, name: str) -> int:
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            if line.rstrip().endswith(name):
                return int(line.split()[4])
    raise AssertionError(f"worker {pid} does not map {name}")


def test_builds_are_paced_by_the_last_build() -> None:
    """A new build waits BUILD_PACE times as long as the last one took, so
    a bulk load spends at most a fifth of the time building."""
    from server.snapshot import BUILD_PACE, Meta

    last = Meta(7, b"1-0", 100, 226, "00", 1, published_ms=1_000_000, build_ms=2_000)
    assert BUILD_PACE == 4
    assert not last.due(1_000_000 + 8_000 - 1)
    assert last.due(1_000_000 + 8_000)
    assert Meta.parse({k.encode(): str(getattr(last, k)).encode() for k in Meta.__dataclass_fields__} | {b"position": b"1-0"}) == last
