"""--log-format json and --access-log on a real node: every line is one JSON
object, each call has its access line with the caller's identifiers and the
outcome, and no scanned code or ec_token ever reaches the log."""

from __future__ import annotations

import json
import os
from pathlib import Path

import grpc
import pytest

from server.local import Issuer, Node, Redis
from yibao.v1 import admin_pb2, admin_pb2_grpc, settlement_pb2, settlement_pb2_grpc, verifier_pb2, verifier_pb2_grpc

HOSPITAL = "H44030500001"


def test_json_access_log_names_calls_and_never_holds_a_credential(tmp_path: Path) -> None:
    redis = Redis(tmp_path / "redis").start()
    issuer = Issuer.create(tmp_path)
    node = Node(tmp_path / "node", redis.url, issuer.trust_list_path, extra=("--log-format", "json", "--access-log"))
    secrets: list[str] = []
    try:
        node.start()
        cid = os.urandom(16).hex().upper()
        code = issuer.issue(cid, "440300", 2)
        secrets.append(code)
        with node.channel() as ch:
            admin_pb2_grpc.AdminStub(ch).OpenAccount(admin_pb2.OpenAccountRequest(
                credential_id=cid, balance_fen=10_000, per_payment_limit_fen=10_000, daily_limit_fen=10_000,
                insured_region="440300"), timeout=10)  # fmt: skip
            verifier = verifier_pb2_grpc.VerifierStub(ch)
            valid = verifier.Verify(
                verifier_pb2.VerifyRequest(code=code, institution_code=HOSPITAL, request_id="req-valid"), timeout=10
            )
            assert valid.outcome == verifier_pb2.OUTCOME_VALID
            secrets.append(valid.ec_token)
            verifier.Verify(verifier_pb2.VerifyRequest(code=code, institution_code=HOSPITAL, request_id="req-again"),
                            timeout=10)  # fmt: skip
            settled = settlement_pb2_grpc.SettlementStub(ch).Settle(settlement_pb2.SettleRequest(
                ec_token=valid.ec_token, institution_code=HOSPITAL, order_id="order-1", total_fen=500,
                account_pay_fen=300), timeout=10)  # fmt: skip
            assert settled.outcome == settlement_pb2.SETTLE_OUTCOME_SETTLED
            with pytest.raises(grpc.RpcError) as bad:
                verifier.Verify(verifier_pb2.VerifyRequest(code=code, institution_code="X1", request_id="req-bad"),
                                timeout=10)  # fmt: skip
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            # A code too long to check is refused naming the field: its value stays out of the log too.
            oversized = code + "A" * 5000
            secrets.append(oversized[-100:])
            with pytest.raises(grpc.RpcError) as long:
                verifier.Verify(verifier_pb2.VerifyRequest(code=oversized, institution_code=HOSPITAL,
                                                           request_id="req-long"), timeout=10)  # fmt: skip
            assert long.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            batch_codes = [issuer.issue(os.urandom(16).hex().upper(), "440300", 2) for _ in range(3)]
            secrets += batch_codes
            batch = verifier.VerifyBatch(verifier_pb2.VerifyBatchRequest(requests=[
                verifier_pb2.VerifyRequest(code=c, institution_code=HOSPITAL, request_id=f"req-b{i}")
                for i, c in enumerate(batch_codes)]), timeout=10)  # fmt: skip
            assert [r.outcome for r in batch.responses] == [verifier_pb2.OUTCOME_VALID] * 3
            secrets += [r.ec_token for r in batch.responses]
    finally:
        node.stop()
        redis.stop()

    text = node.log.read_text()
    for secret in secrets:
        assert secret not in text, "a credential reached the log"
        assert secret[:40] not in text
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    access = {x.get("request_id") or x.get("order_id"): x for x in lines if x["logger"] == "yibao.access"}
    assert access["req-valid"]["outcome"] == "OUTCOME_VALID"
    assert access["req-valid"]["institution_code"] == HOSPITAL
    assert access["req-valid"]["method"] == "yibao.v1.Verifier/Verify"
    assert access["req-valid"]["grpc_code"] == "OK"
    assert access["req-again"]["outcome"] == "OUTCOME_REPLAYED"
    assert access["order-1"]["outcome"] == "SETTLE_OUTCOME_SETTLED"
    assert access["req-bad"]["grpc_code"] == "INVALID_ARGUMENT"
    assert access["req-long"]["grpc_code"] == "INVALID_ARGUMENT"
    batches = [x for x in lines if x.get("method") == "yibao.v1.Verifier/VerifyBatch"]
    assert len(batches) == 1 and batches[0]["requests"] == 3 and batches[0]["grpc_code"] == "OK", batches
    assert all(isinstance(x["duration_ms"], float) for x in access.values())
