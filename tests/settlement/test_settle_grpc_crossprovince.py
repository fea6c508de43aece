"""异地就医直接结算: a person insured in Guangdong (440300) pays at a Beijing
hospital through the Beijing node, which forwards to the Guangdong node
(api.md: "The account lives in the insured province ... forwards it to that
province's node and returns its answer"). Two real nodes, one shared
national Redis, a regional Redis each."""

from __future__ import annotations

import grpc
import pytest
import settlekit as sk
from yibao.v1 import admin_pb2, settlement_pb2

OPEN = 300_000
FWD = "yibao_forward_requests_total"


def _fwd(node, peer: str, code: str) -> float:
    return sk.metric(node.metrics_url, FWD, peer=peer, code=code)


def test_guangdong_person_settles_at_a_beijing_hospital(cluster, gd, bj, tmp_path):
    cid = sk.new_cid()
    fwd0 = _fwd(cluster.bj.node, "44", "OK")
    forwarded = 0

    # the account is opened through the Beijing node, which forwards it
    opened = bj.open_account(cid, OPEN, 100_000, 200_000, insured_region=sk.GD_REGION6)
    forwarded += 1
    assert opened.created and opened.balance_fen == OPEN
    assert gd.account(cid).found  # it lives in Guangdong ...
    assert not bj.account(cid).found  # ... not in Beijing
    assert sk.redis_keys(cluster.gd.regional.url, f"*{cid}*"), "the account is not in Guangdong's store"
    assert not sk.redis_keys(cluster.bj.regional.url, f"*{cid}*"), "account state leaked into Beijing's store"
    assert not sk.redis_keys(cluster.national.url, f"*{cid}*"), "account state leaked into the national store"

    # verified at a Beijing hospital: a cross-province visit
    v = bj.token(cluster.issuer, cid, sk.BJ_INST)
    assert v.cross_province is True
    assert v.credential.province == "44" and v.credential.insured_region == sk.GD_REGION6

    # PreSettle, forwarded, moves nothing
    order = sk.new_id("yd")
    p = bj.settle(v.ec_token, sk.BJ_INST, order, 9_000, 6_000, dry=True)
    forwarded += 1
    assert p.outcome == sk.SETTLED, p
    assert p.settled_region == "44" and p.balance_after_fen == OPEN - 6_000 and not p.settlement_id
    assert gd.account(cid).balance_fen == OPEN

    # Settle through Beijing: debited in Guangdong only
    s = bj.settle(v.ec_token, sk.BJ_INST, order, 9_000, 6_000)
    forwarded += 1
    assert s.outcome == sk.SETTLED, s
    assert s.settled_region == "44"
    assert s.settlement_id.startswith("44")
    assert (s.account_pay_fen, s.cash_pay_fen, s.balance_after_fen) == (6_000, 3_000, OPEN - 6_000)
    assert gd.account(cid).balance_fen == OPEN - 6_000
    via_bj = bj.account(cid, insured_region=sk.GD_REGION6)
    forwarded += 1
    assert via_bj.found and via_bj.balance_fen == OPEN - 6_000 and via_bj.spent_today_fen == 6_000
    gd_keys = sk.redis_keys(cluster.gd.regional.url, f"*{s.settlement_id}*")
    assert gd_keys, "the settlement is not in Guangdong's store"
    assert not sk.redis_keys(cluster.bj.regional.url, f"*{s.settlement_id}*")
    assert not sk.redis_keys(cluster.bj.regional.url, f"*{cid}*")
    assert not sk.redis_keys(cluster.bj.regional.url, f"*{order}*")
    # a retry through Beijing is the first settlement
    assert bj.settle(v.ec_token, sk.BJ_INST, order, 9_000, 6_000) == s
    forwarded += 1
    assert gd.account(cid).balance_fen == OPEN - 6_000

    # the receipt is signed by Guangdong's key, which Beijing hands out
    gd_key = gd.node_key()
    bj_key = bj.node_key()
    assert gd_key.region == "44" and bj_key.region == "11"
    assert gd_key.public_key != bj_key.public_key
    via = bj.node_key("44")
    forwarded += 1
    assert via == gd_key
    sk.assert_openssl_ok(tmp_path, via.public_key, s.receipt, s.receipt_signature)
    sk.assert_openssl_fails(tmp_path, bj_key.public_key, s.receipt, s.receipt_signature)
    f = sk.parse_settlement_receipt(s.receipt)
    assert (f["settled_region"], f["institution_code"], f["credential_id"]) == ("44", sk.BJ_INST, cid)

    # Refund and GetSettlement sent to Beijing go where the id says
    r = bj.refund(s.settlement_id, sk.new_id("rf"), 2_000, sk.BJ_INST)
    forwarded += 1
    assert r.outcome == sk.REFUNDED, r
    assert r.balance_after_fen == OPEN - 4_000 and r.remaining_fen == 4_000
    assert gd.account(cid).balance_fen == OPEN - 4_000
    sk.assert_openssl_ok(tmp_path, gd_key.public_key, r.receipt, r.receipt_signature)
    g = bj.get(s.settlement_id)
    forwarded += 1
    assert g.found and g.settlement.settled_region == "44" and g.settlement.refunded_fen == 2_000
    assert g.settlement.institution_code == sk.BJ_INST
    assert [x.refund_id for x in g.refunds] == [r.refund_id]
    assert g == gd.get(s.settlement_id)
    assert not sk.redis_keys(cluster.bj.regional.url, f"*{s.settlement_id}*")

    # another institution may not refund it, whichever node it asks
    n = bj.refund(s.settlement_id, sk.new_id("rf"), 1, "H11010500002")
    forwarded += 1
    assert n.outcome == sk.NOT_PERMITTED, n

    # freezing through Beijing freezes the Guangdong account
    fr = bj.set_status(cid, sk.FROZEN, insured_region=sk.GD_REGION6)
    forwarded += 1
    assert fr.found and fr.status == sk.FROZEN
    assert gd.account(cid).status == sk.FROZEN
    z = bj.settle(v.ec_token, sk.BJ_INST, sk.new_id("yd"), 100, 100)
    forwarded += 1
    assert z.outcome == sk.ACCOUNT_FROZEN, z
    assert bj.set_status(cid, sk.ACTIVE, insured_region=sk.GD_REGION6).status == sk.ACTIVE
    forwarded += 1
    assert gd.account(cid).balance_fen == OPEN - 4_000

    # every forwarded call is counted at the Beijing node
    assert _fwd(cluster.bj.node, "44", "OK") - fwd0 == forwarded


