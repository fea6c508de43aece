"""Hostile input, over real gRPC to a real node: every RPC of every service
given bytes that are not its request (garbage, invalid UTF-8 in a string
field, a wrong wire type, a truncated varint), int64 extremes, huge fields
and batches over the limit, answers INVALID_ARGUMENT — never UNKNOWN or
INTERNAL — and changes nothing in Redis; a client that streams without
reading cannot grow the node's memory without bound."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from server.local import Issuer, Node, Redis
from yibao.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    settlement_pb2,
    settlement_pb2_grpc,
    verifier_pb2,
    verifier_pb2_grpc,
)

HOSPITAL = "H44030500001"
SERVICES = [
    verifier_pb2.DESCRIPTOR.services_by_name["Verifier"],
    settlement_pb2.DESCRIPTOR.services_by_name["Settlement"],
    admin_pb2.DESCRIPTOR.services_by_name["Admin"],
]
METHODS = [m for s in SERVICES for m in s.methods]
_rng = random.Random(20261204)
# Bytes no message decodes from.
UNDECODABLE = {
    "garbage": bytes(_rng.randrange(256) for _ in range(64)) + b"\xff\xff\xff",
    "truncated varint": b"\x10\x80\x80\x80\x80\x80",
    "length past the end": b"\x0a\x7f\x41",
}
# Undecodable where field 1 is a string (a proto3 string must be UTF-8).
BAD_UTF8_IN_FIELD_1 = b"\x0a\x04\xff\xfe\xc0\x80"
# These may decode (an unknown field is skipped): then any answer but a server failure.
ODD = {
    "invalid UTF-8 in field 2": b"\x12\x03\xed\xa0\x80",
    "field 1 as fixed32": b"\x0d\x01\x02\x03",
    "field 15 of 1 KiB": b"\x7a\x80\x08" + b"\x00" * 1024,
}
SERVER_FAILURES = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, Redis, Issuer]]:
    work = tmp_path_factory.mktemp("hostile")
    redis = Redis(work / "redis").start()
    issuer = Issuer.create(work)
    n = Node(work / "node", redis.url, issuer.trust_list_path).start()
    try:
        yield n, redis, issuer
    finally:
        n.stop()
        redis.stop()


def _state(redis: Redis) -> tuple[int, list[bytes]]:
    """Everything a call could have changed: how many keys, and every stream's length."""
    keys = redis.command("KEYS", "*")
    streams = sorted(k for k in keys if redis.command("TYPE", k) == b"stream")
    return len(keys), [redis.command("XLEN", k) for k in streams]


@pytest.mark.parametrize("method", METHODS, ids=[m.full_name for m in METHODS])
def test_bytes_that_are_not_a_request_are_invalid_argument(node, method) -> None:  # type: ignore[no-untyped-def]
    n, redis, _ = node
    path = f"/{method.containing_service.full_name}/{method.name}"
    field_1 = method.input_type.fields_by_number.get(1)
    undecodable = dict(UNDECODABLE)
    if field_1 is not None and field_1.type == field_1.TYPE_STRING:
        undecodable["invalid UTF-8 in field 1"] = BAD_UTF8_IN_FIELD_1

    def call(ch: grpc.Channel, body: bytes) -> grpc.StatusCode:
        try:
            if method.client_streaming:
                list(ch.stream_stream(path)(iter([body]), timeout=10))
            else:
                ch.unary_unary(path)(body, timeout=10)
        except grpc.RpcError as e:
            assert e.code() not in SERVER_FAILURES, (body, e.code(), e.details())
            if body in undecodable.values():
                assert "not a valid yibao.v1." in e.details(), (body, e.details())
            return e.code()
        return grpc.StatusCode.OK

    before = _state(redis)
    with n.channel() as ch:
        for name, body in undecodable.items():
            assert call(ch, body) == grpc.StatusCode.INVALID_ARGUMENT, name
        for body in ODD.values():
            call(ch, body)
    assert _state(redis) == before, "a refused call changed Redis"


def test_a_bad_message_in_a_stream_ends_it_after_the_answers_before_it(node) -> None:  # type: ignore[no-untyped-def]
    n, _, issuer = node
    good = verifier_pb2.VerifyRequest(code="not a code", institution_code=HOSPITAL, request_id="s0").SerializeToString()
    answers = []
    with n.channel() as ch:
        call = ch.stream_stream("/yibao.v1.Verifier/VerifyStream", response_deserializer=verifier_pb2.VerifyResponse.FromString)
        with pytest.raises(grpc.RpcError) as e:
            for answer in call(iter([good, good, BAD_UTF8_IN_FIELD_1, good]), timeout=10):
                answers.append(answer)
    assert [a.outcome for a in answers] == [verifier_pb2.OUTCOME_MALFORMED] * 2
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "requests[2]" in e.value.details()


INT64_MAX, INT64_MIN = 2**63 - 1, -(2**63)


