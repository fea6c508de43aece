"""Settle and PreSettle on a real Redis: every outcome, the order of the
checks, idempotency, ORDER_CONFLICT, PreSettle writing nothing, the daily
limit across Beijing midnight, input checks, accounts and audit."""

from __future__ import annotations

import asyncio
import re

import pytest
from ledgerkit import INST, INST2, INSURED, MIDNIGHT_MS, NOW, cid, dirty, dump, ledger

from server import audit
from server.ledger import (
    MAX_FEN,
    InvalidInput,
    Item,
    SettleInput,
    beijing_day,
)
from server.receipts import items_digest

A = cid(1)
B = cid(2)
NOBODY = cid(99)


def sreq(
    order: str,
    credential: str,
    total: int,
    pay: int,
    *,
    inst: str = INST,
    now: int = NOW,
    digest: str = "",
    items: tuple = (),
    insured: str = INSURED,
) -> SettleInput:
    return SettleInput(
        institution_code=inst,
        order_id=order,
        credential_id=credential,
        insured_region=insured,
        total_fen=total,
        account_pay_fen=pay,
        items_digest=digest,
        now_ms=now,
        actor=inst,
        items=items,
    )


async def opened(led, credential=A, balance=10_000, per=5_000, daily=8_000, now=NOW):
    created, acct = await led.open_account(
        credential,
        balance_fen=balance,
        per_payment_limit_fen=per,
        daily_limit_fen=daily,
        actor="admin:test",
        now_ms=now,
        insured_region=INSURED,
    )
    assert created
    return acct


def test_open_account_is_idempotent_and_never_resets(redis_url):
    async def go():
        async with ledger(redis_url) as led:
            acct = await opened(led)
            assert (acct.status, acct.balance_fen, acct.opening_balance_fen, acct.spent_today_fen) == (
                "ACTIVE",
                10_000,
                10_000,
                0,
            )
            assert (await led.settle(sreq("o1", A, 1000, 700), dry_run=False)).outcome == "SETTLED"
            created, again = await led.open_account(
                A.lower(),
                balance_fen=999_999,
                per_payment_limit_fen=1,
                daily_limit_fen=1,
                actor="admin:test",
                now_ms=NOW + 1,
            )
            assert created is False
            assert again.balance_fen == 9_300 and again.opening_balance_fen == 10_000
            assert (again.per_payment_limit_fen, again.daily_limit_fen) == (5_000, 8_000)
            assert again == await led.get_account(A, NOW + 1)
            assert again.spent_today_fen == 700
            assert await led.get_account(NOBODY, NOW) is None
            entries = await audit.read(led.redis, "44")
            assert [(e.what, e.outcome) for e in entries] == [
                ("OpenAccount", "CREATED"),
                ("Settle", "SETTLED"),
                ("OpenAccount", "EXISTS"),
            ]
            assert entries[0].who == "admin:test" and entries[0].when == NOW
            assert entries[0].detail["balance_fen"] == "10000"

    asyncio.run(go())


def test_settle_pays_once_and_a_retry_returns_the_first_settlement(redis_url):
    async def go():
        async with ledger(redis_url) as led:
            await opened(led)
            req = sreq("order-1", A, 3000, 2000)
            first = await led.settle(req, dry_run=False)
            assert first.outcome == "SETTLED" and not first.replayed
            assert re.fullmatch(r"44[0-9A-F]{30}", first.settlement_id)
            assert (first.account_pay_fen, first.cash_pay_fen, first.balance_after_fen) == (2000, 1000, 8000)
            assert (first.settled_at_ms, first.settled_region, first.order_id) == (NOW, "44", "order-1")
            s = first.settlement
            assert s is not None and s.total_fen == 3000 and s.credential_id == A and s.institution_code == INST
            # a retry, later, with lower-case credential id: the same settlement, unchanged
            retry = await led.settle(sreq("order-1", A.lower(), 3000, 2000, now=NOW + 60_000), dry_run=False)
            assert retry == first and retry.replayed
            acct = await led.get_account(A, NOW)
            assert (acct.balance_fen, acct.settled_total_fen, acct.spent_today_fen) == (8000, 2000, 2000)
            # the same order id at another institution is another order
            other = await led.settle(sreq("order-1", A, 3000, 2000, inst=INST2), dry_run=False)
            assert other.outcome == "SETTLED" and other.settlement_id != first.settlement_id
            assert other.balance_after_fen == 6000
            # settlement ids come from the province's counter
            assert int(other.settlement_id, 16) == int(first.settlement_id, 16) + 1
            got = await led.get_settlement(first.settlement_id.lower())
            assert got == first.settlement
            assert await led.get_settlement("44" + "F" * 30) is None
            assert await led.get_settlement("11" + first.settlement_id[2:]) is None
            # a zero account payment is a settlement too (all cash)
            cash = await led.settle(sreq("cash", A, 500, 0), dry_run=False)
            assert (cash.outcome, cash.account_pay_fen, cash.cash_pay_fen, cash.balance_after_fen) == (
                "SETTLED",
                0,
                500,
                6000,
            )
            entries = [(e.what, e.outcome, e.detail.get("replayed")) for e in await audit.read(led.redis, "44")]
            assert entries == [
                ("OpenAccount", "CREATED", None),
                ("Settle", "SETTLED", "0"),
                ("Settle", "SETTLED", "1"),
                ("Settle", "SETTLED", "0"),
                ("Settle", "SETTLED", "0"),
            ]

    asyncio.run(go())


