"""Every SettleOutcome and RefundOutcome through real gRPC against a real
node, PreSettle moving nothing, GetSettlement with its refunds, idempotent
retries, and INVALID_ARGUMENT (never INTERNAL/UNKNOWN) for requests out of
form (api.md "service Settlement"; settlement.proto)."""

from __future__ import annotations

import re

import grpc
import pytest
import settlekit as sk
from yibao.v1 import settlement_pb2

from server import tokens

OPEN = 1_000_000  # 10,000 yuan
PER = 500_000
DAILY = 900_000


@pytest.fixture
def person(gd, code_issuer):
    """A Guangdong person with an open account and a token verified at GD_INST."""
    cid = sk.new_cid()
    opened = gd.open_account(cid, OPEN, PER, DAILY)
    assert opened.created and opened.balance_fen == OPEN
    tok = gd.token(code_issuer, cid, sk.GD_INST)
    return cid, tok.ec_token


def _balance(gd, cid) -> int:
    a = gd.account(cid)
    assert a.found
    return a.balance_fen


# --------------------------------------------------------------------------
# SETTLED
# --------------------------------------------------------------------------
def test_settled_response_fields(gd, person):
    cid, token = person
    order = sk.new_id("o")
    t0 = sk.now_ms()
    r = gd.settle(token, sk.GD_INST, order, 12_345, 10_000)
    t1 = sk.now_ms()
    assert r.outcome == sk.SETTLED, r
    assert re.fullmatch(r"[0-9A-F]{32}", r.settlement_id), r.settlement_id
    assert r.settlement_id.startswith("44")
    assert r.account_pay_fen == 10_000
    assert r.cash_pay_fen == 2_345
    assert r.balance_after_fen == OPEN - 10_000
    assert r.HasField("settled_at") and t0 - 1000 <= sk.ts_ms(r.settled_at) <= t1 + 1000
    assert r.settled_region == "44"
    assert r.order_id == order
    assert len(r.receipt) >= 163 and len(r.receipt_signature) == 64
    assert r.detail
    acct = gd.account(cid)
    assert acct.balance_fen == OPEN - 10_000
    assert acct.spent_today_fen == 10_000
    assert acct.status == sk.ACTIVE


def test_settle_retry_returns_first_settlement_unchanged(gd, person):
    cid, token = person
    order = sk.new_id("o")
    first = gd.settle(token, sk.GD_INST, order, 5_000, 3_000)
    assert first.outcome == sk.SETTLED
    for _ in range(3):
        again = gd.settle(token, sk.GD_INST, order, 5_000, 3_000)
        assert again == first  # every field, receipt bytes and signature included
    assert _balance(gd, cid) == OPEN - 3_000


def test_all_cash_bill_settles_without_moving_the_balance(gd, person):
    cid, token = person
    r = gd.settle(token, sk.GD_INST, sk.new_id("o"), 800, 0)
    assert r.outcome == sk.SETTLED, r
    assert (r.account_pay_fen, r.cash_pay_fen, r.balance_after_fen) == (0, 800, OPEN)
    assert _balance(gd, cid) == OPEN


def test_same_order_id_at_another_institution_is_another_order(gd, code_issuer, person):
    cid, token = person
    token2 = gd.token(code_issuer, cid, sk.GD_INST2).ec_token
    order = sk.new_id("o")
    a = gd.settle(token, sk.GD_INST, order, 1_000, 1_000)
    b = gd.settle(token2, sk.GD_INST2, order, 1_000, 1_000)
    assert a.outcome == b.outcome == sk.SETTLED
    assert a.settlement_id != b.settlement_id
    assert _balance(gd, cid) == OPEN - 2_000