def test_extremes_and_huge_fields_are_invalid_argument_and_change_nothing(node) -> None:  # type: ignore[no-untyped-def]
    n, redis, issuer = node
    cid = os.urandom(16).hex().upper()
    with n.channel() as ch:
        verifier = verifier_pb2_grpc.VerifierStub(ch)
        settlement = settlement_pb2_grpc.SettlementStub(ch)
        admin = admin_pb2_grpc.AdminStub(ch)
        admin.OpenAccount(admin_pb2.OpenAccountRequest(credential_id=cid, balance_fen=10_000, per_payment_limit_fen=10_000,
                                                       daily_limit_fen=10_000, insured_region="440300"), timeout=10)  # fmt: skip
        token = verifier.Verify(verifier_pb2.VerifyRequest(code=issuer.issue(cid, "440300", 2), institution_code=HOSPITAL,
                                                           request_id="tok"), timeout=10).ec_token  # fmt: skip
        before = _state(redis)

        def settle(total: int, pay: int, **kw: str) -> object:
            fields = {"ec_token": token, "institution_code": HOSPITAL, "order_id": "x-1", **kw}
            return settlement.Settle(settlement_pb2.SettleRequest(total_fen=total, account_pay_fen=pay, **fields), timeout=10)

        calls = {
            "Settle total INT64_MAX": lambda: settle(INT64_MAX, 1),
            "Settle pay INT64_MAX": lambda: settle(INT64_MAX, INT64_MAX),
            "Settle total INT64_MIN": lambda: settle(INT64_MIN, 0),
            "Settle pay negative": lambda: settle(100, -1),
            "Settle order_id 100k": lambda: settle(100, 1, order_id="o" * 100_000),
            "Settle token 1M": lambda: settle(100, 1, ec_token="t" * 1_000_000),
            "Refund amount INT64_MAX": lambda: settlement.Refund(settlement_pb2.RefundRequest(
                settlement_id="44" + "0" * 30, refund_id="r", amount_fen=INT64_MAX, institution_code=HOSPITAL), timeout=10),
            "Refund amount INT64_MIN": lambda: settlement.Refund(settlement_pb2.RefundRequest(
                settlement_id="44" + "0" * 30, refund_id="r", amount_fen=INT64_MIN, institution_code=HOSPITAL), timeout=10),
            "OpenAccount balance INT64_MAX": lambda: admin.OpenAccount(admin_pb2.OpenAccountRequest(
                credential_id=os.urandom(16).hex(), balance_fen=INT64_MAX, per_payment_limit_fen=1, daily_limit_fen=1,
                insured_region="440300"), timeout=10),
            "OpenAccount limit INT64_MIN": lambda: admin.OpenAccount(admin_pb2.OpenAccountRequest(
                credential_id=os.urandom(16).hex(), balance_fen=1, per_payment_limit_fen=INT64_MIN, daily_limit_fen=1,
                insured_region="440300"), timeout=10),
            "Verify code 1M": lambda: verifier.Verify(verifier_pb2.VerifyRequest(
                code="A" * 1_000_000, institution_code=HOSPITAL, request_id="big"), timeout=10),
            "Verify request_id 10k": lambda: verifier.Verify(verifier_pb2.VerifyRequest(
                code="x", institution_code=HOSPITAL, request_id="r" * 10_000), timeout=10),
            "VerifyBatch of 1001": lambda: verifier.VerifyBatch(verifier_pb2.VerifyBatchRequest(requests=[
                verifier_pb2.VerifyRequest(code="x", institution_code=HOSPITAL, request_id=f"b{i}") for i in range(1001)]),
                timeout=10),
            "Revoke id 1M": lambda: admin.Revoke(admin_pb2.RevokeRequest(credential_id="A" * 1_000_000, reason=1), timeout=10),
            "Revoke reason 2^31-1": lambda: admin.Revoke(admin_pb2.RevokeRequest(credential_id=cid, reason=2**31 - 1),
                                                         timeout=10),
            # An error quoting a 1 MB field must still fit gRPC's trailers (found by the hostile branch).
            "GetNodeKey region 1M": lambda: admin.GetNodeKey(admin_pb2.GetNodeKeyRequest(region="9" * 1_000_000), timeout=10),
            "ReadAudit region 1M": lambda: admin.ReadAudit(admin_pb2.ReadAuditRequest(region="9" * 1_000_000), timeout=10),
        }  # fmt: skip
        for name, call in calls.items():
            with pytest.raises(grpc.RpcError) as e:
                call()
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, e.value.code(), e.value.details()[:200])
    assert _state(redis) == before, "a refused call changed Redis"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_stream_that_sends_without_reading_cannot_grow_the_node_without_bound(node) -> None:  # type: ignore[no-untyped-def]
    n, _, _ = node
    assert n.proc is not None
    body = verifier_pb2.VerifyRequest(code="not a code", institution_code=HOSPITAL, request_id="flood").SerializeToString()
    sent = 0
    stop = threading.Event()

    def flood() -> Iterator[bytes]:
        nonlocal sent
        while not stop.is_set() and sent < 2_000_000:
            sent += 1
            yield body

    start = _rss_kib(n.proc.pid)
    samples = []
    with n.channel() as ch:
        responses = ch.stream_stream("/yibao.v1.Verifier/VerifyStream")(flood(), timeout=60)
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            time.sleep(1)
            samples.append(_rss_kib(n.proc.pid))
        stop.set()
        responses.cancel()
    growth_mib = (max(samples) - start) / 1024
    # Nobody read an answer: the node stops reading once the answers it holds fill
    # HTTP/2's windows, so what it holds stays bounded whatever the client sends.
    assert growth_mib < 64, f"the node grew by {growth_mib:.0f} MiB for one unread stream ({sent} messages sent)"
    assert samples[-1] - samples[len(samples) // 2] < 16 * 1024, "still growing at the end"
