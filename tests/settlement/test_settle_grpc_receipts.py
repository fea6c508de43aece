"""Receipts of settlements and refunds made over gRPC, checked by the OpenSSL
3 command line tool (an SM2 implementation sharing no code with the node)
against the key Admin.GetNodeKey gives, and read field by field from the
layout documented in server/receipts.py."""

from __future__ import annotations

import settlekit as sk

OPEN = 500_000
ITEMS = [
    sk.item("XJ01CAA0001", "阿莫西林胶囊", 2000, "盒", 1_250, 2_500),
    sk.item("", "挂号费", 1000, "次", 500, 500),
    sk.item("T0001", "血常规 (CBC)", 500, "项", 4_000, 2_000),
]


def _flip(b: bytes, i: int) -> bytes:
    return b[:i] + bytes([b[i] ^ 0x01]) + b[i + 1 :]


def test_node_key(gd, ref):
    k = gd.node_key()
    assert k.region == "44"
    assert len(k.public_key) == 65 and k.public_key[0] == 0x04
    assert ref.on_curve(k.public_key)
    assert k.key_id == ref.sm3(k.public_key)[:4].hex().upper()
    assert gd.node_key("44") == k


def test_settlement_and_refund_receipts_verify_with_openssl(gd, code_issuer, tmp_path, ref):
    cid = sk.new_cid()
    gd.open_account(cid, OPEN, OPEN, OPEN)
    verified = gd.token(code_issuer, cid, sk.GD_INST)
    order = "订单-" + sk.new_id("o")
    s = gd.settle(verified.ec_token, sk.GD_INST, order, 5_000, 3_500, ITEMS)
    assert s.outcome == sk.SETTLED, s
    key = gd.node_key(s.settled_region).public_key

    # the signature, by OpenSSL
    sk.assert_openssl_ok(tmp_path, key, s.receipt, s.receipt_signature)
    for i in (0, 4, 8, 40, 60, 100, 112, 140, len(s.receipt) - 1):
        sk.assert_openssl_fails(tmp_path, key, _flip(s.receipt, i), s.receipt_signature)
    sk.assert_openssl_fails(tmp_path, key, s.receipt, _flip(s.receipt_signature, 63))
    sk.assert_openssl_fails(tmp_path, key, s.receipt + b"\0", s.receipt_signature)

    # the fields, by the documented layout
    f = sk.parse_settlement_receipt(s.receipt)
    assert f["settled_region"] == s.settled_region == "44"
    assert f["settlement_id"] == s.settlement_id and f["settlement_id"].startswith(f["settled_region"])
    assert f["institution_code"] == sk.GD_INST
    assert f["credential_id"] == cid == verified.credential.credential_id
    assert f["insured_region"] == sk.GD_REGION6 == verified.credential.insured_region
    assert f["total_fen"] == 5_000
    assert f["account_pay_fen"] == s.account_pay_fen == 3_500
    assert f["cash_pay_fen"] == s.cash_pay_fen == 1_500
    assert f["balance_after_fen"] == s.balance_after_fen == OPEN - 3_500
    assert f["settled_at_ms"] == sk.ts_ms(s.settled_at)
    assert f["items_digest"] == ref.sm3(sk.items_encoding(ITEMS))
    assert f["order_id"] == order

    # GetSettlement gives the same signed bytes
    g = gd.get(s.settlement_id)
    assert g.settlement.receipt == s.receipt and g.settlement.receipt_signature == s.receipt_signature

    # a refund's receipt
    rid = "退-" + sk.new_id("rf")
    r = gd.refund(s.settlement_id, rid, 1_200, sk.GD_INST)
    assert r.outcome == sk.REFUNDED, r
    sk.assert_openssl_ok(tmp_path, key, r.receipt, r.receipt_signature)
    for i in (4, 10, 90, 100, len(r.receipt) - 1):
        sk.assert_openssl_fails(tmp_path, key, _flip(r.receipt, i), r.receipt_signature)
    fr = sk.parse_refund_receipt(r.receipt)
    assert fr["settled_region"] == "44"
    assert fr["settlement_id"] == s.settlement_id
    assert fr["institution_code"] == sk.GD_INST
    assert fr["credential_id"] == cid
    assert fr["amount_fen"] == r.amount_fen == 1_200
    assert fr["balance_after_fen"] == r.balance_after_fen == OPEN - 3_500 + 1_200
    assert fr["remaining_fen"] == r.remaining_fen == 2_300
    assert fr["refunded_at_ms"] == sk.ts_ms(r.refunded_at)
    assert fr["refund_id"] == rid
    g = gd.get(s.settlement_id)
    assert [(x.receipt, x.receipt_signature) for x in g.refunds] == [(r.receipt, r.receipt_signature)]

    # a settlement's signature does not pass for the refund and vice versa
    sk.assert_openssl_fails(tmp_path, key, r.receipt, s.receipt_signature)


def test_receipt_without_items_digests_the_empty_list(gd, code_issuer, tmp_path, ref):
    cid = sk.new_cid()
    gd.open_account(cid, OPEN, OPEN, OPEN)
    token = gd.token(code_issuer, cid, sk.GD_INST).ec_token
    s = gd.settle(token, sk.GD_INST, sk.new_id("o"), 900, 900)
    assert s.outcome == sk.SETTLED
    f = sk.parse_settlement_receipt(s.receipt)
    assert f["items_digest"] == ref.sm3(b"YBI1" + b"\0\0\0\0")
    assert (f["total_fen"], f["account_pay_fen"], f["cash_pay_fen"]) == (900, 900, 0)
    sk.assert_openssl_ok(tmp_path, gd.node_key().public_key, s.receipt, s.receipt_signature)