# --------------------------------------------------------------------------
# TOKEN_INVALID / TOKEN_EXPIRED
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dry", [False, True], ids=["Settle", "PreSettle"])
def test_token_invalid(gd, code_issuer, person, dry):
    cid, token = person
    forged = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    for bad in ("garbage", "x" * 97, forged, token + "A"):
        r = gd.settle(bad, sk.GD_INST, sk.new_id("o"), 1_000, 500, dry=dry)
        assert r.outcome == sk.TOKEN_INVALID, (bad, r)
        assert not r.settlement_id and not r.receipt
    # a genuine token, verified by another institution: bound to that one
    r = gd.settle(token, sk.GD_INST2, sk.new_id("o"), 1_000, 500, dry=dry)
    assert r.outcome == sk.TOKEN_INVALID, r
    assert _balance(gd, cid) == OPEN


@pytest.mark.parametrize("dry", [False, True], ids=["Settle", "PreSettle"])
def test_token_expired(gd, cluster, person, dry):
    cid, token = person
    key = sk.token_key(cluster.national.url)
    genuine = tokens.parse(key, token)
    assert genuine is not None and genuine.credential_id == cid  # the layout is the documented one
    expired = tokens.mint(
        key,
        tokens.Token(
            credential_id=cid, nonce=genuine.nonce, institution_code=sk.GD_INST, insured_region=sk.GD_REGION6,
            channel=genuine.channel, family=False, expires_at_ms=sk.now_ms() - 1_000,
        ),
    )
    r = gd.settle(expired, sk.GD_INST, sk.new_id("o"), 1_000, 500, dry=dry)
    assert r.outcome == sk.TOKEN_EXPIRED, r
    assert not r.settlement_id and not r.receipt
    # the same token still valid for a minute is accepted (the key is the right one)
    fresh = tokens.mint(
        key,
        tokens.Token(
            credential_id=cid, nonce=genuine.nonce, institution_code=sk.GD_INST, insured_region=sk.GD_REGION6,
            channel=genuine.channel, family=False, expires_at_ms=sk.now_ms() + 60_000,
        ),
    )
    r = gd.settle(fresh, sk.GD_INST, sk.new_id("o"), 1_000, 500, dry=True)
    assert r.outcome == sk.SETTLED, r
    assert _balance(gd, cid) == OPEN


# --------------------------------------------------------------------------
# Account outcomes
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dry", [False, True], ids=["Settle", "PreSettle"])
def test_account_not_found(gd, code_issuer, dry):
    cid = sk.new_cid()
    token = gd.token(code_issuer, cid, sk.GD_INST).ec_token
    r = gd.settle(token, sk.GD_INST, sk.new_id("o"), 1_000, 500, dry=dry)
    assert r.outcome == sk.ACCOUNT_NOT_FOUND, r
    assert not r.settlement_id
    assert not gd.account(cid).found


def test_account_frozen_then_unfrozen(gd, person):
    cid, token = person
    s = gd.set_status(cid, sk.FROZEN)
    assert s.found and s.status == sk.FROZEN
    assert gd.account(cid).status == sk.FROZEN
    order = sk.new_id("o")
    for dry in (True, False):
        r = gd.settle(token, sk.GD_INST, order, 1_000, 500, dry=dry)
        assert r.outcome == sk.ACCOUNT_FROZEN, r
        assert not r.settlement_id and not r.receipt
    assert _balance(gd, cid) == OPEN
    s = gd.set_status(cid, sk.ACTIVE)
    assert s.found and s.status == sk.ACTIVE
    r = gd.settle(token, sk.GD_INST, order, 1_000, 500)  # a refused order may be retried
    assert r.outcome == sk.SETTLED, r
    assert _balance(gd, cid) == OPEN - 500


def test_set_status_of_unknown_account(gd):
    s = gd.set_status(sk.new_cid(), sk.FROZEN)
    assert not s.found


