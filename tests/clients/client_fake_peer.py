"""A stand-in for the network peer, for the client tests.

``fake_node`` is a tiny gRPC server on 127.0.0.1 (port 0) implementing the
Verifier, Settlement and Admin services with fixed answers. It is a test double of the
peer, for the client's own behaviour (retries, error wrapping, ordering,
output), not a model of the real node.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import pytest
from google.protobuf import any_pb2, timestamp_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from yibao.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    settlement_pb2,
    settlement_pb2_grpc,
    verifier_pb2,
    verifier_pb2_grpc,
)

INSTITUTION = "H44030000001"
CREDENTIAL_ID = "00112233445566778899AABBCCDDEEFF"
ISSUED_MS = 1_780_000_000_123
SETTLEMENT_ID = "44" + "0" * 29 + "7"
#: What the fake's settlements carry as receipt and signature.
RECEIPT = b"YBR1\x01fake receipt"
SIGNATURE = bytes([0x80]) + bytes(31) + bytes(range(1, 33))


def _ts(ms: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def answer(req: verifier_pb2.VerifyRequest) -> verifier_pb2.VerifyResponse:
    """Fixed rules: a code starting "OK" is VALID, "EXP" is EXPIRED, "REV" is
    REVOKED (lost); anything else MALFORMED."""
    r = verifier_pb2.VerifyResponse(request_id=req.request_id)
    cred = common_pb2.Credential(
        credential_id=CREDENTIAL_ID,
        insured_region="110105",
        province="11",
        channel=common_pb2.CHANNEL_WECHAT,
        issued_at=_ts(ISSUED_MS),
        expires_at=_ts(ISSUED_MS + 60_000),
        key_id="68D5EEC6",
        nonce="0102030405060708",
    )
    if req.code.startswith("OK"):
        r.outcome = verifier_pb2.OUTCOME_VALID
        r.detail = "有效 valid"
        r.credential.CopyFrom(cred)
        r.cross_province = True
        r.ec_token = "tok-" + req.request_id
        r.token_expires_at.CopyFrom(_ts(ISSUED_MS + 600_000))
    elif req.code.startswith("EXP"):
        r.outcome = verifier_pb2.OUTCOME_EXPIRED
        r.detail = "The code has expired: ask the person to refresh it."
        r.credential.CopyFrom(cred)
        r.cross_province = True
    elif req.code.startswith("REV"):
        r.outcome = verifier_pb2.OUTCOME_REVOKED
        r.detail = "revoked"
        r.credential.CopyFrom(cred)
        r.revocation_reason = common_pb2.REVOCATION_REASON_LOST
    else:
        r.outcome = verifier_pb2.OUTCOME_MALFORMED
        r.detail = "not a code"
    return r


def rich_invalid_argument(context: grpc.ServicerContext, message: str, field_name: str) -> None:
    info = error_details_pb2.ErrorInfo(
        reason="FIELD_OUT_OF_FORM", domain="yibao.v1", metadata={"field": field_name}
    )
    bad = error_details_pb2.BadRequest(
        field_violations=[error_details_pb2.BadRequest.FieldViolation(field=field_name, description=message)]
    )
    details = []
    for m in (info, bad):
        a = any_pb2.Any()
        a.Pack(m)
        details.append(a)
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=details)
    context.abort_with_status(rpc_status.to_status(status))


@dataclass
class FakeNode:
    target: str = ""
    #: Fail this many Verify/VerifyBatch/VerifyStream calls with ``fail_code`` first.
    fail_first: int = 0
    #: UNAVAILABLE (a store down), or what a node answers when it refuses a
    #: call: RESOURCE_EXHAUSTED (reason OVERLOADED), CANCELLED (gRPC's queue bound).
    fail_code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    #: Seconds each Verify takes before it answers (a call in progress to cancel).
    verify_s: float = 0.0
    calls: list[tuple[str, object]] = field(default_factory=list)
    #: The client certificate common name of each Verify call (None when plaintext).
    peers: list[str | None] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: The audit log ReadAudit pages through (tests append to it).
    audit: list[admin_pb2.AuditEntry] = field(default_factory=list)

    def add_audit(self, what: str, outcome: str, **detail: str) -> admin_pb2.AuditEntry:
        with self.lock:
            ms = ISSUED_MS + len(self.audit)
            e = admin_pb2.AuditEntry(
                id=f"{ms}-0", who=INSTITUTION, what=what, when=_ts(ms), outcome=outcome, detail=detail
            )
            self.audit.append(e)
            return e

    def record(self, method: str, request: object) -> int:
        with self.lock:
            self.calls.append((method, request))
            return len(self.calls)

    def calls_to(self, method: str) -> list[object]:
        return [r for m, r in self.calls if m == method]


class _Verifier(verifier_pb2_grpc.VerifierServicer):
    def __init__(self, node: FakeNode) -> None:
        self.node = node

    def _gate(self, method: str, request: object, context: grpc.ServicerContext) -> None:
        n = self.node.record(method, request)
        if n > self.node.fail_first:
            return
        code = self.node.fail_code
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:  # as server/admission.py refuses
            info = error_details_pb2.ErrorInfo(reason="OVERLOADED", domain="yibao.v1")
            detail = any_pb2.Any()
            detail.Pack(info)
            context.abort_with_status(rpc_status.to_status(status_pb2.Status(
                code=code_pb2.RESOURCE_EXHAUSTED, message="the node is at its limit", details=[detail])))  # fmt: skip
        context.abort(code, "national store unreachable" if code == grpc.StatusCode.UNAVAILABLE else "refused")

    def Verify(self, request, context):  # noqa: N802
        cn = context.auth_context().get("x509_common_name")
        self.node.peers.append(cn[0].decode() if cn else None)
        self._gate("Verify", request, context)
        time.sleep(self.node.verify_s)
        if not request.request_id:
            rich_invalid_argument(context, "request_id is empty", "request_id")
        if not request.institution_code:
            rich_invalid_argument(context, "institution_code is missing", "institution_code")
        return answer(request)

    def VerifyBatch(self, request, context):  # noqa: N802
        self._gate("VerifyBatch", request, context)
        return verifier_pb2.VerifyBatchResponse(responses=[answer(r) for r in request.requests])

    def VerifyStream(self, request_iterator, context):  # noqa: N802
        first = True
        for req in request_iterator:
            if first:
                self._gate("VerifyStream", None, context)
                first = False
            self.node.record("VerifyStream.request", req)
            yield answer(req)


class _Admin(admin_pb2_grpc.AdminServicer):
    def __init__(self, node: FakeNode) -> None:
        self.node = node

    def Revoke(self, request, context):  # noqa: N802
        self.node.record("Revoke", request)
        return admin_pb2.RevokeResponse(
            credential_id=request.credential_id.upper(), reason=request.reason, revoked_at=_ts(ISSUED_MS)
        )

    def Restore(self, request, context):  # noqa: N802
        self.node.record("Restore", request)
        return admin_pb2.RestoreResponse(credential_id=request.credential_id.upper(), was_revoked=True)

    def WithdrawChannel(self, request, context):  # noqa: N802
        self.node.record("WithdrawChannel", request)
        return admin_pb2.WithdrawChannelResponse(
            credential_id=request.credential_id.upper(), channel=request.channel, was_withdrawn=False
        )

    def RestoreChannel(self, request, context):  # noqa: N802
        self.node.record("RestoreChannel", request)
        return admin_pb2.RestoreChannelResponse(
            credential_id=request.credential_id.upper(), channel=request.channel, was_withdrawn=True
        )

    def LoadTrustList(self, request, context):  # noqa: N802
        self.node.record("LoadTrustList", request)
        try:
            keys = json.loads(request.trust_list_json)["keys"]
        except (ValueError, KeyError, TypeError):
            rich_invalid_argument(
                context, "trust list is not JSON of credential-v1 section 6", "trust_list_json"
            )
        return admin_pb2.LoadTrustListResponse(keys_loaded=len(keys), key_ids=[k["key_id"] for k in keys])

    def OpenAccount(self, request, context):  # noqa: N802
        self.node.record("OpenAccount", request)
        return admin_pb2.OpenAccountResponse(
            credential_id=request.credential_id.upper(),
            created=True,
            status=common_pb2.ACCOUNT_STATUS_ACTIVE,
            balance_fen=request.balance_fen,
            per_payment_limit_fen=request.per_payment_limit_fen,
            daily_limit_fen=request.daily_limit_fen,
        )

    def GetAccount(self, request, context):  # noqa: N802
        self.node.record("GetAccount", request)
        if request.credential_id.upper() != CREDENTIAL_ID:
            return admin_pb2.GetAccountResponse(credential_id=request.credential_id.upper(), found=False)
        return admin_pb2.GetAccountResponse(
            credential_id=CREDENTIAL_ID,
            found=True,
            status=common_pb2.ACCOUNT_STATUS_ACTIVE,
            balance_fen=93_000,
            per_payment_limit_fen=50_000,
            daily_limit_fen=80_000,
            spent_today_fen=10_000,
            insured_region="440300",
        )

    def SetAccountStatus(self, request, context):  # noqa: N802
        self.node.record("SetAccountStatus", request)
        found = request.credential_id.upper() == CREDENTIAL_ID
        return admin_pb2.SetAccountStatusResponse(
            credential_id=request.credential_id.upper(), found=found, status=request.status if found else 0
        )

    def ReadAudit(self, request, context):  # noqa: N802
        self.node.record("ReadAudit", request)
        with self.node.lock:
            entries = list(self.node.audit)
        if request.since:
            key = tuple(int(x) for x in request.since.split("-"))
            entries = [e for e in entries if tuple(int(x) for x in e.id.split("-")) > key]
        count = request.count or 100
        entries = entries[-count:] if request.latest else entries[:count]
        return admin_pb2.ReadAuditResponse(region=request.region or "44", entries=entries)

    def GetNodeKey(self, request, context):  # noqa: N802
        self.node.record("GetNodeKey", request)
        return admin_pb2.GetNodeKeyResponse(
            region=request.region or "44", public_key=b"\x04" + bytes(range(64)), key_id="0A0B0C0D"
        )


class _Settlement(settlement_pb2_grpc.SettlementServicer):
    """Token "tok-..." settles; "expired" is TOKEN_EXPIRED; amounts echoed."""

    def __init__(self, node: FakeNode) -> None:
        self.node = node

    def _answer(self, request, *, dry_run: bool):  # type: ignore[no-untyped-def]
        r = settlement_pb2.SettleResponse(order_id=request.order_id, settled_region="44")
        if request.ec_token == "expired":
            r.outcome = settlement_pb2.SETTLE_OUTCOME_TOKEN_EXPIRED
            r.detail = "token expired"
            return r
        r.outcome = settlement_pb2.SETTLE_OUTCOME_SETTLED
        r.detail = "ok"
        r.account_pay_fen = request.account_pay_fen
        r.cash_pay_fen = request.total_fen - request.account_pay_fen
        r.balance_after_fen = 100_000 - request.account_pay_fen
        if not dry_run:
            r.settlement_id = SETTLEMENT_ID
            r.settled_at.CopyFrom(_ts(ISSUED_MS))
            r.receipt = RECEIPT
            r.receipt_signature = SIGNATURE
        return r

    def PreSettle(self, request, context):  # noqa: N802
        self.node.record("PreSettle", request)
        return self._answer(request, dry_run=True)

    def Settle(self, request, context):  # noqa: N802
        self.node.record("Settle", request)
        return self._answer(request, dry_run=False)

    def Refund(self, request, context):  # noqa: N802
        self.node.record("Refund", request)
        if request.settlement_id != SETTLEMENT_ID:
            return settlement_pb2.RefundResponse(
                outcome=settlement_pb2.REFUND_OUTCOME_NOT_FOUND, refund_id=request.refund_id
            )
        return settlement_pb2.RefundResponse(
            outcome=settlement_pb2.REFUND_OUTCOME_REFUNDED,
            refund_id=request.refund_id,
            settlement_id=request.settlement_id,
            amount_fen=request.amount_fen,
            balance_after_fen=90_000 + request.amount_fen,
            remaining_fen=10_000 - request.amount_fen,
            refunded_at=_ts(ISSUED_MS),
            receipt=RECEIPT + b"-refund",
            receipt_signature=SIGNATURE,
        )

    def GetSettlement(self, request, context):  # noqa: N802
        self.node.record("GetSettlement", request)
        if request.settlement_id != SETTLEMENT_ID:
            return settlement_pb2.GetSettlementResponse(found=False)
        s = settlement_pb2.SettlementRecord(
            settlement_id=SETTLEMENT_ID,
            institution_code=INSTITUTION,
            order_id="o-1",
            credential_id=CREDENTIAL_ID,
            total_fen=12_000,
            account_pay_fen=10_000,
            cash_pay_fen=2_000,
            balance_after_fen=90_000,
            settled_at=_ts(ISSUED_MS),
            settled_region="44",
            items=[
                settlement_pb2.SettleItem(
                    item_code="XJ01",
                    name="阿莫西林胶囊",
                    quantity_milli=2000,
                    unit="盒",
                    unit_price_fen=5000,
                    amount_fen=10_000,
                ),
                settlement_pb2.SettleItem(
                    name="挂号费", quantity_milli=1000, unit="次", unit_price_fen=2000, amount_fen=2000
                ),
            ],
            refunded_fen=3_000,
            receipt=RECEIPT,
            receipt_signature=SIGNATURE,
        )
        refund = settlement_pb2.RefundRecord(
            refund_id="rf-1",
            amount_fen=3_000,
            balance_after_fen=93_000,
            refunded_at=_ts(ISSUED_MS + 1000),
            receipt=RECEIPT + b"-refund",
            receipt_signature=SIGNATURE,
        )
        return settlement_pb2.GetSettlementResponse(found=True, settlement=s, refunds=[refund])


@contextlib.contextmanager
def running_fake_node(credentials: grpc.ServerCredentials | None = None) -> Iterator[FakeNode]:
    """A FakeNode serving on 127.0.0.1 (a free port), plaintext or with ``credentials``."""
    node = FakeNode()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    verifier_pb2_grpc.add_VerifierServicer_to_server(_Verifier(node), server)
    admin_pb2_grpc.add_AdminServicer_to_server(_Admin(node), server)
    settlement_pb2_grpc.add_SettlementServicer_to_server(_Settlement(node), server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    node.target = f"127.0.0.1:{port}"
    try:
        yield node
    finally:
        server.stop(None).wait()


@pytest.fixture
def fake_node() -> Iterator[FakeNode]:
    with running_fake_node() as node:
        yield node