@pytest.mark.parametrize("change", ["credential", "total", "pay", "items"])
def test_same_order_with_other_content_is_order_conflict(redis_url, change):
    async def go():
        async with ledger(redis_url) as led:
            await opened(led)
            await opened(led, B)
            items = (Item("X01", "阿莫西林胶囊", 2000, "盒", 1500, 3000),)
            first = await led.settle(sreq("o", A, 3000, 1000, items=items), dry_run=False)
            assert first.outcome == "SETTLED"
            assert first.settlement.items == items and first.settlement.items_digest == items_digest(items)
            other = {
                "credential": sreq("o", B, 3000, 1000, items=items),
                "total": sreq("o", A, 3001, 1000),
                "pay": sreq("o", A, 3000, 999, items=items),
                "items": sreq("o", A, 3000, 1000, items=(Item("X02", "n", 1000, "盒", 3000, 3000),)),
            }[change]
            before = await dump(led.redis)
            for dry in (True, False):
                res = await led.settle(other, dry_run=dry)
                assert res.outcome == "ORDER_CONFLICT"
                assert (res.settlement_id, res.account_pay_fen, res.balance_after_fen, res.settlement) == (
                    "",
                    0,
                    0,
                    None,
                )
            after = await dump(led.redis)
            # nothing but one audit entry changed
            audit_key = audit.audit_key("44")
            assert {k: v for k, v in after.items() if k != audit_key} == {
                k: v for k, v in before.items() if k != audit_key
            }
            assert len(after[audit_key][1]) == len(before[audit_key][1]) + 1
            assert (await led.get_account(A, NOW)).balance_fen == 9000
            assert (await led.get_account(B, NOW)).balance_fen == 10_000
            # the original still replays
            assert await led.settle(sreq("o", A, 3000, 1000, items=items), dry_run=False) == first
            # a digest given without items is part of the content like items are
            assert (await led.settle(sreq("o", A, 3000, 1000, digest=items_digest(items)), dry_run=False)) == first

    asyncio.run(go())