def test_insufficient_balance(gd, code_issuer):
    cid = sk.new_cid()
    gd.open_account(cid, 1_000, 10_000, 10_000)
    token = gd.token(code_issuer, cid, sk.GD_INST).ec_token
    for dry in (True, False):
        r = gd.settle(token, sk.GD_INST, sk.new_id("o"), 5_000, 1_001, dry=dry)
        assert r.outcome == sk.INSUFFICIENT_BALANCE, r
        assert not r.settlement_id and not r.receipt
    assert _balance(gd, cid) == 1_000
    r = gd.settle(token, sk.GD_INST, sk.new_id("o"), 5_000, 1_000)
    assert r.outcome == sk.SETTLED and r.balance_after_fen == 0, r
    r = gd.settle(token, sk.GD_INST, sk.new_id("o"), 5_000, 1)
    assert r.outcome == sk.INSUFFICIENT_BALANCE, r
    assert _balance(gd, cid) == 0


def test_limit_exceeded_per_payment(gd, code_issuer):
    cid = sk.new_cid()
    gd.open_account(cid, 100_000, 5_000, 50_000)
    token = gd.token(code_issuer, cid, sk.GD_INST).ec_token
    for dry in (True, False):
        r = gd.settle(token, sk.GD_INST, sk.new_id("o"), 9_000, 5_001, dry=dry)
        assert r.outcome == sk.LIMIT_EXCEEDED, r
        assert not r.settlement_id
    assert _balance(gd, cid) == 100_000
    r = gd.settle(token, sk.GD_INST, sk.new_id("o"), 9_000, 5_000)
    assert r.outcome == sk.SETTLED, r
    assert _balance(gd, cid) == 95_000


def test_limit_exceeded_daily(gd, code_issuer):
    cid = sk.new_cid()
    gd.open_account(cid, 100_000, 5_000, 8_000)
    token = gd.token(code_issuer, cid, sk.GD_INST).ec_token
    assert gd.settle(token, sk.GD_INST, sk.new_id("o"), 5_000, 5_000).outcome == sk.SETTLED
    for dry in (True, False):
        r = gd.settle(token, sk.GD_INST, sk.new_id("o"), 3_001, 3_001, dry=dry)
        assert r.outcome == sk.LIMIT_EXCEEDED, r
    assert gd.account(cid).spent_today_fen == 5_000
    r = gd.settle(token, sk.GD_INST, sk.new_id("o"), 3_000, 3_000)  # exactly what is left of today
    assert r.outcome == sk.SETTLED, r
    r = gd.settle(token, sk.GD_INST, sk.new_id("o"), 1, 1)
    assert r.outcome == sk.LIMIT_EXCEEDED, r
    acct = gd.account(cid)
    assert (acct.balance_fen, acct.spent_today_fen, acct.daily_limit_fen) == (92_000, 8_000, 8_000)


def test_refund_on_the_day_gives_back_daily_room(gd, code_issuer):
    """README: a refund on the day of the settlement lowers that day's spent amount."""
    cid = sk.new_cid()
    gd.open_account(cid, 100_000, 8_000, 8_000)
    token = gd.token(code_issuer, cid, sk.GD_INST).ec_token
    s = gd.settle(token, sk.GD_INST, sk.new_id("o"), 8_000, 8_000)
    assert s.outcome == sk.SETTLED
    assert gd.settle(token, sk.GD_INST, sk.new_id("o"), 2_000, 2_000).outcome == sk.LIMIT_EXCEEDED
    assert gd.refund(s.settlement_id, sk.new_id("rf"), 2_000, sk.GD_INST).outcome == sk.REFUNDED
    assert gd.account(cid).spent_today_fen == 6_000
    assert gd.settle(token, sk.GD_INST, sk.new_id("o"), 2_000, 2_000).outcome == sk.SETTLED
    acct = gd.account(cid)
    assert (acct.balance_fen, acct.spent_today_fen) == (100_000 - 8_000, 8_000)


