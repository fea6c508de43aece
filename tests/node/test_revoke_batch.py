"""Admin.RevokeBatch and `yibao revoke --from-file`, on real nodes over
real gRPC with a real redis-server: thousands recorded in one call and
enforced at another node within a second, all or nothing, idempotent, and a
bulk load from a file in batches of 10,000."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from server.local import Issuer, Node, Redis
from yibao.v1 import admin_pb2, admin_pb2_grpc, common_pb2, verifier_pb2, verifier_pb2_grpc

HOSPITAL = "H44030500001"
REASONS = [common_pb2.REVOCATION_REASON_LOST, common_pb2.REVOCATION_REASON_FROZEN,
           common_pb2.REVOCATION_REASON_CANCELLED, common_pb2.REVOCATION_REASON_DECEASED]  # fmt: skip


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, Node, Redis, Issuer]]:
    work = tmp_path_factory.mktemp("revoke-batch")
    redis = Redis(work / "redis").start()
    issuer = Issuer.create(work)
    a = Node(work / "a", redis.url, issuer.trust_list_path).start()
    b = Node(work / "b", redis.url, issuer.trust_list_path).start()
    try:
        yield a, b, redis, issuer
    finally:
        a.stop()
        b.stop()
        redis.stop()


def _ids(n: int) -> list[str]:
    return [os.urandom(16).hex().upper() for _ in range(n)]


def _verify(node: Node, issuer: Issuer, cid: str) -> verifier_pb2.VerifyResponse:
    with node.channel() as ch:
        return verifier_pb2_grpc.VerifierStub(ch).Verify(verifier_pb2.VerifyRequest(
            code=issuer.issue(cid, "440300", 2), institution_code=HOSPITAL,
            request_id=f"v-{time.monotonic_ns()}"), timeout=10)  # fmt: skip


def _revoked_count(redis: Redis) -> int:
    """Ids stored over every revocation bucket (a standalone server: one script may read them all)."""
    count = "local n = 0 for _, k in ipairs(redis.call('KEYS', 'yibao:rv:*')) do n = n + redis.call('HLEN', k) end return n"
    return int(redis.command("EVAL", count, "0"))


def test_a_batch_is_enforced_everywhere_within_a_second(two_nodes) -> None:  # type: ignore[no-untyped-def]
    a, b, redis, issuer = two_nodes
    ids = _ids(5_000)
    reasons = [random.choice(REASONS) for _ in ids]
    before = _revoked_count(redis)
    with a.channel() as ch:
        reply = admin_pb2_grpc.AdminStub(ch).RevokeBatch(admin_pb2.RevokeBatchRequest(requests=[
            admin_pb2.RevokeRequest(credential_id=c, reason=r) for c, r in zip(ids, reasons)]), timeout=30)  # fmt: skip
    sent = time.monotonic()
    assert reply.revoked == 5_000
    assert _revoked_count(redis) == before + 5_000
    sample = random.sample(range(5_000), 5)
    for i in sample:  # at the node that took the call: at once
        answer = _verify(a, issuer, ids[i])
        assert (answer.outcome, answer.revocation_reason) == (verifier_pb2.OUTCOME_REVOKED, reasons[i])
    while _verify(b, issuer, ids[sample[0]]).outcome != verifier_pb2.OUTCOME_REVOKED:
        assert time.monotonic() - sent < 1.0, "not enforced at the other node within a second"
        time.sleep(0.02)
    for i in sample:
        answer = _verify(b, issuer, ids[i])
        assert (answer.outcome, answer.revocation_reason) == (verifier_pb2.OUTCOME_REVOKED, reasons[i])

    # Again: idempotent, nothing new.
    with a.channel() as ch:
        admin_pb2_grpc.AdminStub(ch).RevokeBatch(admin_pb2.RevokeBatchRequest(requests=[
            admin_pb2.RevokeRequest(credential_id=c, reason=r) for c, r in zip(ids, reasons)]), timeout=30)  # fmt: skip
    assert _revoked_count(redis) == before + 5_000


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (lambda rs: rs.__setitem__(3, admin_pb2.RevokeRequest(credential_id="XYZ", reason=1)), "requests[3].credential_id"),
        (lambda rs: rs.__setitem__(2, admin_pb2.RevokeRequest(credential_id="A" * 32, reason=0)), "requests[2].reason"),
        (lambda rs: rs.extend([rs[0]] * (10_001 - len(rs))), "requests"),
        (lambda rs: rs.clear(), "requests"),
    ],
)
def test_a_bad_batch_is_refused_whole(two_nodes, bad, field: str) -> None:  # type: ignore[no-untyped-def]
    a, _, redis, issuer = two_nodes
    requests = [admin_pb2.RevokeRequest(credential_id=c, reason=1) for c in _ids(10)]
    bad(requests)
    before = _revoked_count(redis)
    with a.channel() as ch, pytest.raises(grpc.RpcError) as e:
        admin_pb2_grpc.AdminStub(ch).RevokeBatch(admin_pb2.RevokeBatchRequest(requests=requests), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details().startswith(field + ":"), e.value.details()
    assert _revoked_count(redis) == before, "part of a refused batch was applied"
    if requests:
        assert _verify(a, issuer, requests[0].credential_id).outcome == verifier_pb2.OUTCOME_VALID


def test_yibao_revoke_from_file_loads_in_batches(two_nodes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a, b, redis, issuer = two_nodes
    ids = _ids(12_345)
    lines = ["# civil affairs list, 2026-12", *(f"{c}" for c in ids[:12_000]), *(f"{c} lost" for c in ids[12_000:])]
    path = tmp_path / "revocations.txt"
    path.write_text("\n".join(lines) + "\n")
    before = _revoked_count(redis)
    cmd = [sys.executable, "-m", "yibao_client.cli", "--insecure", "--target", a.target, "revoke", "--from-file",
           str(path), "--reason", "deceased"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "12,345 of 12,345" in run.stdout
    assert _revoked_count(redis) == before + 12_345
    last = _verify(b, issuer, ids[-1])
    assert (last.outcome, last.revocation_reason) == (verifier_pb2.OUTCOME_REVOKED, common_pb2.REVOCATION_REASON_LOST)
    first = _verify(b, issuer, ids[0])
    assert first.revocation_reason == common_pb2.REVOCATION_REASON_DECEASED

    path.write_text(f"{ids[0]}\nnot-an-id lost\n")
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and f"{path}:2:" in bad.stderr, bad.stderr


def test_a_node_started_later_holds_every_stored_revocation(two_nodes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Under --snapshot-after a starting node reads the buckets themselves,
    only those its tag's bitmap says were written: whether by a batch or by
    one Revoke, every one must be among them."""
    a, _, redis, issuer = two_nodes
    batch, single = _ids(3_000), _ids(3)
    with a.channel() as ch:
        admin = admin_pb2_grpc.AdminStub(ch)
        admin.RevokeBatch(admin_pb2.RevokeBatchRequest(requests=[
            admin_pb2.RevokeRequest(credential_id=c, reason=common_pb2.REVOCATION_REASON_FROZEN) for c in batch]),
            timeout=30)  # fmt: skip
        for c in single:
            admin.Revoke(admin_pb2.RevokeRequest(credential_id=c, reason=common_pb2.REVOCATION_REASON_CANCELLED),
                         timeout=10)  # fmt: skip
        admin.Restore(admin_pb2.RestoreRequest(credential_id=single[2]), timeout=10)
    late = Node(tmp_path / "late", redis.url, issuer.trust_list_path).start()
    try:
        stored = _revoked_count(redis)
        assert f"revocation mirror loaded exactly from the store: {stored} ids" in late.log.read_text()
        for cid in [*random.sample(batch, 10), single[0], single[1]]:
            want = common_pb2.REVOCATION_REASON_CANCELLED if cid in single else common_pb2.REVOCATION_REASON_FROZEN
            answer = _verify(late, issuer, cid)
            assert (answer.outcome, answer.revocation_reason) == (verifier_pb2.OUTCOME_REVOKED, want), cid
        assert _verify(late, issuer, single[2]).outcome == verifier_pb2.OUTCOME_VALID
    finally:
        late.stop()