def test_beijing_person_settles_at_a_guangdong_hospital(cluster, gd, bj, tmp_path):
    cid = sk.new_cid()
    fwd0 = _fwd(cluster.gd.node, "11", "OK")
    assert gd.open_account(cid, OPEN, OPEN, OPEN, insured_region=sk.BJ_REGION6).created
    assert bj.account(cid).found and not gd.account(cid).found
    v = gd.token(cluster.issuer, cid, sk.GD_INST, insured_region=sk.BJ_REGION6)
    assert v.cross_province is True
    s = gd.settle(v.ec_token, sk.GD_INST, sk.new_id("yd"), 4_000, 4_000)
    assert s.outcome == sk.SETTLED and s.settled_region == "11" and s.settlement_id.startswith("11"), s
    assert bj.account(cid).balance_fen == OPEN - 4_000
    sk.assert_openssl_ok(tmp_path, bj.node_key().public_key, s.receipt, s.receipt_signature)
    assert gd.get(s.settlement_id).found
    assert not sk.redis_keys(cluster.gd.regional.url, f"*{s.settlement_id}*")
    assert _fwd(cluster.gd.node, "11", "OK") - fwd0 == 3  # OpenAccount, Settle, GetSettlement


def test_local_visit_is_not_cross_province(gd, code_issuer):
    v = gd.token(code_issuer, sk.new_cid(), sk.GD_INST)
    assert v.cross_province is False