# --------------------------------------------------------------------------
# ORDER_CONFLICT
# --------------------------------------------------------------------------
def test_order_conflict(gd, code_issuer, person):
    cid, token = person
    order = sk.new_id("o")
    items = [sk.item("XJ01", "阿莫西林胶囊", 2000, "盒", 1_250, 2_500), sk.item("", "挂号费", 1000, "次", 500, 500)]
    first = gd.settle(token, sk.GD_INST, order, 3_000, 2_000, items)
    assert first.outcome == sk.SETTLED
    other_cid = sk.new_cid()
    gd.open_account(other_cid, OPEN, PER, DAILY)
    other_token = gd.token(code_issuer, other_cid, sk.GD_INST).ec_token
    other_items = [sk.item("XJ01", "阿莫西林胶囊", 1000, "盒", 1_250, 1_250), sk.item("", "挂号费", 1000, "次", 1_750, 1_750)]
    conflicts = [
        (token, 3_001, 2_000, [*items[:1], sk.item("", "挂号费", 1000, "次", 501, 501)]),  # total
        (token, 3_000, 1_999, items),  # account part
        (token, 3_000, 2_000, other_items),  # the lines
        (token, 3_000, 2_000, ()),  # lines dropped
        (other_token, 3_000, 2_000, items),  # another person
    ]
    for tok, total, pay, its in conflicts:
        for dry in (False, True):
            r = gd.settle(tok, sk.GD_INST, order, total, pay, its, dry=dry)
            if dry:
                # PreSettle answers what Settle would: the same conflict
                assert r.outcome == sk.ORDER_CONFLICT, (total, pay, r)
            else:
                assert r.outcome == sk.ORDER_CONFLICT, (total, pay, r)
                assert not r.settlement_id and not r.receipt
    assert _balance(gd, cid) == OPEN - 2_000
    assert _balance(gd, other_cid) == OPEN
    assert gd.settle(token, sk.GD_INST, order, 3_000, 2_000, items) == first


# --------------------------------------------------------------------------
# PreSettle
# --------------------------------------------------------------------------
def test_presettle_answers_like_settle_and_moves_nothing(gd, person):
    cid, token = person
    before = gd.account(cid)
    order = sk.new_id("o")
    for _ in range(3):
        p = gd.settle(token, sk.GD_INST, order, 7_000, 4_000, dry=True)
        assert p.outcome == sk.SETTLED, p
        assert (p.account_pay_fen, p.cash_pay_fen, p.balance_after_fen) == (4_000, 3_000, OPEN - 4_000)
        assert p.settlement_id == "" and p.receipt == b"" and p.receipt_signature == b""
        assert not p.HasField("settled_at")
        assert p.settled_region == "44"
        assert p.order_id == order
    after = gd.account(cid)
    assert after == before  # balance, today's spending, status: all unchanged
    # Nothing was recorded under the order id: a Settle with other content is
    # no ORDER_CONFLICT, and it pays once.
    s = gd.settle(token, sk.GD_INST, order, 6_000, 2_500)
    assert s.outcome == sk.SETTLED, s
    assert s.balance_after_fen == OPEN - 2_500
    got = gd.get(s.settlement_id)
    assert got.found and got.settlement.total_fen == 6_000
    assert _balance(gd, cid) == OPEN - 2_500
    # PreSettle of a settled order moves nothing either
    p = gd.settle(token, sk.GD_INST, order, 6_000, 2_500, dry=True)
    assert p.outcome == sk.SETTLED and p.account_pay_fen == 2_500, p
    assert _balance(gd, cid) == OPEN - 2_500


