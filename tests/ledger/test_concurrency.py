"""Many calls at once on a real Redis: no double payment, no overdraft, and
money conservation as a property over random interleavings of settles,
refunds, retries, conflicting retries and freezes."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from ledgerkit import INST, INST2, INSURED, NOW, cid, flush, ledger

from server import audit
from server.ledger import RefundInput, SettleInput, beijing_day

DAY = 86_400_000
N = 200


def sreq(order, credential, total, pay, *, inst=INST, now=NOW, digest=""):
    return SettleInput(
        institution_code=inst,
        order_id=order,
        credential_id=credential,
        insured_region=INSURED,
        total_fen=total,
        account_pay_fen=pay,
        items_digest=digest,
        now_ms=now,
        actor=inst,
    )


async def settlements(r) -> list[dict[str, str]]:
    out = []
    async for k in r.scan_iter(match="{r44}:setl:*", count=1000):
        h = await r.hgetall(k)
        out.append({a.decode(): b.decode() for a, b in h.items()})
    return out


async def refund_records(r) -> list[dict[str, str]]:
    out = []
    async for k in r.scan_iter(match="{r44}:refund:*", count=1000):
        h = await r.hgetall(k)
        out.append({a.decode(): b.decode() for a, b in h.items()})
    return out


@pytest.mark.parametrize("via_pipe", [True, False], ids=["pipelined", "redis-py"])
def test_200_concurrent_settles_of_one_order_pay_once(redis_url, via_pipe):
    async def go():
        async with ledger(redis_url, via_pipe=via_pipe) as led:
            a = cid(1)
            await led.open_account(
                a, balance_fen=10_000, per_payment_limit_fen=10_000, daily_limit_fen=10_000, actor="admin", now_ms=NOW
            )
            results = await asyncio.gather(*(led.settle(sreq("same", a, 900, 700), dry_run=False) for _ in range(N)))
            assert {r.outcome for r in results} == {"SETTLED"}
            assert len({r.settlement_id for r in results}) == 1
            assert sum(not r.replayed for r in results) == 1
            assert all(r == results[0] for r in results)
            acct = await led.get_account(a, NOW)
            assert (acct.balance_fen, acct.settled_total_fen, acct.spent_today_fen) == (9300, 700, 700)
            assert len(await settlements(led.redis)) == 1
            entries = await audit.read(led.redis, "44", count=1000)
            assert Counter(e.detail.get("replayed") for e in entries if e.what == "Settle") == {"0": 1, "1": N - 1}

            # and 200 concurrent retries of one refund credit once
            sid = results[0].settlement_id
            refunds = await asyncio.gather(
                *(led.refund(RefundInput(sid, "rf", 300, INST, NOW, INST)) for _ in range(N))
            )
            assert {r.outcome for r in refunds} == {"REFUNDED"} and all(r == refunds[0] for r in refunds)
            acct = await led.get_account(a, NOW)
            assert (acct.balance_fen, acct.refunded_total_fen, acct.spent_today_fen) == (9600, 300, 400)

    asyncio.run(go())


@pytest.mark.parametrize("via_pipe", [True, False], ids=["pipelined", "redis-py"])
def test_200_concurrent_orders_against_a_balance_for_exactly_50(redis_url, via_pipe):
    async def go():
        async with ledger(redis_url, via_pipe=via_pipe) as led:
            a = cid(2)
            pay = 37
            await led.open_account(
                a, balance_fen=50 * pay, per_payment_limit_fen=10**9, daily_limit_fen=10**9, actor="admin", now_ms=NOW
            )
            results = await asyncio.gather(*(led.settle(sreq(f"o{i}", a, 100, pay), dry_run=False) for i in range(N)))
            outcomes = Counter(r.outcome for r in results)
            assert outcomes == {"SETTLED": 50, "INSUFFICIENT_BALANCE": N - 50}
            settled = [r for r in results if r.outcome == "SETTLED"]
            # each saw the balance the one before it left: 49*pay, ..., pay, 0
            assert sorted(r.balance_after_fen for r in settled) == [i * pay for i in range(50)]
            assert len({r.settlement_id for r in settled}) == 50
            acct = await led.get_account(a, NOW)
            assert (acct.balance_fen, acct.settled_total_fen) == (0, 50 * pay)
            assert len(await settlements(led.redis)) == 50

            # 200 concurrent refunds with different ids of a settlement that has room for exactly 5
            sid = settled[0].settlement_id
            refunds = await asyncio.gather(
                *(led.refund(RefundInput(sid, f"r{i}", 7, INST, NOW, INST)) for i in range(N))
            )
            assert Counter(r.outcome for r in refunds) == {"REFUNDED": 5, "EXCEEDS_REMAINING": N - 5}
            assert sorted(r.remaining_fen for r in refunds if r.outcome == "REFUNDED") == [2, 9, 16, 23, 30]
            acct = await led.get_account(a, NOW)
            assert acct.balance_fen == 35 == acct.opening_balance_fen - acct.settled_total_fen + acct.refunded_total_fen

    asyncio.run(go())


# --------------------------------------------------------------------------
# Money conservation, as a property
# --------------------------------------------------------------------------

ACCOUNTS = [cid(0x100 + i) for i in range(3)]
GHOST = cid(0xDEAD)  # never opened
INSTS = (INST, INST2)
N_ORDERS = 8
N_REFUNDS = 8
GHOST_SID = "44" + "E" * 30

order_spec = st.tuples(
    st.integers(0, 3), st.integers(1, 2000), st.integers(0, 100)
)  # account (3: never opened), total, pay %
settle_op = st.tuples(
    st.just("settle"),
    st.integers(0, 1),  # institution
    st.integers(0, N_ORDERS - 1),  # order
    st.sampled_from(["same", "same", "same", "pay", "account", "digest"]),  # retry or conflicting retry
    st.integers(0, 1),  # day
    st.sampled_from([False, False, False, True]),  # PreSettle
)
refund_op = st.tuples(
    st.just("refund"),
    st.integers(0, 15),  # which settlement seen so far
    st.sampled_from(["own", "own", "own", "own", "other", "ghost"]),  # who asks, or an unknown settlement
    st.integers(0, N_REFUNDS - 1),  # refund id
    st.sampled_from(["same", "same", "other"]),  # amount as first drawn, or another
    st.integers(0, 1),  # day
)
status_op = st.tuples(st.just("status"), st.integers(0, 2), st.sampled_from([False, False, True]))
batches = st.lists(
    st.lists(st.one_of(settle_op, settle_op, settle_op, refund_op, refund_op, status_op), min_size=1, max_size=10),
    min_size=2,
    max_size=10,
)
accounts = st.lists(
    st.tuples(st.integers(0, 20_000), st.integers(300, 3000), st.integers(500, 8000)), min_size=3, max_size=3
)


# No shrinking: each example runs real Redis calls, and shrinking a failure
# could take Hypothesis' five minutes; the failing example is reported as found.
@settings(
    max_examples=200,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    accts=accounts,
    orders=st.lists(order_spec, min_size=N_ORDERS, max_size=N_ORDERS),
    refund_amounts=st.lists(st.integers(1, 800), min_size=N_REFUNDS, max_size=N_REFUNDS),
    plan=batches,
)
def test_money_is_conserved_under_concurrent_settles_and_refunds(redis_server, accts, orders, refund_amounts, plan):
    flush(redis_server.url)
    asyncio.run(_property(redis_server.url, accts, orders, refund_amounts, plan))


async def _property(url, accts, orders, refund_amounts, plan):
    async with ledger(url) as led:
        r = led.redis
        calls = 0
        for credential, (balance, per, daily) in zip(ACCOUNTS, accts, strict=True):
            await led.open_account(
                credential,
                balance_fen=balance,
                per_payment_limit_fen=per,
                daily_limit_fen=daily,
                actor="admin",
                now_ms=NOW,
            )
            calls += 1
        known: dict[tuple[int, int], str] = {}  # (institution, order) -> settlement id, once seen
        settle_results: list[tuple[tuple[str, str], object, bool]] = []
        refund_results: list[tuple[tuple[str, str], object]] = []

        def settle_call(op):
            _, inst_i, order_i, variant, day, dry = op
            acct_i, total, pct = orders[order_i]
            pay = total * pct // 100
            credential = (ACCOUNTS + [GHOST])[acct_i]
            digest = ""
            if variant == "pay":
                pay = pay - 1 if pay > 0 else pay + 1
            elif variant == "account":
                credential = (ACCOUNTS + [GHOST])[(acct_i + 1) % 4]
            elif variant == "digest":
                digest = "ab" * 32
            req = sreq(
                f"order-{order_i}", credential, total, pay, inst=INSTS[inst_i], now=NOW + day * DAY + 1, digest=digest
            )
            return (INSTS[inst_i], f"order-{order_i}"), led.settle(req, dry_run=dry), dry

        def refund_call(op):
            _, target, who, rid_i, amount_kind, day = op
            seen = list(known.items())
            if seen and who != "ghost":
                (inst_i, _), sid = seen[target % len(seen)]
            else:
                inst_i, sid = target % 2, GHOST_SID
            caller = INSTS[1 - inst_i] if who == "other" else INSTS[inst_i]
            amount = refund_amounts[rid_i] if amount_kind == "same" else refund_amounts[rid_i] // 2 + 1
            req = RefundInput(
                settlement_id=sid,
                refund_id=f"refund-{rid_i}",
                amount_fen=amount,
                institution_code=caller,
                now_ms=NOW + day * DAY + 2,
                actor=caller,
            )
            return (caller, f"refund-{rid_i}"), led.refund(req)

        for batch in plan:
            tasks, kinds = [], []
            for op in batch:
                if op[0] == "settle":
                    key, coro, dry = settle_call(op)
                    tasks.append(coro)
                    kinds.append(("settle", key, dry))
                    calls += 0 if dry else 1
                elif op[0] == "refund":
                    key, coro = refund_call(op)
                    tasks.append(coro)
                    kinds.append(("refund", key, False))
                    calls += 1
                else:
                    tasks.append(
                        led.set_status(ACCOUNTS[op[1]], "FROZEN" if op[2] else "ACTIVE", actor="admin", now_ms=NOW)
                    )
                    kinds.append(("status", None, False))
                    calls += 1
            for (kind, key, dry), res in zip(kinds, await asyncio.gather(*tasks), strict=True):
                if kind == "settle":
                    settle_results.append((key, res, dry))
                    if res.outcome == "SETTLED" and not dry:
                        known[(INSTS.index(key[0]), int(key[1].split("-")[1]))] = res.settlement_id
                elif kind == "refund":
                    refund_results.append((key, res))

        # --- the store ---
        setl = {s["settlement_id"]: s for s in await settlements(r)}
        refs = await refund_records(r)
        per_setl_refunds: dict[str, list[dict[str, str]]] = defaultdict(list)
        for f in refs:
            per_setl_refunds[f["settlement_id"]].append(f)

        # every account: conservation, no overdraft, totals match the records, daily spending exact
        for credential, (_, _, daily) in zip(ACCOUNTS, accts, strict=True):
            acct = await led.get_account(credential, NOW)
            assert acct.opening_balance_fen - acct.settled_total_fen + acct.refunded_total_fen == acct.balance_fen
            assert acct.balance_fen >= 0
            mine = [s for s in setl.values() if s["credential_id"] == credential]
            assert sum(int(s["account_pay_fen"]) for s in mine) == acct.settled_total_fen
            assert (
                sum(int(f["amount_fen"]) for f in refs if f["credential_id"] == credential) == acct.refunded_total_fen
            )
            for day in (0, 1):
                t = NOW + day * DAY
                spent = (await led.get_account(credential, t)).spent_today_fen
                want = sum(int(s["account_pay_fen"]) for s in mine if int(s["day"]) == beijing_day(t))
                want -= sum(
                    int(f["amount_fen"])
                    for s in mine
                    if int(s["day"]) == beijing_day(t)
                    for f in per_setl_refunds[s["settlement_id"]]
                    if beijing_day(int(f["refunded_at_ms"])) == beijing_day(t)
                )
                assert spent == want
                assert 0 <= spent <= daily
        assert not any(s["credential_id"] == GHOST for s in setl.values())

        # every settlement: refunds add up, never more than paid, remaining recorded right, in order
        for sid, s in setl.items():
            pay = int(s["account_pay_fen"])
            fs = per_setl_refunds[sid]
            assert sum(int(f["amount_fen"]) for f in fs) == int(s["refunded_fen"]) <= pay
            got = await led.get_settlement(sid)
            assert {f.refund_id for f in got.refunds} == {f["refund_id"] for f in fs}
            left = pay
            for f in got.refunds:
                left -= f.amount_fen
                assert f.remaining_fen == left
            assert int(s["total_fen"]) - pay == int(s["cash_pay_fen"])
            assert (await r.get(f"{{r44}}:order:{s['institution_code']}:{s['order_id']}")).decode() == sid

        # the answers agree with the store: one payment per order, retries return it unchanged
        firsts: dict[tuple[str, str], object] = {}
        paid_per_order: Counter = Counter()
        for key, res, dry in settle_results:
            if dry:
                assert res.settlement_id == "" and res.settled_at_ms == 0
                continue
            if res.outcome != "SETTLED":
                assert res.settlement_id == ""
                continue
            rec = setl[res.settlement_id]
            assert (rec["institution_code"], rec["order_id"]) == key
            assert (res.account_pay_fen, res.balance_after_fen) == (
                int(rec["account_pay_fen"]),
                int(rec["balance_after_fen"]),
            )
            if key in firsts:
                assert res == firsts[key] or res.settlement.refunded_fen != firsts[key].settlement.refunded_fen
                assert res.settlement_id == firsts[key].settlement_id
                assert res.balance_after_fen == firsts[key].balance_after_fen
            else:
                firsts[key] = res
            paid_per_order[key] += 0 if res.replayed else 1
        assert set(paid_per_order.values()) <= {1}
        assert len(setl) == len(firsts)

        first_refunds: dict[tuple[str, str], object] = {}
        credited: Counter = Counter()
        for key, res in refund_results:
            if res.outcome != "REFUNDED":
                assert res.amount_fen == 0 and res.refund is None
                continue
            if key in first_refunds:
                assert res == first_refunds[key]
            else:
                first_refunds[key] = res
            credited[key] += 0 if res.replayed else 1
        assert set(credited.values()) <= {1}
        assert len(refs) == len(first_refunds)

        for _, res, dry in settle_results:
            event(f"settle {'(dry) ' if dry else ''}{res.outcome}{' replayed' if res.replayed else ''}")
        for _, res in refund_results:
            event(f"refund {res.outcome}{' replayed' if res.replayed else ''}")

        # every call but PreSettle left exactly one audit entry
        assert await r.xlen(audit.audit_key("44")) == calls