def test_refusals_in_order_and_a_refused_order_may_be_retried(redis_url):
    async def go():
        async with ledger(redis_url) as led:
            assert (await led.settle(sreq("o", NOBODY, 100, 100), dry_run=False)).outcome == "ACCOUNT_NOT_FOUND"
            await opened(led, balance=3000, per=2000, daily=2500)
            await led.set_status(A, "FROZEN", actor="admin:test", now_ms=NOW)
            # frozen comes before limits and balance
            res = await led.settle(sreq("o", A, 9000, 9000), dry_run=False)
            assert (res.outcome, res.balance_after_fen, res.settlement_id) == ("ACCOUNT_FROZEN", 3000, "")
            assert (await led.set_status(A, "ACTIVE", actor="admin:test", now_ms=NOW)).status == "ACTIVE"
            # per-payment limit comes before the balance
            res = await led.settle(sreq("o", A, 9000, 3001), dry_run=False)
            assert res.outcome == "LIMIT_EXCEEDED" and "单笔" in res.detail
            assert (await led.settle(sreq("o", A, 9000, 2001), dry_run=False)).outcome == "LIMIT_EXCEEDED"
            ok = await led.settle(sreq("o", A, 9000, 2000), dry_run=False)  # the refused order id, retried
            assert (ok.outcome, ok.balance_after_fen) == ("SETTLED", 1000)
            # daily: 2000 spent, 500 left today; 501 refused even though the balance covers it
            res = await led.settle(sreq("o2", A, 600, 501), dry_run=False)
            assert res.outcome == "LIMIT_EXCEEDED" and "单日" in res.detail and res.balance_after_fen == 1000
            # balance: an account with less than the payment, limits with room
            await led.open_account(
                B, balance_fen=100, per_payment_limit_fen=5000, daily_limit_fen=5000, actor="admin:test", now_ms=NOW
            )
            res = await led.settle(sreq("o3", B, 600, 101), dry_run=False)
            assert (res.outcome, res.balance_after_fen, res.account_pay_fen, res.cash_pay_fen) == (
                "INSUFFICIENT_BALANCE",
                100,
                0,
                0,
            )
            exact = await led.settle(sreq("o3", B, 600, 100), dry_run=False)
            assert (exact.outcome, exact.balance_after_fen) == ("SETTLED", 0)
            assert (await led.settle(sreq("o4", B, 1, 1), dry_run=False)).outcome == "INSUFFICIENT_BALANCE"
            assert (await led.set_status(NOBODY, "FROZEN", actor="admin:test", now_ms=NOW)) is None
            outcomes = [(e.what, e.outcome) for e in await audit.read(led.redis, "44")]
            assert outcomes == [
                ("Settle", "ACCOUNT_NOT_FOUND"),
                ("OpenAccount", "CREATED"),
                ("SetAccountStatus", "FROZEN"),
                ("Settle", "ACCOUNT_FROZEN"),
                ("SetAccountStatus", "ACTIVE"),
                ("Settle", "LIMIT_EXCEEDED"),
                ("Settle", "LIMIT_EXCEEDED"),
                ("Settle", "SETTLED"),
                ("Settle", "LIMIT_EXCEEDED"),
                ("OpenAccount", "CREATED"),
                ("Settle", "INSUFFICIENT_BALANCE"),
                ("Settle", "SETTLED"),
                ("Settle", "INSUFFICIENT_BALANCE"),
                ("SetAccountStatus", "NOT_FOUND"),
            ]
            # only SETTLED orders are remembered
            keys = sorted([k.decode() async for k in led.redis.scan_iter(match="{r44}:order:*")])
            assert keys == [f"{{r44}}:order:{INST}:o", f"{{r44}}:order:{INST}:o3"]

    asyncio.run(go())


def test_presettle_answers_like_settle_and_writes_nothing(redis_url):
    async def go():
        async with ledger(redis_url) as led:
            await opened(led, balance=3000, per=2000, daily=2400)
            await opened(led, B)
            await led.set_status(B, "FROZEN", actor="admin:test", now_ms=NOW)
            settled = await led.settle(sreq("done", A, 1000, 500), dry_run=False)
            cases = [
                (sreq("p1", A, 1500, 1200), "SETTLED"),
                (sreq("done", A, 1000, 500), "SETTLED"),  # already settled: what the retry returns
                (sreq("done", A, 1000, 499), "ORDER_CONFLICT"),
                (sreq("p2", NOBODY, 10, 10), "ACCOUNT_NOT_FOUND"),
                (sreq("p3", B, 10, 10), "ACCOUNT_FROZEN"),
                (sreq("p4", A, 5000, 2001), "LIMIT_EXCEEDED"),
                (sreq("p5", A, 5000, 2000, now=NOW), "LIMIT_EXCEEDED"),  # 500 + 2000 > 2400
            ]
            before, dirty_before = await dump(led.redis), await dirty(led.redis)
            answers = [await led.settle(req, dry_run=True) for req, _ in cases]
            assert [a.outcome for a in answers] == [want for _, want in cases]
            assert await dump(led.redis) == before
            assert await dirty(led.redis) == dirty_before, "PreSettle wrote to Redis"
            p1 = answers[0]
            assert (p1.account_pay_fen, p1.cash_pay_fen, p1.balance_after_fen) == (1200, 300, 1300)
            assert (p1.settlement_id, p1.settled_at_ms, p1.settlement) == ("", 0, None)
            done = answers[1]
            assert (done.settlement_id, done.account_pay_fen, done.balance_after_fen) == ("", 500, 2500)
            # ... and Settle then does what PreSettle said
            real = await led.settle(cases[0][0], dry_run=False)
            assert (real.outcome, real.account_pay_fen, real.cash_pay_fen, real.balance_after_fen) == (
                "SETTLED",
                1200,
                300,
                1300,
            )
            assert (await led.settle(cases[1][0], dry_run=False)) == settled
            # INSUFFICIENT_BALANCE, in a fresh day so the daily limit has room
            res = await led.settle(sreq("p6", A, 1400, 1301, now=NOW + 86_400_000), dry_run=True)
            assert res.outcome == "INSUFFICIENT_BALANCE"

    asyncio.run(go())