# --------------------------------------------------------------------------
# Refund
# --------------------------------------------------------------------------
def test_refund_outcomes_and_get_settlement(gd, person):
    cid, token = person
    items = [sk.item("XJ01", "阿莫西林胶囊", 2000, "盒", 1_500, 3_000), sk.item("", "诊查费", 1000, "次", 2_000, 2_000)]
    s = gd.settle(token, sk.GD_INST, sk.new_id("o"), 5_000, 3_000, items)
    assert s.outcome == sk.SETTLED
    sid = s.settlement_id
    r1_id, r2_id = sk.new_id("rf"), sk.new_id("rf")

    r1 = gd.refund(sid, r1_id, 1_000, sk.GD_INST)
    assert r1.outcome == sk.REFUNDED, r1
    assert (r1.refund_id, r1.settlement_id, r1.amount_fen) == (r1_id, sid, 1_000)
    assert r1.balance_after_fen == OPEN - 3_000 + 1_000
    assert r1.remaining_fen == 2_000
    assert r1.HasField("refunded_at") and len(r1.receipt) >= 117 and len(r1.receipt_signature) == 64
    assert _balance(gd, cid) == OPEN - 2_000

    # idempotent: the same refund again is the first answer, byte for byte
    assert gd.refund(sid, r1_id, 1_000, sk.GD_INST) == r1
    assert _balance(gd, cid) == OPEN - 2_000

    # the same refund id with other content
    c = gd.refund(sid, r1_id, 999, sk.GD_INST)
    assert c.outcome == sk.REFUND_CONFLICT, c
    assert not c.receipt

    # more than what is left
    e = gd.refund(sid, sk.new_id("rf"), 2_001, sk.GD_INST)
    assert e.outcome == sk.EXCEEDS_REMAINING, e
    assert e.remaining_fen == 2_000 and not e.receipt

    # another institution
    n = gd.refund(sid, sk.new_id("rf"), 1, sk.GD_INST2)
    assert n.outcome == sk.NOT_PERMITTED, n
    assert not n.receipt

    # no such settlement
    nf = gd.refund("44" + "F" * 30, sk.new_id("rf"), 1, sk.GD_INST)
    assert nf.outcome == sk.NOT_FOUND, nf
    assert _balance(gd, cid) == OPEN - 2_000

    # the rest
    r2 = gd.refund(sid, r2_id, 2_000, sk.GD_INST)
    assert r2.outcome == sk.REFUNDED, r2
    assert r2.remaining_fen == 0 and r2.balance_after_fen == OPEN
    assert gd.refund(sid, r2_id, 2_000, sk.GD_INST) == r2
    e = gd.refund(sid, sk.new_id("rf"), 1, sk.GD_INST)
    assert e.outcome == sk.EXCEEDS_REMAINING and e.remaining_fen == 0, e
    assert _balance(gd, cid) == OPEN

    # read back, with its refunds, oldest first
    g = gd.get(sid)
    assert g.found
    rec = g.settlement
    assert (rec.settlement_id, rec.institution_code, rec.credential_id) == (sid, sk.GD_INST, cid)
    assert rec.order_id == s.order_id
    assert (rec.total_fen, rec.account_pay_fen, rec.cash_pay_fen) == (5_000, 3_000, 2_000)
    assert rec.balance_after_fen == s.balance_after_fen
    assert rec.settled_at == s.settled_at
    assert rec.settled_region == "44"
    assert rec.refunded_fen == 3_000
    assert [sk.item(i.item_code, i.name, i.quantity_milli, i.unit, i.unit_price_fen, i.amount_fen) for i in rec.items] == items
    assert rec.receipt == s.receipt and rec.receipt_signature == s.receipt_signature
    assert [x.refund_id for x in g.refunds] == [r1_id, r2_id]
    for got, made in zip(g.refunds, (r1, r2), strict=True):
        assert got.amount_fen == made.amount_fen
        assert got.balance_after_fen == made.balance_after_fen
        assert got.refunded_at == made.refunded_at
        assert got.receipt == made.receipt and got.receipt_signature == made.receipt_signature
    # ids are accepted in lower case
    assert gd.get(sid.lower()) == g


def test_refund_id_reused_on_another_settlement_conflicts(gd, person):
    cid, token = person
    a = gd.settle(token, sk.GD_INST, sk.new_id("o"), 1_000, 1_000)
    b = gd.settle(token, sk.GD_INST, sk.new_id("o"), 1_000, 1_000)
    rid = sk.new_id("rf")
    assert gd.refund(a.settlement_id, rid, 500, sk.GD_INST).outcome == sk.REFUNDED
    c = gd.refund(b.settlement_id, rid, 500, sk.GD_INST)
    assert c.outcome == sk.REFUND_CONFLICT, c
    assert _balance(gd, cid) == OPEN - 1_500


