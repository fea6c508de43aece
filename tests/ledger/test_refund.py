"""Refund on a real Redis: every outcome, idempotency by refund_id,
REFUND_CONFLICT, the daily spending it gives back, records and audit."""

from __future__ import annotations

import asyncio

import pytest
from ledgerkit import INST, INST2, INSURED, NOW, cid, dump, ledger

from server import audit
from server.ledger import MAX_FEN, RefundInput, SettleInput

A = cid(1)
DAY = 86_400_000


def sreq(order, total, pay, *, inst=INST, now=NOW):
    return SettleInput(
        institution_code=inst,
        order_id=order,
        credential_id=A,
        insured_region=INSURED,
        total_fen=total,
        account_pay_fen=pay,
        items_digest="",
        now_ms=now,
        actor=inst,
    )


def rreq(sid, rid, amount, *, inst=INST, now=NOW + 1000):
    return RefundInput(
        settlement_id=sid, refund_id=rid, amount_fen=amount, institution_code=inst, now_ms=now, actor=inst
    )


async def conserved(led, credential=A):
    acct = await led.get_account(credential, NOW)
    assert acct.opening_balance_fen - acct.settled_total_fen + acct.refunded_total_fen == acct.balance_fen
    return acct


def test_refund_outcomes_and_idempotency(redis_url):
    async def go():
        async with ledger(redis_url) as led:
            await led.open_account(
                A, balance_fen=10_000, per_payment_limit_fen=10_000, daily_limit_fen=10_000, actor="admin", now_ms=NOW
            )
            s = (await led.settle(sreq("o1", 5000, 3000), dry_run=False)).settlement
            assert s.balance_after_fen == 7000

            r1 = await led.refund(rreq(s.settlement_id, "r1", 1000))
            assert (r1.outcome, r1.amount_fen, r1.balance_after_fen, r1.remaining_fen) == ("REFUNDED", 1000, 8000, 2000)
            assert r1.refunded_at_ms == NOW + 1000 and not r1.replayed
            f = r1.refund
            assert (f.refund_id, f.settlement_id, f.institution_code, f.credential_id, f.settled_region) == (
                "r1",
                s.settlement_id,
                INST,
                A,
                "44",
            )
            # a retry (lower-case id, later) returns the first refund unchanged and moves nothing
            again = await led.refund(rreq(s.settlement_id.lower(), "r1", 1000, now=NOW + 9999))
            assert again == r1 and again.replayed
            assert (await conserved(led)).balance_fen == 8000

            # same refund_id, other content
            for other in (rreq(s.settlement_id, "r1", 999),):
                c = await led.refund(other)
                assert (c.outcome, c.amount_fen, c.balance_after_fen, c.refund) == ("REFUND_CONFLICT", 0, 0, None)
            s2 = (await led.settle(sreq("o2", 100, 100), dry_run=False)).settlement
            c = await led.refund(rreq(s2.settlement_id, "r1", 1000))
            assert c.outcome == "REFUND_CONFLICT"

            # more than what is left
            x = await led.refund(rreq(s.settlement_id, "r2", 2001))
            assert (x.outcome, x.remaining_fen, x.amount_fen) == ("EXCEEDS_REMAINING", 2000, 0)
            # ... not remembered: the same refund_id may be used for what is left
            r2 = await led.refund(rreq(s.settlement_id, "r2", 2000))
            assert (r2.outcome, r2.remaining_fen, r2.balance_after_fen) == ("REFUNDED", 0, 9900)
            x = await led.refund(rreq(s.settlement_id, "r3", 1))
            assert (x.outcome, x.remaining_fen) == ("EXCEEDS_REMAINING", 0)

            # not found: unknown id, another province's id
            for sid in ("44" + "F" * 30, "11" + s.settlement_id[2:]):
                nf = await led.refund(rreq(sid, "r9", 1))
                assert (nf.outcome, nf.settlement_id) == ("NOT_FOUND", sid)
            # another institution may not refund, whatever refund_id it uses
            for rid in ("r1", "r9"):
                np_ = await led.refund(rreq(s2.settlement_id, rid, 1, inst=INST2))
                assert (np_.outcome, np_.balance_after_fen) == ("NOT_PERMITTED", 0)

            # a frozen account still gets its money back
            await led.set_status(A, "FROZEN", actor="admin", now_ms=NOW)
            r4 = await led.refund(rreq(s2.settlement_id, "r4", 40))
            assert (r4.outcome, r4.balance_after_fen, r4.remaining_fen) == ("REFUNDED", 9940, 60)

            acct = await conserved(led)
            assert (acct.settled_total_fen, acct.refunded_total_fen, acct.balance_fen) == (3100, 3040, 9940)

            got = await led.get_settlement(s.settlement_id)
            assert got.refunded_fen == 3000 and got.refunds == (r1.refund, r2.refund)
            got2 = await led.get_settlement(s2.settlement_id)
            assert got2.refunded_fen == 40 and got2.refunds == (r4.refund,)
            # the settlement's own fields never change
            assert got.balance_after_fen == s.balance_after_fen and got.total_fen == s.total_fen

            refunds = [
                (e.outcome, e.detail["refund_id"], e.detail.get("replayed"))
                for e in await audit.read(led.redis, "44", count=1000)
                if e.what == "Refund"
            ]
            assert refunds == [
                ("REFUNDED", "r1", "0"),
                ("REFUNDED", "r1", "1"),
                ("REFUND_CONFLICT", "r1", None),
                ("REFUND_CONFLICT", "r1", None),
                ("EXCEEDS_REMAINING", "r2", None),
                ("REFUNDED", "r2", "0"),
                ("EXCEEDS_REMAINING", "r3", None),
                ("NOT_FOUND", "r9", None),
                ("NOT_FOUND", "r9", None),
                ("NOT_PERMITTED", "r1", None),
                ("NOT_PERMITTED", "r9", None),
                ("REFUNDED", "r4", "0"),
            ]

    asyncio.run(go())