def test_daily_limit_follows_beijing_midnight(redis_url):
    before_midnight = MIDNIGHT_MS - 1  # 23:59:59.999 in Beijing, 15:59:59.999 UTC
    assert beijing_day(before_midnight) + 1 == beijing_day(MIDNIGHT_MS)

    async def go():
        async with ledger(redis_url) as led:
            await opened(led, balance=100_000, per=1000, daily=1500, now=before_midnight - 3_600_000)
            s1 = await led.settle(sreq("a", A, 1000, 1000, now=before_midnight - 3_600_000), dry_run=False)
            assert s1.outcome == "SETTLED"
            assert (
                await led.settle(sreq("b", A, 600, 600, now=before_midnight), dry_run=False)
            ).outcome == "LIMIT_EXCEEDED"
            assert (await led.settle(sreq("b", A, 500, 500, now=before_midnight), dry_run=False)).outcome == "SETTLED"
            assert (await led.get_account(A, before_midnight)).spent_today_fen == 1500
            assert (
                await led.settle(sreq("c", A, 1, 1, now=before_midnight), dry_run=False)
            ).outcome == "LIMIT_EXCEEDED"
            # one millisecond later it is a new day in Beijing (16:00 UTC)
            assert (await led.get_account(A, MIDNIGHT_MS)).spent_today_fen == 0
            assert (await led.settle(sreq("c", A, 1000, 1000, now=MIDNIGHT_MS), dry_run=False)).outcome == "SETTLED"
            assert (
                await led.settle(sreq("d", A, 501, 501, now=MIDNIGHT_MS + 1), dry_run=False)
            ).outcome == "LIMIT_EXCEEDED"
            assert (await led.settle(sreq("d", A, 500, 500, now=MIDNIGHT_MS + 1), dry_run=False)).outcome == "SETTLED"
            # a late request stamped just before midnight still counts against the old day
            assert (await led.get_account(A, before_midnight)).spent_today_fen == 1500
            assert (await led.get_account(A, MIDNIGHT_MS)).spent_today_fen == 1500
            acct = await led.get_account(A, MIDNIGHT_MS)
            assert acct.balance_fen == 100_000 - 3000 and acct.settled_total_fen == 3000
            # 16:00 UTC is midnight in Beijing but not in UTC: the day in UTC would still be the same
            assert MIDNIGHT_MS // 86_400_000 == before_midnight // 86_400_000

    asyncio.run(go())


def test_spent_days_are_pruned_but_yesterday_kept(redis_url):
    async def go():
        async with ledger(redis_url) as led:
            await opened(led, balance=100_000, per=1000, daily=1000)
            for i in range(5):
                assert (
                    await led.settle(sreq(f"d{i}", A, 100, 100, now=NOW + i * 86_400_000), dry_run=False)
                ).outcome == "SETTLED"
            days = sorted(int(d) for d in await led.redis.hkeys(audit.spent_key("44", A)))
            assert days == [beijing_day(NOW) + 3, beijing_day(NOW) + 4]
            assert (await led.get_account(A, NOW + 3 * 86_400_000)).spent_today_fen == 100

    asyncio.run(go())