def test_refund_of_more_than_the_account_paid(gd, person):
    """Only the personal-account part of a bill returns to the account."""
    cid, token = person
    s = gd.settle(token, sk.GD_INST, sk.new_id("o"), 5_000, 3_000)
    e = gd.refund(s.settlement_id, sk.new_id("rf"), 3_001, sk.GD_INST)
    assert e.outcome == sk.EXCEEDS_REMAINING and e.remaining_fen == 3_000, e
    assert _balance(gd, cid) == OPEN - 3_000


def test_get_settlement_not_found(gd):
    g = gd.get("44" + "E" * 30)
    assert not g.found and not g.settlement.settlement_id and not g.refunds


# --------------------------------------------------------------------------
# INVALID_ARGUMENT, never INTERNAL / UNKNOWN
# --------------------------------------------------------------------------
SETTLE_CASES = {
    # name: (field, overrides of (institution, order, total, pay, items, token))
    "account_pay_over_total": ("account_pay_fen", {"total": 1_000, "pay": 1_001}),
    "negative_total": ("total_fen", {"total": -1, "pay": 0}),
    "zero_total": ("total_fen", {"total": 0, "pay": 0}),
    "negative_account_pay": ("account_pay_fen", {"total": 1_000, "pay": -1}),
    "both_negative": (None, {"total": -5, "pay": -10}),
    "empty_order_id": ("order_id", {"order": ""}),
    "order_id_65": ("order_id", {"order": "o" * 65}),
    "institution_empty": ("institution_code", {"institution": ""}),
    "institution_letter": ("institution_code", {"institution": "X44030500001"}),
    "institution_short": ("institution_code", {"institution": "H4403050000"}),
    "institution_long": ("institution_code", {"institution": "H440305000012"}),
    "institution_province_99": ("institution_code", {"institution": "H99030500001"}),
    "missing_token": ("ec_token", {"token": ""}),
    "token_257": ("ec_token", {"token": "A" * 257}),
    "items_do_not_add_up": ("items", {"total": 3_000, "pay": 100, "items": [sk.item("", "a", 1000, "次", 1_000, 1_000), sk.item("", "b", 1000, "次", 1_000, 1_999)]}),
    "item_negative_amount": (None, {"total": 1_000, "pay": 100, "items": [sk.item("", "a", 1000, "次", 2_000, 2_000), sk.item("", "b", 1000, "次", 0, -1_000)]}),
}


@pytest.mark.parametrize("case", list(SETTLE_CASES), ids=list(SETTLE_CASES))
@pytest.mark.parametrize("dry", [False, True], ids=["Settle", "PreSettle"])
def test_settle_request_out_of_form_is_invalid_argument(gd, person, case, dry):
    cid, token = person
    field, o = SETTLE_CASES[case]
    req = sk.settle_request(
        o.get("token", token), o.get("institution", sk.GD_INST), o.get("order", sk.new_id("o")),
        o.get("total", 1_000), o.get("pay", 500), o.get("items", ()),
    )
    rpc = gd.settlement.PreSettle if dry else gd.settlement.Settle
    err = sk.rpc_error(rpc, req, timeout=sk.TIMEOUT)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    if field is not None:
        assert field in sk.error_fields(err), (field, sk.error_fields(err), err.details())
    assert _balance(gd, cid) == OPEN


