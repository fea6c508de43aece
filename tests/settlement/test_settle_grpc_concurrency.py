"""Concurrent Settles over gRPC (grpc.aio, asyncio.gather) against one node:
the same order 200 times pays once; 200 different orders against a balance
that covers exactly 50 pay exactly 50 and never overdraw."""

from __future__ import annotations

import asyncio

import grpc
import settlekit as sk
from yibao.v1 import settlement_pb2_grpc

N = 200


async def _gather(target: str, requests, timeout: float = 60.0):
    async with grpc.aio.insecure_channel(target) as ch:
        stub = settlement_pb2_grpc.SettlementStub(ch)
        return await asyncio.wait_for(
            asyncio.gather(*(stub.Settle(r, timeout=30) for r in requests), return_exceptions=True), timeout
        )


def _errors(results) -> list:
    return [(r.code(), r.details()) if isinstance(r, grpc.RpcError) else repr(r) for r in results if isinstance(r, BaseException)]


def test_same_order_200_times_at_once_pays_once(cluster, gd):
    cid = sk.new_cid()
    gd.open_account(cid, 1_000_000, 1_000_000, 1_000_000)
    token = gd.token(cluster.issuer, cid, sk.GD_INST).ec_token
    order = sk.new_id("same")
    req = sk.settle_request(token, sk.GD_INST, order, 12_000, 7_000)
    results = asyncio.run(_gather(cluster.gd.node.target, [req] * N))
    assert not _errors(results), _errors(results)[:5]
    assert {r.outcome for r in results} == {sk.SETTLED}
    assert len({r.settlement_id for r in results}) == 1
    first = results[0]
    assert all(r == first for r in results), "retries of one order must answer the first settlement unchanged"
    assert first.balance_after_fen == 1_000_000 - 7_000
    acct = gd.account(cid)
    assert acct.balance_fen == 1_000_000 - 7_000
    assert acct.spent_today_fen == 7_000
    g = gd.get(first.settlement_id)
    assert g.found and g.settlement.account_pay_fen == 7_000


def test_200_orders_against_a_balance_for_50(cluster, gd):
    pay = 1_234
    cid = sk.new_cid()
    gd.open_account(cid, 50 * pay, 1_000_000, 1_000_000)
    token = gd.token(cluster.issuer, cid, sk.GD_INST).ec_token
    reqs = [sk.settle_request(token, sk.GD_INST, sk.new_id(f"c{i}"), 2_000, pay) for i in range(N)]
    results = asyncio.run(_gather(cluster.gd.node.target, reqs))
    assert not _errors(results), _errors(results)[:5]
    settled = [r for r in results if r.outcome == sk.SETTLED]
    refused = [r for r in results if r.outcome != sk.SETTLED]
    assert len(settled) == 50, len(settled)
    assert {r.outcome for r in refused} == {sk.INSUFFICIENT_BALANCE}
    assert len({r.settlement_id for r in settled}) == 50
    # each payment saw the balance the previous one left: no two share a balance
    assert sorted(r.balance_after_fen for r in settled) == [k * pay for k in range(50)]
    assert all(not r.settlement_id and not r.receipt for r in refused)
    acct = gd.account(cid)
    assert acct.balance_fen == 0
    assert acct.spent_today_fen == 50 * pay
    for r in settled[:10]:
        g = gd.get(r.settlement_id)
        assert g.found and g.settlement.account_pay_fen == pay and g.settlement.balance_after_fen == r.balance_after_fen


def test_same_order_200_times_through_the_forwarding_node_pays_once(cluster, gd, bj):
    cid = sk.new_cid()
    gd.open_account(cid, 500_000, 500_000, 500_000)
    token = bj.token(cluster.issuer, cid, sk.BJ_INST).ec_token
    req = sk.settle_request(token, sk.BJ_INST, sk.new_id("yd-same"), 9_000, 9_000)
    results = asyncio.run(_gather(cluster.bj.node.target, [req] * N))
    assert not _errors(results), _errors(results)[:5]
    assert {r.outcome for r in results} == {sk.SETTLED}
    assert len({r.settlement_id for r in results}) == 1 and results[0].settled_region == "44"
    assert all(r == results[0] for r in results)
    assert gd.account(cid).balance_fen == 500_000 - 9_000


async def _refunds(target: str, requests):
    async with grpc.aio.insecure_channel(target) as ch:
        stub = settlement_pb2_grpc.SettlementStub(ch)
        return await asyncio.wait_for(
            asyncio.gather(*(stub.Refund(r, timeout=30) for r in requests), return_exceptions=True), 60
        )


def test_concurrent_refunds_never_exceed_the_settlement(cluster, gd):
    from yibao.v1 import settlement_pb2

    cid = sk.new_cid()
    gd.open_account(cid, 100_000, 100_000, 100_000)
    token = gd.token(cluster.issuer, cid, sk.GD_INST).ec_token
    s = gd.settle(token, sk.GD_INST, sk.new_id("o"), 8_000, 5_000)
    assert s.outcome == sk.SETTLED
    distinct = [
        settlement_pb2.RefundRequest(
            settlement_id=s.settlement_id, refund_id=sk.new_id(f"rf{i}"), amount_fen=100, institution_code=sk.GD_INST
        )
        for i in range(100)
    ]
    same = settlement_pb2.RefundRequest(
        settlement_id=s.settlement_id, refund_id=sk.new_id("rf-same"), amount_fen=100, institution_code=sk.GD_INST
    )
    results = asyncio.run(_refunds(cluster.gd.node.target, distinct + [same] * 20))
    assert not _errors(results), _errors(results)[:5]
    a, b = results[:100], results[100:]
    assert all(r == b[0] for r in b)
    refunded = [r for r in results[:100] if r.outcome == sk.REFUNDED] + ([b[0]] if b[0].outcome == sk.REFUNDED else [])
    assert {r.outcome for r in a} <= {sk.REFUNDED, sk.EXCEEDS_REMAINING}
    assert len(refunded) == 50, len(refunded)
    assert sorted(r.remaining_fen for r in refunded) == [k * 100 for k in range(50)]
    g = gd.get(s.settlement_id)
    assert g.settlement.refunded_fen == 5_000 and len(g.refunds) == 50
    assert gd.account(cid).balance_fen == 100_000
