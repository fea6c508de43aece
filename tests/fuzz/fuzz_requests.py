"""Coverage-guided fuzzing (atheris, libFuzzer) of the node's handling of
what callers send: any bytes, as the body of a Verify, VerifyBatch, Settle,
Refund or Revoke call, through the same request checks the services run
(protobuf decoding, then server/validation.py, server/ledger.py's bill and
field rules, server/tokens.py's ec_token parsing). What must hold: a request
is either accepted or refused with InvalidArgument / InvalidInput naming a
field; nothing else is ever raised, so no caller can make the node answer
INTERNAL or UNKNOWN.

    .venv/bin/python tests/fuzz/fuzz_requests.py -max_total_time=20 CORPUS_DIR tests/fuzz/corpus/requests

The first byte picks the request type, the rest is its body
(tests/fuzz/corpus/requests holds seeds in that form).
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# Libraries first, uninstrumented: coverage is wanted of the node's own code.
import grpc  # noqa: E402, F401
import redis.asyncio  # noqa: E402
from google.protobuf.message import DecodeError  # noqa: E402

from yibao.v1 import admin_pb2, settlement_pb2, verifier_pb2  # noqa: E402

with atheris.instrument_imports(include=["server"]):
    from server import ledger, settlement, tokens, validation

TOKEN_KEY = bytes(range(32))
# A client that never connects: only the ledger's pure checks run here.
LEDGER = ledger.Ledger(redis.asyncio.Redis(), "44")
TYPES = (
    verifier_pb2.VerifyRequest,
    verifier_pb2.VerifyBatchRequest,
    settlement_pb2.SettleRequest,
    settlement_pb2.RefundRequest,
    admin_pb2.RevokeRequest,
)
REFUSALS = (validation.InvalidArgument, ledger.InvalidInput)


def _settle(req: settlement_pb2.SettleRequest) -> None:
    validation.institution_code(req.institution_code)
    tokens.parse(TOKEN_KEY, req.ec_token)  # None for anything not ours: must never raise
    items = tuple(
        ledger.Item(item_code=i.item_code, name=i.name, quantity_milli=i.quantity_milli, unit=i.unit,
                    unit_price_fen=i.unit_price_fen, amount_fen=i.amount_fen)
        for i in req.items
    )  # fmt: skip
    ledger.check_bill(req.total_fen, req.account_pay_fen, items)
    LEDGER._check_settle(ledger.SettleInput(
        institution_code=req.institution_code, order_id=req.order_id, credential_id="A" * 32, insured_region="440300",
        total_fen=req.total_fen, account_pay_fen=req.account_pay_fen, items_digest="", now_ms=1, actor="fuzz",
        items=items))  # fmt: skip


def _refund(req: settlement_pb2.RefundRequest) -> None:
    # What Settlement.Refund and Ledger.refund check before any store is asked.
    settlement._province_of_settlement(req.settlement_id)
    validation.institution_code(req.institution_code)
    ledger._credential_id(req.settlement_id.upper(), "settlement_id")
    ledger._text(req.refund_id, "refund_id")
    ledger._fen(req.amount_fen, "amount_fen", minimum=1)


def one(data: bytes) -> None:
    if not data:
        return
    kind = TYPES[data[0] % len(TYPES)]
    try:
        req = kind.FromString(data[1:])
    except DecodeError:
        return  # server/decoding.py answers INVALID_ARGUMENT for these (tests/hostile)
    try:
        if isinstance(req, verifier_pb2.VerifyRequest):
            validation.verify_request(req)
        elif isinstance(req, verifier_pb2.VerifyBatchRequest):
            validation.batch_size(len(req.requests))
            for i, r in enumerate(req.requests):
                validation.verify_request(r, f"requests[{i}].")
        elif isinstance(req, settlement_pb2.SettleRequest):
            _settle(req)
        elif isinstance(req, settlement_pb2.RefundRequest):
            _refund(req)
        else:
            validation.credential_id(req.credential_id)
    except REFUSALS as e:
        assert str(e).partition(":")[0], "a refusal must name the field"


if __name__ == "__main__":
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()