@pytest.mark.parametrize("case", ["account_pay_over_total", "negative_total", "negative_account_pay", "items_do_not_add_up"])
def test_amounts_out_of_form_are_invalid_argument_whatever_the_token(gd, cluster, person, case):
    """A request out of form is INVALID_ARGUMENT (api.md: "a required field
    missing or out of form"), whatever its token: not a business answer
    about the token (which the node also writes to the audit log with the
    out-of-form amounts)."""
    cid, token = person
    key = sk.token_key(cluster.national.url)
    g = tokens.parse(key, token)
    expired = tokens.mint(
        key,
        tokens.Token(cid, g.nonce, sk.GD_INST, sk.GD_REGION6, g.channel, False, sk.now_ms() - 1_000),
    )
    _, o = SETTLE_CASES[case]
    for tok in ("garbage", expired):
        req = sk.settle_request(tok, sk.GD_INST, sk.new_id("o"), o["total"], o["pay"], o.get("items", ()))
        try:
            resp = gd.settlement.Settle(req, timeout=sk.TIMEOUT)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details())
        else:
            pytest.fail(
                f"{case} with a {'forged' if tok == 'garbage' else 'expired'} token: expected INVALID_ARGUMENT, "
                f"got the business answer {settlement_pb2.SettleOutcome.Name(resp.outcome)}"
            )


def test_huge_amounts_never_internal(gd, person):
    cid, token = person
    for total, pay in ((2**63 - 1, 1), (2**63 - 1, 2**63 - 1), (10**15 + 1, 0)):
        req = sk.settle_request(token, sk.GD_INST, sk.new_id("o"), total, pay)
        try:
            r = gd.settlement.PreSettle(req, timeout=sk.TIMEOUT)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (total, pay, e.code(), e.details())
        else:
            assert r.outcome in (sk.SETTLED, sk.INSUFFICIENT_BALANCE, sk.LIMIT_EXCEEDED), r
    assert _balance(gd, cid) == OPEN


REFUND_CASES = {
    "settlement_id_empty": ("settlement_id", {"sid": ""}),
    "settlement_id_31": ("settlement_id", {"sid": "4" * 31}),
    "settlement_id_33": ("settlement_id", {"sid": "4" * 33}),
    "settlement_id_not_hex": ("settlement_id", {"sid": "44" + "G" * 30}),
    "amount_zero": ("amount_fen", {"amount": 0}),
    "amount_negative": ("amount_fen", {"amount": -100}),
    "refund_id_empty": ("refund_id", {"rid": ""}),
    "refund_id_65": ("refund_id", {"rid": "r" * 65}),
    "institution_bad": ("institution_code", {"institution": "H4403050000X"}),
    "institution_empty": ("institution_code", {"institution": ""}),
}


@pytest.mark.parametrize("case", list(REFUND_CASES), ids=list(REFUND_CASES))
def test_refund_request_out_of_form_is_invalid_argument(gd, person, case):
    cid, token = person
    s = gd.settle(token, sk.GD_INST, sk.new_id("o"), 1_000, 1_000)
    assert s.outcome == sk.SETTLED
    field, o = REFUND_CASES[case]
    req = settlement_pb2.RefundRequest(
        settlement_id=o.get("sid", s.settlement_id), refund_id=o.get("rid", sk.new_id("rf")),
        amount_fen=o.get("amount", 100), institution_code=o.get("institution", sk.GD_INST),
    )
    err = sk.rpc_error(gd.settlement.Refund, req, timeout=sk.TIMEOUT)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert field in sk.error_fields(err), (field, sk.error_fields(err), err.details())
    assert _balance(gd, cid) == OPEN - 1_000
    assert gd.get(s.settlement_id).settlement.refunded_fen == 0


@pytest.mark.parametrize("sid", ["", "XYZ", "44" + "G" * 30, "4" * 31, "4" * 33, "44" + "0" * 29 + " "])
def test_get_settlement_bad_id_is_invalid_argument(gd, sid):
    err = sk.rpc_error(gd.settlement.GetSettlement, settlement_pb2.GetSettlementRequest(settlement_id=sid), timeout=sk.TIMEOUT)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert "settlement_id" in sk.error_fields(err)


def test_order_id_of_64_characters_is_fine(gd, person):
    _cid, token = person
    order = ("订" + sk.new_id("o")).ljust(64, "x")
    assert len(order) == 64
    r = gd.settle(token, sk.GD_INST, order, 1_000, 100)
    assert r.outcome == sk.SETTLED and r.order_id == order, r
    assert gd.get(r.settlement_id).settlement.order_id == order