def test_refund_ids_belong_to_their_institution(redis_url):
    async def go():
        async with ledger(redis_url) as led:
            await led.open_account(
                A, balance_fen=10_000, per_payment_limit_fen=10_000, daily_limit_fen=10_000, actor="admin", now_ms=NOW
            )
            s1 = (await led.settle(sreq("o", 500, 500), dry_run=False)).settlement
            s2 = (await led.settle(sreq("o", 500, 500, inst=INST2), dry_run=False)).settlement
            a = await led.refund(rreq(s1.settlement_id, "R", 100))
            b = await led.refund(rreq(s2.settlement_id, "R", 200, inst=INST2))
            assert (a.outcome, b.outcome) == ("REFUNDED", "REFUNDED")
            assert (await conserved(led)).balance_fen == 9300

    asyncio.run(go())


def test_refund_gives_back_the_daily_room_only_on_the_day_of_the_settlement(redis_url):
    async def go():
        async with ledger(redis_url) as led:
            await led.open_account(
                A, balance_fen=100_000, per_payment_limit_fen=1000, daily_limit_fen=1000, actor="admin", now_ms=NOW
            )
            s = (await led.settle(sreq("a", 1000, 1000), dry_run=False)).settlement
            assert (await led.settle(sreq("b", 1, 1), dry_run=False)).outcome == "LIMIT_EXCEEDED"
            assert (await led.refund(rreq(s.settlement_id, "r1", 300))).outcome == "REFUNDED"
            assert (await led.get_account(A, NOW)).spent_today_fen == 700
            assert (await led.settle(sreq("b", 301, 301), dry_run=False)).outcome == "LIMIT_EXCEEDED"
            assert (await led.settle(sreq("b", 300, 300), dry_run=False)).outcome == "SETTLED"
            # the next day: spend some, then refund yesterday's settlement; today's room is unchanged
            t2 = NOW + DAY
            assert (await led.settle(sreq("c", 600, 600, now=t2), dry_run=False)).outcome == "SETTLED"
            assert (await led.refund(rreq(s.settlement_id, "r2", 700, now=t2))).outcome == "REFUNDED"
            assert (await led.get_account(A, t2)).spent_today_fen == 600
            assert (await led.get_account(A, NOW)).spent_today_fen == 1000  # yesterday, as it was
            acct = await conserved(led)
            assert (acct.balance_fen, acct.settled_total_fen, acct.refunded_total_fen) == (100_000 - 900, 1900, 1000)

    asyncio.run(go())


def test_refund_inputs_are_checked(redis_url):
    async def go():
        async with ledger(redis_url) as led:
            before = await dump(led.redis)
            sid = "44" + "0" * 30
            for req, field in [
                (rreq(sid, "r", 0), "amount_fen"),
                (rreq(sid, "r", -1), "amount_fen"),
                (rreq(sid, "r", MAX_FEN + 1), "amount_fen"),
                (rreq(sid, "r", True), "amount_fen"),
                (rreq("", "r", 1), "settlement_id"),
                (rreq("44" + "G" * 30, "r", 1), "settlement_id"),
                (rreq(sid, "", 1), "refund_id"),
                (rreq(sid, "r" * 65, 1), "refund_id"),
                (rreq(sid, "r", 1, inst="X44030000001"), "institution_code"),
                (rreq(sid, "r", 1, now=-5), "now_ms"),
            ]:
                with pytest.raises(ValueError, match=field):
                    await led.refund(req)
            with pytest.raises(ValueError, match="settlement_id"):
                await led.get_settlement("nope")
            assert await dump(led.redis) == before

    asyncio.run(go())
