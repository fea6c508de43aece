"""The audit log (api.md "Identity and who may do what": every Settle,
Refund, Revoke, Restore and account change is written to an append-only
audit log (who, what, when, outcome) before it is answered), read back with
Admin.ReadAudit. The names of `what` are those admin.proto documents (the
call's name): Settle, Refund, Revoke, Restore, WithdrawChannel,
RestoreChannel, LoadTrustList, OpenAccount, SetAccountStatus."""

from __future__ import annotations

import settlekit as sk
from yibao.v1 import admin_pb2, common_pb2


def _entries_since(stubs: sk.Stubs, since: str, region: str = ""):
    page = stubs.audit(since=since, count=10_000, region=region)
    return list(page.entries)


def test_audit_entries_for_each_change_in_order(gd, code_issuer):
    start = gd.audit_tail_id()
    t0 = sk.now_ms()
    cid = sk.new_cid()
    order = sk.new_id("aud")
    rid = sk.new_id("rf")

    opened = gd.open_account(cid, 80_000, 50_000, 60_000)
    assert opened.created
    token = gd.token(code_issuer, cid, sk.GD_INST).ec_token
    s = gd.settle(token, sk.GD_INST, order, 3_000, 2_000)
    assert s.outcome == sk.SETTLED
    r = gd.refund(s.settlement_id, rid, 500, sk.GD_INST)
    assert r.outcome == sk.REFUNDED
    gd.admin.Revoke(admin_pb2.RevokeRequest(credential_id=cid, reason=common_pb2.REVOCATION_REASON_LOST), timeout=sk.TIMEOUT)
    assert gd.set_status(cid, sk.FROZEN).found
    refused_order = sk.new_id("aud-frozen")
    assert gd.settle(token, sk.GD_INST, refused_order, 1_000, 1_000).outcome == sk.ACCOUNT_FROZEN
    forged_order = sk.new_id("aud-forged")
    assert gd.settle("garbage", sk.GD_INST, forged_order, 1_000, 1_000).outcome == sk.TOKEN_INVALID
    gd.admin.Restore(admin_pb2.RestoreRequest(credential_id=cid), timeout=sk.TIMEOUT)
    t1 = sk.now_ms()

    ours = [
        e
        for e in _entries_since(gd, start)
        if e.detail.get("credential_id") == cid
        or e.detail.get("order_id") in (order, refused_order, forged_order)
        or e.detail.get("settlement_id") == s.settlement_id
    ]
    got = [(e.what, e.outcome) for e in ours]
    admin_who = {e.who for e in ours if e.what not in ("Settle", "Refund")}
    expected_what = ["OpenAccount", "Settle", "Refund", "Revoke", "SetAccountStatus", "Settle", "Settle", "Restore"]
    assert [w for w, _ in got] == expected_what, f"audit entries (what, outcome) in order: {got}"

    open_e, settle_e, refund_e, revoke_e, freeze_e, frozen_e, forged_e, restore_e = ours
    # outcomes
    assert open_e.outcome and revoke_e.outcome and freeze_e.outcome and restore_e.outcome
    assert (settle_e.outcome, refund_e.outcome) == ("SETTLED", "REFUNDED")
    assert (frozen_e.outcome, forged_e.outcome) == ("ACCOUNT_FROZEN", "TOKEN_INVALID")
    # who
    for e in (settle_e, refund_e, frozen_e, forged_e):
        assert e.who == sk.GD_INST, e
    assert len(admin_who) == 1 and "" not in admin_who and sk.GD_INST not in admin_who, admin_who
    # detail: ids and amounts as decimal text
    assert open_e.detail["balance_fen"] == "80000"
    assert settle_e.detail["order_id"] == order
    assert settle_e.detail["settlement_id"] == s.settlement_id
    assert (settle_e.detail["total_fen"], settle_e.detail["account_pay_fen"]) == ("3000", "2000")
    assert refund_e.detail["settlement_id"] == s.settlement_id
    assert (refund_e.detail["refund_id"], refund_e.detail["amount_fen"]) == (rid, "500")
    assert revoke_e.detail["credential_id"] == cid and revoke_e.detail.get("reason") == "LOST"
    assert freeze_e.detail["credential_id"] == cid
    assert frozen_e.detail["order_id"] == refused_order and frozen_e.detail["account_pay_fen"] == "1000"
    assert forged_e.detail["order_id"] == forged_order
    # when, and the order of the log
    whens = [sk.ts_ms(e.when) for e in ours]
    assert all(t0 - 1000 <= w <= t1 + 1000 for w in whens), (t0, whens, t1)
    assert whens == sorted(whens)
    ids = [tuple(int(x) for x in e.id.split("-")) for e in ours]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert settle_e.when == s.settled_at
    assert refund_e.when == r.refunded_at


