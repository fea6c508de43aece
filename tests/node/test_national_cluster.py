"""The national store on a Redis Cluster (redis+cluster://): three masters
on loopback, two nodes sharing revocations and the replay record."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from server.local import Issuer, Node, Redis, free_port
from yibao.v1 import admin_pb2, admin_pb2_grpc, common_pb2, verifier_pb2, verifier_pb2_grpc

HOSPITAL = "H44030500001"


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 < 65536:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair for a cluster member")


@dataclass
class ClusterMember(Redis):
    port: int = field(default_factory=_cluster_port)

    def start(self) -> ClusterMember:  # type: ignore[override]
        server = shutil.which("redis-server")
        assert server, "redis-server is not installed: run scripts/setup"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--logfile", str(self.workdir / "redis.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while not self._pings():
            assert time.monotonic() < deadline, "cluster member did not start"
            time.sleep(0.05)
        return self


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("cluster")
    members: list[ClusterMember] = []
    try:
        for i in range(3):
            members.append(ClusterMember(work / f"m{i}"))
            members[-1].start()
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{m.port}" for m in members),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )
        deadline = time.monotonic() + 20
        while b"cluster_state:ok" not in subprocess.run(
            ["redis-cli", "-p", str(members[0].port), "cluster", "info"], capture_output=True, timeout=10
        ).stdout:
            assert time.monotonic() < deadline, "cluster did not come up"
            time.sleep(0.1)
        yield f"redis+cluster://127.0.0.1:{members[0].port}", work
    finally:
        for m in members:
            m.stop()


def _verify(node: Node, code: str, request_id: str) -> verifier_pb2.VerifyResponse:
    with grpc.insecure_channel(node.target) as ch:
        return verifier_pb2_grpc.VerifierStub(ch).Verify(
            verifier_pb2.VerifyRequest(code=code, institution_code=HOSPITAL, request_id=request_id), timeout=10
        )


def test_two_nodes_share_state_through_a_cluster(cluster) -> None:  # type: ignore[no-untyped-def]
    url, work = cluster
    issuer = Issuer.create(work)
    # A cluster without replicas: nothing can acknowledge a write but its primary.
    solo = ("--min-replicas", "0")
    a = Node(work / "a", url, issuer.trust_list_path, extra=solo).start()
    b = Node(work / "b", url, extra=solo).start()  # no file: takes the trust list a published
    try:
        # Codes of many credentials, so the replay records fall in many slots.
        ids = [f"{i:X}" * 32 for i in range(1, 16)]
        codes = [issuer.issue(cid, "440300", 2) for cid in ids]
        with grpc.insecure_channel(a.target) as ch:
            batch = verifier_pb2_grpc.VerifierStub(ch).VerifyBatch(
                verifier_pb2.VerifyBatchRequest(
                    requests=[verifier_pb2.VerifyRequest(code=c, institution_code=HOSPITAL, request_id=f"a{i}")
                              for i, c in enumerate(codes)]
                ),
                timeout=10,
            )
        assert [r.outcome for r in batch.responses] == [verifier_pb2.OUTCOME_VALID] * len(codes)
        assert all(_verify(b, c, f"b{i}").outcome == verifier_pb2.OUTCOME_REPLAYED for i, c in enumerate(codes))

        with grpc.insecure_channel(a.target) as ch:
            admin_pb2_grpc.AdminStub(ch).Revoke(
                admin_pb2.RevokeRequest(credential_id=ids[0], reason=common_pb2.REVOCATION_REASON_DECEASED), timeout=10
            )
        deadline = time.monotonic() + 1.0
        while True:
            resp = _verify(b, issuer.issue(ids[0], "440300", 2), f"poll-{time.monotonic_ns()}")
            if resp.outcome == verifier_pb2.OUTCOME_REVOKED:
                break
            assert time.monotonic() < deadline, "revocation at node a not enforced at node b within 1 s"
            time.sleep(0.05)
        assert resp.revocation_reason == common_pb2.REVOCATION_REASON_DECEASED
    finally:
        a.stop()
        b.stop()