def test_out_of_form_settle_forwarded_is_still_invalid_argument(cluster, gd, bj):
    cid = sk.new_cid()
    gd.open_account(cid, OPEN, OPEN, OPEN)
    v = bj.token(cluster.issuer, cid, sk.BJ_INST)
    err = sk.rpc_error(
        bj.settlement.Settle, sk.settle_request(v.ec_token, sk.BJ_INST, sk.new_id("o"), 1_000, 1_001), timeout=sk.TIMEOUT
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    # the peer's answer comes back as it is: with the field it names
    assert "account_pay_fen" in sk.error_fields(err), (sk.error_fields(err), err.details())
    assert gd.account(cid).balance_fen == OPEN


def test_peer_down_is_unavailable_and_moves_nothing(cluster, gd, bj, node_starter):
    """A Beijing node whose Guangdong peer is down answers UNAVAILABLE (not
    INTERNAL) for everything it would forward, and no money moves."""
    dead_port = sk.free_port_nothing_listens()
    lonely = node_starter(sk.BJ, cluster.bj.regional.url, peers={sk.GD: dead_port})
    s = sk.Stubs.connect(lonely.target)
    try:
        cid = sk.new_cid()
        gd.open_account(cid, OPEN, OPEN, OPEN)
        v = s.token(cluster.issuer, cid, sk.BJ_INST)  # Verify needs no peer
        assert v.cross_province
        order = sk.new_id("down")
        calls = {
            "Settle": lambda: s.settle(v.ec_token, sk.BJ_INST, order, 5_000, 5_000),
            "PreSettle": lambda: s.settle(v.ec_token, sk.BJ_INST, order, 5_000, 5_000, dry=True),
            "Refund": lambda: s.refund("44" + "0" * 29 + "1", sk.new_id("rf"), 1, sk.BJ_INST),
            "GetSettlement": lambda: s.get("44" + "0" * 29 + "1"),
            "OpenAccount": lambda: s.open_account(sk.new_cid(), 1, 1, 1, insured_region=sk.GD_REGION6),
            "GetAccount": lambda: s.account(cid, insured_region=sk.GD_REGION6),
            "SetAccountStatus": lambda: s.set_status(cid, sk.FROZEN, insured_region=sk.GD_REGION6),
            "GetNodeKey": lambda: s.node_key("44"),
        }
        codes = {}
        for name, call in calls.items():
            codes[name] = sk.rpc_error(call).code()
        assert codes == {name: grpc.StatusCode.UNAVAILABLE for name in calls}, codes
        assert sk.metric(lonely.metrics_url, FWD, peer="44", code="UNAVAILABLE") >= len(calls)
        # nothing moved, and nothing was recorded under the order id
        acct = gd.account(cid)
        assert acct.balance_fen == OPEN and acct.spent_today_fen == 0 and acct.status == sk.ACTIVE
        v2 = bj.token(cluster.issuer, cid, sk.BJ_INST)
        ok = bj.settle(v2.ec_token, sk.BJ_INST, order, 4_000, 1_000)  # other content: no ORDER_CONFLICT
        assert ok.outcome == sk.SETTLED, ok
        assert gd.account(cid).balance_fen == OPEN - 1_000
    finally:
        s.close()


def test_unknown_province_is_unavailable_not_internal(cluster, gd, code_issuer):
    """A person insured in a province no peer is configured for (Shanghai)."""
    v = gd.token(code_issuer, sk.new_cid(), sk.GD_INST, insured_region="310101")
    err = sk.rpc_error(gd.settle, v.ec_token, sk.GD_INST, sk.new_id("o"), 100, 100)
    assert err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION), (err.code(), err.details())


@pytest.mark.parametrize("region", ["31", "4", "ab"])
def test_node_key_of_unknown_region(gd, region):
    err = sk.rpc_error(gd.admin.GetNodeKey, admin_pb2.GetNodeKeyRequest(region=region), timeout=sk.TIMEOUT)
    assert err.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE), (
        err.code(), err.details())


def test_settlement_id_of_unconfigured_province(gd):
    err = sk.rpc_error(
        gd.settlement.GetSettlement, settlement_pb2.GetSettlementRequest(settlement_id="31" + "0" * 30), timeout=sk.TIMEOUT
    )
    assert err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION), (err.code(), err.details())


def test_settled_fen_metric_counts_money_moved_once(cluster, gd, bj):
    """yibao_settled_fen_total counts fen that left accounts: once, at the
    node that owns the account; not for retries, PreSettle or refusals."""
    gd_url, bj_url = cluster.gd.node.metrics_url, cluster.bj.node.metrics_url
    g0, b0 = sk.metric(gd_url, "yibao_settled_fen_total"), sk.metric(bj_url, "yibao_settled_fen_total")
    cid = sk.new_cid()
    gd.open_account(cid, 50_000, 50_000, 50_000)
    local = gd.token(cluster.issuer, cid, sk.GD_INST).ec_token
    remote = bj.token(cluster.issuer, cid, sk.BJ_INST).ec_token
    order = sk.new_id("m")
    assert gd.settle(local, sk.GD_INST, order, 3_000, 3_000).outcome == sk.SETTLED
    assert gd.settle(local, sk.GD_INST, order, 3_000, 3_000).outcome == sk.SETTLED  # retry
    assert gd.settle(local, sk.GD_INST, sk.new_id("m"), 2_000, 2_000, dry=True).outcome == sk.SETTLED
    assert gd.settle(local, sk.GD_INST, sk.new_id("m"), 90_000, 60_000).outcome == sk.LIMIT_EXCEEDED
    yd = sk.new_id("m")
    assert bj.settle(remote, sk.BJ_INST, yd, 4_000, 4_000).outcome == sk.SETTLED
    assert bj.settle(remote, sk.BJ_INST, yd, 4_000, 4_000).outcome == sk.SETTLED  # retry
    assert sk.metric(gd_url, "yibao_settled_fen_total") - g0 == 7_000
    assert sk.metric(bj_url, "yibao_settled_fen_total") - b0 == 0
    assert gd.account(cid).balance_fen == 50_000 - 7_000
