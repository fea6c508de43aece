"""A code that nobody signed, carrying a trusted key id and a time beyond
what a protobuf Timestamp can hold, gets its own outcome and takes no other
code of its batch down with it."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import grpc
import pytest

import yibao_core
from server.local import Issuer, Node, Redis
from yibao.v1 import verifier_pb2, verifier_pb2_grpc

HOSPITAL = "H44030500001"


def _forged(key_id: str, issued_at_ms: int) -> str:
    signed = struct.pack(
        ">BB4s16s16s6sBQH8s",
        1, 0, bytes.fromhex(key_id), b"\x5a" * 16, bytes(16), b"440300", 2, issued_at_ms, 60,
        os.urandom(8),
    )
    return "YB1:" + yibao_core.base45_encode(signed + os.urandom(64))


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    work: Path = tmp_path_factory.mktemp("forged")
    redis = Redis(work / "redis").start()
    issuer = Issuer.create(work)
    node = Node(work / "node", redis.url, issuer.trust_list_path)
    try:
        node.start()
        yield node, issuer
    finally:
        node.stop()
        redis.stop()


@pytest.mark.parametrize("issued_at_ms", [2**62, 2**64 - 1, 253_402_300_800_000])
def test_time_beyond_timestamp_range_answers_alone(node, issued_at_ms: int) -> None:  # type: ignore[no-untyped-def]
    n, issuer = node
    key_id = yibao_core.key_id(yibao_core.sm2_public_key(issuer.private_key))
    good = issuer.issue("3A7C0F19B2D44E8A9C115E6B0D2F4A71", "440300", 2)
    requests = [
        verifier_pb2.VerifyRequest(code=good, institution_code=HOSPITAL, request_id=f"good-{time.monotonic_ns()}"),
        verifier_pb2.VerifyRequest(code=_forged(key_id, issued_at_ms), institution_code=HOSPITAL, request_id="forged"),
    ]
    with n.channel() as ch:
        stub = verifier_pb2_grpc.VerifierStub(ch)
        reply = stub.VerifyBatch(verifier_pb2.VerifyBatchRequest(requests=requests), timeout=10)
        assert [r.outcome for r in reply.responses] == [verifier_pb2.OUTCOME_VALID, verifier_pb2.OUTCOME_KEY_NOT_VALID]
        forged = reply.responses[1]
        assert forged.credential.key_id == key_id
        assert not forged.credential.HasField("issued_at")
        single = stub.Verify(requests[1], timeout=10)
        assert single.outcome == verifier_pb2.OUTCOME_KEY_NOT_VALID