def test_inputs_are_checked_before_anything_is_sent(redis_url):
    async def go():
        async with ledger(redis_url) as led:
            await opened(led)
            bad = [
                (sreq("o", A, 0, 0), "total_fen"),
                (sreq("o", A, -5, 0), "total_fen"),
                (sreq("o", A, 100, -1), "account_pay_fen"),
                (sreq("o", A, 100, 101), "account_pay_fen"),
                (sreq("o", A, MAX_FEN + 1, 0), "total_fen"),
                (sreq("o", A, MAX_FEN, MAX_FEN + 1), "account_pay_fen"),
                (sreq("o", A, 100, True), "account_pay_fen"),
                (sreq("o", A, 100.0, 10), "total_fen"),
                (sreq("", A, 100, 10), "order_id"),
                (sreq("x" * 65, A, 100, 10), "order_id"),
                (sreq("o", "", 100, 10), "credential_id"),
                (sreq("o", "Z" * 32, 100, 10), "credential_id"),
                (sreq("o", A, 100, 10, inst=""), "institution_code"),
                (sreq("o", A, 100, 10, inst="H4403000000"), "institution_code"),
                (sreq("o", A, 100, 10, insured="110100"), "insured_region"),
                (sreq("o", A, 100, 10, insured=""), "insured_region"),
                (sreq("o", A, 100, 10, digest="ab"), "items_digest"),
                (sreq("o", A, 100, 10, now=-1), "now_ms"),
                (sreq("o", A, 100, 10, items=(Item("a", "b", 1, "c", 50, 50),)), "items"),
                (sreq("o", A, 50, 10, items=(Item("a", "b", 1, "c", 50, 50),), digest="0" * 64), "items_digest"),
                (sreq("o", A, 50, 10, items=(Item("a", "b", 1, "c", 50, -50),)), "amount_fen"),
            ]
            before = await dump(led.redis)
            for req, field in bad:
                for dry in (True, False):
                    with pytest.raises(InvalidInput, match=field) as exc:
                        await led.settle(req, dry_run=dry)
                    assert isinstance(exc.value, ValueError) and exc.value.field.endswith(field)
            with pytest.raises(ValueError, match="balance_fen"):
                await led.open_account(
                    B, balance_fen=MAX_FEN + 1, per_payment_limit_fen=1, daily_limit_fen=1, actor="a", now_ms=NOW
                )
            with pytest.raises(ValueError, match="per_payment_limit_fen"):
                await led.open_account(
                    B, balance_fen=1, per_payment_limit_fen=0, daily_limit_fen=1, actor="a", now_ms=NOW
                )
            with pytest.raises(ValueError, match="daily_limit_fen"):
                await led.open_account(
                    B, balance_fen=1, per_payment_limit_fen=1, daily_limit_fen=MAX_FEN + 1, actor="a", now_ms=NOW
                )
            with pytest.raises(ValueError, match="status"):
                await led.set_status(A, "CLOSED", actor="a", now_ms=NOW)
            with pytest.raises(ValueError, match="actor"):
                await led.set_status(A, "FROZEN", actor="", now_ms=NOW)
            assert await dump(led.redis) == before
            # the largest amounts are exact
            await led.open_account(
                B, balance_fen=MAX_FEN, per_payment_limit_fen=MAX_FEN, daily_limit_fen=MAX_FEN, actor="a", now_ms=NOW
            )
            big = await led.settle(sreq("big", B, MAX_FEN, MAX_FEN - 1), dry_run=False)
            assert (big.outcome, big.balance_after_fen, big.cash_pay_fen) == ("SETTLED", 1, 1)
            acct = await led.get_account(B, NOW)
            assert (acct.settled_total_fen, acct.spent_today_fen, acct.balance_fen) == (MAX_FEN - 1, MAX_FEN - 1, 1)
            assert (await led.settle(sreq("big2", B, 2, 2), dry_run=False)).outcome == "LIMIT_EXCEEDED"

    asyncio.run(go())


def test_ledger_refuses_a_region_that_is_not_a_province(redis_url):
    async def go():
        async with ledger(redis_url, region="44") as led:
            with pytest.raises(ValueError, match="region"):
                type(led)(led.redis, "99")

    asyncio.run(go())


def test_audit_read_pages_and_append(redis_url):
    async def go():
        async with ledger(redis_url) as led:
            r = led.redis
            for i in range(5):
                await audit.append(
                    r, "44", "admin:x", "Revoke", "REVOKED", {"credential_id": cid(i), "reason": "LOST"}, now_ms=NOW + i
                )
            first = await audit.read(r, "44", count=2)
            assert [e.detail["credential_id"] for e in first] == [cid(0), cid(1)]
            rest = await audit.read(r, "44", since=first[-1].id, count=100)
            assert [e.when for e in rest] == [NOW + 2, NOW + 3, NOW + 4]
            last = await audit.read(r, "44", count=2, latest=True)
            assert [e.when for e in last] == [NOW + 3, NOW + 4]
            assert await audit.read(r, "11") == []
            with pytest.raises(ValueError, match="reserved"):
                await audit.append(r, "44", "a", "b", "c", {"who": "x"})
            e = (await audit.read(r, "44"))[0]
            assert (e.who, e.what, e.outcome, e.detail) == (
                "admin:x",
                "Revoke",
                "REVOKED",
                {"credential_id": cid(0), "reason": "LOST"},
            )

    asyncio.run(go())