def test_presettle_and_reads_change_nothing_in_the_log(gd, code_issuer):
    """Not a change: PreSettle, GetAccount, GetSettlement."""
    cid = sk.new_cid()
    gd.open_account(cid, 10_000, 10_000, 10_000)
    token = gd.token(code_issuer, cid, sk.GD_INST).ec_token
    s = gd.settle(token, sk.GD_INST, sk.new_id("o"), 100, 100)
    start = gd.audit_tail_id()
    gd.settle(token, sk.GD_INST, sk.new_id("o"), 100, 100, dry=True)
    gd.account(cid)
    gd.get(s.settlement_id)
    assert _entries_since(gd, start) == []


def test_forwarded_settle_is_audited_in_the_insured_province(cluster, gd, bj):
    cid = sk.new_cid()
    gd.open_account(cid, 10_000, 10_000, 10_000)
    token = bj.token(cluster.issuer, cid, sk.BJ_INST).ec_token
    start = gd.audit_tail_id()
    order = sk.new_id("aud-yd")
    s = bj.settle(token, sk.BJ_INST, order, 2_000, 1_500)
    assert s.outcome == sk.SETTLED
    gd_log = [e for e in _entries_since(gd, start) if e.detail.get("order_id") == order]
    assert len(gd_log) == 1, gd_log
    assert gd_log[0].who == sk.BJ_INST and gd_log[0].outcome == "SETTLED"
    assert gd_log[0].detail["settlement_id"] == s.settlement_id
    # the Guangdong log read through the Beijing node is the same log
    via_bj = bj.audit(since=start, region="44")
    assert via_bj.region == "44"
    assert list(via_bj.entries) == _entries_since(gd, start)
    assert not [e for e in bj.audit(region="11").entries if e.detail.get("order_id") == order]


def test_read_audit_paging_and_bad_requests(gd, code_issuer):
    import grpc

    start = gd.audit_tail_id()
    cids = [sk.new_cid() for _ in range(5)]
    for c in cids:
        gd.open_account(c, 1, 1, 1)
    pages, since = [], start
    for _ in range(10):
        page = gd.audit(since=since, count=2)
        if not page.entries:
            break
        pages.append([e.detail.get("credential_id") for e in page.entries])
        since = page.entries[-1].id
    assert [x for p in pages for x in p] == cids
    assert [len(p) for p in pages] == [2, 2, 1]
    last = gd.admin.ReadAudit(admin_pb2.ReadAuditRequest(since=start, count=2, latest=True), timeout=sk.TIMEOUT)
    assert [e.detail.get("credential_id") for e in last.entries] == cids[-2:]
    for bad in (
        admin_pb2.ReadAuditRequest(count=10_001),
        admin_pb2.ReadAuditRequest(count=-1),
        admin_pb2.ReadAuditRequest(since="not-an-id"),
        admin_pb2.ReadAuditRequest(region="99"),
    ):
        err = sk.rpc_error(gd.admin.ReadAudit, bad, timeout=sk.TIMEOUT)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (bad, err.code(), err.details())
