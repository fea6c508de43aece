"""Calls the federation tests make, over real gRPC to real nodes."""

from __future__ import annotations

import os
import time
from typing import Any

import grpc

from server.local import Issuer, Node
from yibao.v1 import admin_pb2, admin_pb2_grpc, common_pb2, settlement_pb2, settlement_pb2_grpc, verifier_pb2, verifier_pb2_grpc

SETTLED = settlement_pb2.SETTLE_OUTCOME_SETTLED


def new_cid() -> str:
    return os.urandom(16).hex().upper()


class Calls:
    def __init__(self, node: Node) -> None:
        self.channel = node.channel()
        self.admin = admin_pb2_grpc.AdminStub(self.channel)
        self.settlement = settlement_pb2_grpc.SettlementStub(self.channel)
        self.verifier = verifier_pb2_grpc.VerifierStub(self.channel)

    def __enter__(self) -> Calls:
        return self

    def __exit__(self, *_: object) -> None:
        self.channel.close()

    def open_account(self, cid: str, region6: str, balance: int = 100_000) -> Any:
        return self.admin.OpenAccount(admin_pb2.OpenAccountRequest(
            credential_id=cid, balance_fen=balance, per_payment_limit_fen=balance, daily_limit_fen=balance,
            insured_region=region6), timeout=10)  # fmt: skip

    def balance(self, cid: str, region6: str) -> int:
        return int(self.admin.GetAccount(
            admin_pb2.GetAccountRequest(credential_id=cid, insured_region=region6), timeout=10).balance_fen)  # fmt: skip

    def verify(self, code: str, institution: str, rid: str | None = None) -> Any:
        return self.verifier.Verify(verifier_pb2.VerifyRequest(
            code=code, institution_code=institution, request_id=rid or f"v-{time.time_ns()}"), timeout=10)  # fmt: skip

    def token(self, issuer: Issuer, cid: str, region6: str, institution: str) -> str:
        resp = self.verify(issuer.issue(cid, region6, 2), institution)
        assert resp.outcome == verifier_pb2.OUTCOME_VALID, resp
        return str(resp.ec_token)

    def settle(self, token: str, institution: str, order_id: str, pay: int, timeout: float = 10) -> Any:
        return self.settlement.Settle(settlement_pb2.SettleRequest(
            ec_token=token, institution_code=institution, order_id=order_id, total_fen=pay + 100,
            account_pay_fen=pay), timeout=timeout)  # fmt: skip

    def revoke(self, cid: str) -> Any:
        return self.admin.Revoke(
            admin_pb2.RevokeRequest(credential_id=cid, reason=common_pb2.REVOCATION_REASON_DECEASED), timeout=10
        )


def until(check: Any, what: str, timeout_s: float, every_s: float = 0.05) -> Any:
    """Call `check` until it returns something true (or stops raising
    grpc.RpcError), at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = check()
            if result:
                return result
        except grpc.RpcError as e:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: still {e.code()} {e.details()} after {timeout_s:g} s") from e
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:g} s")
        time.sleep(every_s)
