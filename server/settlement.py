"""The Settlement service: PreSettle, Settle, Refund, GetSettlement. The
ec_token says whose account and which institution; the account's province
(参保地) owns the money, so a call for a person insured elsewhere goes to
that province's node (异地就医) and its answer comes back unchanged."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from redis.exceptions import RedisError

import yibao_core
from server import audit
from server import ledger as lg
from server import metrics, receipts, tokens, validation
from server.forward import PeerUnavailable, Peers
from server.identity import Authorizer, Denied
from server.redis_pipe import NotReplicated
from yibao.v1 import settlement_pb2, settlement_pb2_grpc

Response = TypeVar("Response")
_SETTLEMENT_ID = re.compile(r"[0-9A-Fa-f]{32}")
_SETTLE_OUTCOME = {
    name.removeprefix("SETTLE_OUTCOME_"): value for name, value in settlement_pb2.SettleOutcome.items()
}
_SETTLE_DETAIL = {
    "SETTLED": "结算成功 / Settled.",
    "TOKEN_INVALID": "电子凭证令牌无效，请重新扫码 / The token is not valid here; scan the code again.",
    "TOKEN_EXPIRED": "电子凭证令牌已过期，请重新扫码 / The token has expired; scan the code again.",
    "ACCOUNT_NOT_FOUND": "个人账户未开通 / The personal account is not activated.",
    "ACCOUNT_FROZEN": "个人账户状态异常 / The personal account is frozen.",
    "INSUFFICIENT_BALANCE": "个人账户余额不足 / The balance is not enough; pay the rest in cash.",
    "LIMIT_EXCEEDED": "超出支付限额 / Over the per-payment or daily limit.",
    "ORDER_CONFLICT": "订单号重复且内容不同 / This order id was settled with other content.",
}
_REFUND_DETAIL = {
    "REFUNDED": "退款成功 / Refunded.",
    "NOT_FOUND": "结算记录不存在 / No such settlement.",
    "EXCEEDS_REMAINING": "退款金额超过可退金额 / More than what is left of the settlement.",
    "NOT_PERMITTED": "只能由原结算机构退款 / Only the institution that settled may refund.",
    "REFUND_CONFLICT": "退款单号重复且内容不同 / This refund id was used with other content.",
}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _province_of_settlement(settlement_id: str) -> str:
    if not _SETTLEMENT_ID.fullmatch(settlement_id):
        raise validation.InvalidArgument("settlement_id", f"{settlement_id[:40]!r} is not 32 hexadecimal digits")
    return settlement_id[:2]


class SettlementService(settlement_pb2_grpc.SettlementServicer):
    def __init__(
        self,
        *,
        region: str,
        ledger: lg.Ledger,
        peers: Peers,
        token_key: bytes,
        node_key: yibao_core.SigningKey,
        authorizer: Authorizer,
    ) -> None:
        self._region = region
        self._ledger = ledger
        self._peers = peers
        self._token_key = token_key
        self._node_key = node_key  # prepared once; signs every receipt
        self._auth = authorizer

    async def _answer(self, context: grpc.aio.ServicerContext, call: Callable[[], Awaitable[Response]]) -> Response:
        """Run `call`, turning refusals into their status codes: nothing a
        client sent becomes INTERNAL, and no money moves on a guess."""
        try:
            return await call()
        except validation.InvalidArgument as e:
            await context.abort_with_status(e.status())
        except lg.InvalidInput as e:
            field = str(e).partition(":")[0]
            await context.abort_with_status(validation.InvalidArgument(field, str(e).partition(": ")[2]).status())
        except Denied as e:
            await context.abort_with_status(validation.rich_status(e.code, str(e), "NOT_AUTHORIZED"))
        except PeerUnavailable as e:
            await context.abort_with_status(e.status or validation.rich_status(e.code, str(e), "PEER_UNAVAILABLE"))
        except NotReplicated as e:
            metrics.record_redis_error("regional")
            await context.abort_with_status(
                validation.rich_status(
                    grpc.StatusCode.UNAVAILABLE,
                    f"the regional store's replicas did not confirm the write ({e}): retry with the same "
                    "order_id or refund_id, which settles it exactly once",
                    "REGIONAL_STORE_NOT_REPLICATED",
                )
            )
        except (RedisError, OSError) as e:
            metrics.record_redis_error("regional")
            await context.abort_with_status(
                validation.rich_status(
                    grpc.StatusCode.UNAVAILABLE,
                    f"the regional store is unreachable ({e}); retry with the same order_id or refund_id, "
                    "which settles it exactly once",
                    "REGIONAL_STORE_UNAVAILABLE",
                )
            )
        raise AssertionError("abort returns by raising")

    # --- PreSettle and Settle ---

    async def PreSettle(  # noqa: N802 - gRPC method name
        self, request: settlement_pb2.SettleRequest, context: grpc.aio.ServicerContext
    ) -> settlement_pb2.SettleResponse:
        return await self._answer(context, lambda: self._settle(request, context, dry_run=True))

    async def Settle(  # noqa: N802
        self, request: settlement_pb2.SettleRequest, context: grpc.aio.ServicerContext
    ) -> settlement_pb2.SettleResponse:
        return await self._answer(context, lambda: self._settle(request, context, dry_run=False))

    async def _settle(
        self, req: settlement_pb2.SettleRequest, context: grpc.aio.ServicerContext, *, dry_run: bool
    ) -> settlement_pb2.SettleResponse:
        validation.institution_code(req.institution_code)
        if not 1 <= len(req.order_id) <= 64:
            raise validation.InvalidArgument("order_id", f"must be 1 to 64 characters, got {len(req.order_id)}")
        if not req.ec_token or len(req.ec_token) > 256:
            raise validation.InvalidArgument("ec_token", "missing or longer than 256 characters")
        items = lg.check_bill(
            req.total_fen,
            req.account_pay_fen,
            tuple(
                lg.Item(
                    item_code=i.item_code,
                    name=i.name,
                    quantity_milli=i.quantity_milli,
                    unit=i.unit,
                    unit_price_fen=i.unit_price_fen,
                    amount_fen=i.amount_fen,
                )
                for i in req.items
            ),
        )
        self._auth.institutions(context, (req.institution_code,))
        now = _now_ms()
        token = tokens.parse(self._token_key, req.ec_token)
        if token is None or token.institution_code != req.institution_code:
            refused = "TOKEN_INVALID"  # forged, or verified by another institution
        elif token.expires_at_ms <= now:
            refused = "TOKEN_EXPIRED"
        else:
            refused = ""
        if token is None or refused:
            if not dry_run:
                metrics.record_settlement(refused)
                await audit.append(
                    self._ledger.redis, self._region, req.institution_code, "Settle", refused,
                    {"order_id": req.order_id, "total_fen": str(req.total_fen), "account_pay_fen": str(req.account_pay_fen)},
                    now_ms=now,
                )
            return self._settle_response(refused, req.order_id)
        province = token.insured_region[:2]
        if province != self._region:
            stub = self._peers.settlement(province)
            rpc = stub.PreSettle if dry_run else stub.Settle
            return await self._peers.call(province, rpc, req, context)
        result = await self._ledger.settle(
            lg.SettleInput(
                institution_code=req.institution_code,
                order_id=req.order_id,
                credential_id=token.credential_id,
                insured_region=token.insured_region,
                total_fen=req.total_fen,
                account_pay_fen=req.account_pay_fen,
                items_digest="",
                now_ms=now,
                actor=req.institution_code,
                items=items,
            ),
            dry_run=dry_run,
        )
        moved = result.outcome == lg.SETTLED and not dry_run and not result.replayed
        if not dry_run:
            metrics.record_settlement(result.outcome, result.account_pay_fen if moved else 0)
        resp = self._settle_response(result.outcome, req.order_id)
        resp.account_pay_fen = result.account_pay_fen
        resp.cash_pay_fen = result.cash_pay_fen
        resp.balance_after_fen = result.balance_after_fen
        if result.outcome == lg.SETTLED and not dry_run and result.settlement is not None:
            resp.settlement_id = result.settlement_id
            resp.settled_at.FromMilliseconds(result.settled_at_ms)
            resp.settled_region = result.settled_region
            resp.receipt, resp.receipt_signature = receipts.signed_settlement(self._node_key, result.settlement)
        elif dry_run:
            resp.settled_region = self._region
        return resp

    @staticmethod
    def _settle_response(outcome: str, order_id: str) -> settlement_pb2.SettleResponse:
        return settlement_pb2.SettleResponse(
            outcome=_SETTLE_OUTCOME[outcome],
            detail=_SETTLE_DETAIL[outcome],
            order_id=order_id,
        )

    # --- Refund ---

    async def Refund(  # noqa: N802
        self, request: settlement_pb2.RefundRequest, context: grpc.aio.ServicerContext
    ) -> settlement_pb2.RefundResponse:
        async def call() -> settlement_pb2.RefundResponse:
            province = _province_of_settlement(request.settlement_id)
            validation.institution_code(request.institution_code)
            if not 1 <= len(request.refund_id) <= 64:
                raise validation.InvalidArgument("refund_id", f"must be 1 to 64 characters, got {len(request.refund_id)}")
            self._auth.institutions(context, (request.institution_code,))
            if province != self._region:
                return await self._peers.call(province, self._peers.settlement(province).Refund, request, context)
            result = await self._ledger.refund(
                lg.RefundInput(
                    settlement_id=request.settlement_id.upper(),
                    refund_id=request.refund_id,
                    amount_fen=request.amount_fen,
                    institution_code=request.institution_code,
                    now_ms=_now_ms(),
                    actor=request.institution_code,
                )
            )
            resp = settlement_pb2.RefundResponse(
                outcome=settlement_pb2.RefundOutcome.Value("REFUND_OUTCOME_" + result.outcome),
                detail=_REFUND_DETAIL[result.outcome],
                refund_id=request.refund_id,
                settlement_id=request.settlement_id.upper(),
                amount_fen=result.amount_fen,
                balance_after_fen=result.balance_after_fen,
                remaining_fen=result.remaining_fen,
            )
            if result.outcome == lg.REFUNDED and result.refund is not None:
                resp.refunded_at.FromMilliseconds(result.refunded_at_ms)
                resp.receipt, resp.receipt_signature = receipts.signed_refund(self._node_key, result.refund)
            return resp

        return await self._answer(context, call)

    # --- GetSettlement ---

    async def GetSettlement(  # noqa: N802
        self, request: settlement_pb2.GetSettlementRequest, context: grpc.aio.ServicerContext
    ) -> settlement_pb2.GetSettlementResponse:
        async def call() -> settlement_pb2.GetSettlementResponse:
            province = _province_of_settlement(request.settlement_id)
            if province != self._region:
                return await self._peers.call(
                    province, self._peers.settlement(province).GetSettlement, request, context
                )
            s = await self._ledger.get_settlement(request.settlement_id.upper())
            if s is None:
                return settlement_pb2.GetSettlementResponse(found=False)
            self._auth.reader_of(context, s.institution_code)
            record = settlement_pb2.SettlementRecord(
                settlement_id=s.settlement_id,
                institution_code=s.institution_code,
                order_id=s.order_id,
                credential_id=s.credential_id,
                total_fen=s.total_fen,
                account_pay_fen=s.account_pay_fen,
                cash_pay_fen=s.cash_pay_fen,
                balance_after_fen=s.balance_after_fen,
                settled_region=s.settled_region,
                refunded_fen=s.refunded_fen,
                items=[
                    settlement_pb2.SettleItem(
                        item_code=i.item_code,
                        name=i.name,
                        quantity_milli=i.quantity_milli,
                        unit=i.unit,
                        unit_price_fen=i.unit_price_fen,
                        amount_fen=i.amount_fen,
                    )
                    for i in s.items
                ],
            )
            record.settled_at.FromMilliseconds(s.settled_at_ms)
            record.receipt, record.receipt_signature = receipts.signed_settlement(self._node_key, s)
            refunds = []
            for r in s.refunds:
                rr = settlement_pb2.RefundRecord(
                    refund_id=r.refund_id, amount_fen=r.amount_fen, balance_after_fen=r.balance_after_fen
                )
                rr.refunded_at.FromMilliseconds(r.refunded_at_ms)
                rr.receipt, rr.receipt_signature = receipts.signed_refund(self._node_key, r)
                refunds.append(rr)
            return settlement_pb2.GetSettlementResponse(found=True, settlement=record, refunds=refunds)

        return await self._answer(context, call)