def test_retry_of_a_settled_order_after_things_changed(gd, cluster, person):
    """A retry never pays twice, whatever happened since: the account was
    frozen, the balance spent, the token expired."""
    cid, token = person
    order = sk.new_id("o")
    first = gd.settle(token, sk.GD_INST, order, 9_000, 9_000)
    assert first.outcome == sk.SETTLED
    assert gd.settle(token, sk.GD_INST, sk.new_id("o"), OPEN, OPEN - 9_000).outcome == sk.LIMIT_EXCEEDED
    gd.set_status(cid, sk.FROZEN)
    assert gd.settle(token, sk.GD_INST, order, 9_000, 9_000) == first
    gd.set_status(cid, sk.ACTIVE)
    key = sk.token_key(cluster.national.url)
    g = tokens.parse(key, token)
    expired = tokens.mint(key, tokens.Token(cid, g.nonce, sk.GD_INST, sk.GD_REGION6, g.channel, False, sk.now_ms() - 1))
    late = gd.settle(expired, sk.GD_INST, order, 9_000, 9_000)
    assert late == first or late.outcome == sk.TOKEN_EXPIRED, late
    # a fresh token for the same person and bill: still the first settlement
    fresh = gd.token(cluster.issuer, cid, sk.GD_INST).ec_token
    assert gd.settle(fresh, sk.GD_INST, order, 9_000, 9_000) == first
    assert _balance(gd, cid) == OPEN - 9_000


def test_open_account_twice_leaves_it_unchanged(gd, person):
    cid, token = person
    assert gd.settle(token, sk.GD_INST, sk.new_id("o"), 1_000, 1_000).outcome == sk.SETTLED
    again = gd.open_account(cid, 5, 5, 5)
    assert not again.created
    assert (again.balance_fen, again.per_payment_limit_fen, again.daily_limit_fen) == (OPEN - 1_000, PER, DAILY)
    assert _balance(gd, cid) == OPEN - 1_000


OPEN_CASES = {
    "negative_balance": ("balance_fen", {"balance": -1}),
    "zero_per_payment_limit": ("per_payment_limit_fen", {"per": 0}),
    "negative_daily_limit": ("daily_limit_fen", {"daily": -5}),
    "bad_credential_id": ("credential_id", {"cid": "XYZ"}),
    "credential_id_31": ("credential_id", {"cid": "A" * 31}),
    "missing_insured_region": ("insured_region", {"region": ""}),
    "insured_region_5_digits": ("insured_region", {"region": "44030"}),
    "insured_region_letters": ("insured_region", {"region": "44ab00"}),
}


@pytest.mark.parametrize("case", list(OPEN_CASES), ids=list(OPEN_CASES))
def test_open_account_out_of_form_is_invalid_argument(gd, case):
    from yibao.v1 import admin_pb2

    field, o = OPEN_CASES[case]
    cid = o.get("cid", sk.new_cid())
    req = admin_pb2.OpenAccountRequest(
        credential_id=cid, balance_fen=o.get("balance", 100), per_payment_limit_fen=o.get("per", 100),
        daily_limit_fen=o.get("daily", 100), insured_region=o.get("region", sk.GD_REGION6),
    )
    err = sk.rpc_error(gd.admin.OpenAccount, req, timeout=sk.TIMEOUT)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert field in sk.error_fields(err), (field, sk.error_fields(err), err.details())
    if len(cid) == 32:
        assert not gd.account(cid).found


def test_open_account_with_zero_balance_then_settle_cash_only(gd, code_issuer):
    cid = sk.new_cid()
    assert gd.open_account(cid, 0, 100, 100).created
    token = gd.token(code_issuer, cid, sk.GD_INST).ec_token
    assert gd.settle(token, sk.GD_INST, sk.new_id("o"), 100, 1).outcome == sk.INSUFFICIENT_BALANCE
    assert gd.settle(token, sk.GD_INST, sk.new_id("o"), 100, 0).outcome == sk.SETTLED
