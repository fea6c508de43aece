"""Durability: redis-server with AOF and appendfsync always, killed with
kill -9 while settles and refunds are in flight, restarted on the same
directory and port. Every call answered SETTLED / REFUNDED is there; nothing
is there that was neither answered nor in flight; money is conserved."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict

from ledgerkit import INST, INSURED, NOW, Redis, cid, ledger
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from server import audit
from server.ledger import RefundInput, SettleInput

ACCOUNTS = [cid(0x500 + i) for i in range(8)]
WORKERS = 48
KILL_AFTER = 400  # answered calls before the kill


def test_nothing_answered_is_lost_and_nothing_unasked_appears_after_kill_9(tmp_path):
    workdir = tmp_path / "aof"
    server = Redis(workdir, appendfsync="always").start()
    try:
        answered, in_flight, refunds_answered, refunds_in_flight = asyncio.run(_load_then_kill(server))
        assert server.proc.poll() is not None  # it really died
        server = Redis(workdir, port=server.port, appendfsync="always").start()
        asyncio.run(_check(server.url, answered, in_flight, refunds_answered, refunds_in_flight))
    finally:
        server.stop()


async def _load_then_kill(server: Redis):
    answered: dict[str, object] = {}  # order_id -> SettleResult (SETTLED)
    in_flight: set[str] = set()
    refunds_answered: dict[str, object] = {}  # refund_id -> RefundResult (REFUNDED)
    refunds_in_flight: set[str] = set()
    done = asyncio.Event()
    # No automatic retry: a call cut by the kill must fail, not be re-sent.
    async with ledger(server.url, socket_timeout=10, retry=Retry(NoBackoff(), 0)) as led:
        for a in ACCOUNTS:
            await led.open_account(
                a, balance_fen=10**12, per_payment_limit_fen=10**9, daily_limit_fen=10**12, actor="admin", now_ms=NOW
            )

        async def worker(w: int) -> None:
            rng = random.Random(w)
            i = 0
            while True:
                if answered and rng.random() < 0.25:
                    sid = rng.choice(list(answered.values())).settlement_id
                    rid = f"rf-{w}-{i}"
                    req = RefundInput(sid, rid, 1, INST, NOW + 1, INST)
                    try:
                        res = await led.refund(req)
                    except (RedisError, OSError):
                        refunds_in_flight.add(rid)
                        return
                    if res.outcome == "REFUNDED":
                        refunds_answered[rid] = res
                else:
                    order = f"w{w}-{i}"
                    req = SettleInput(
                        INST, order, rng.choice(ACCOUNTS), INSURED, 1000, rng.randrange(1, 1000), "", NOW, INST
                    )
                    try:
                        res = await led.settle(req, dry_run=False)
                    except (RedisError, OSError):
                        in_flight.add(order)
                        return
                    assert res.outcome == "SETTLED"
                    answered[order] = res
                i += 1
                if len(answered) + len(refunds_answered) >= KILL_AFTER and not done.is_set():
                    done.set()
                    server.kill()  # kill -9 while the other workers wait for their answers

        await asyncio.gather(*(worker(w) for w in range(WORKERS)))
    assert done.is_set()
    return answered, in_flight, refunds_answered, refunds_in_flight


async def _check(url, answered, in_flight, refunds_answered, refunds_in_flight):
    assert len(answered) >= KILL_AFTER // 2
    assert in_flight or refunds_in_flight, "the kill caught no call in flight"
    async with ledger(url) as led:
        r = led.redis
        # every answered settlement is there, exactly as answered
        for order, res in answered.items():
            got = await led.get_settlement(res.settlement_id)
            assert got is not None, f"answered SETTLED {order} lost"
            assert (got.order_id, got.account_pay_fen, got.balance_after_fen, got.settled_at_ms) == (
                order,
                res.account_pay_fen,
                res.balance_after_fen,
                res.settled_at_ms,
            )
        for rid, res in refunds_answered.items():
            got = await led.get_settlement(res.settlement_id)
            assert rid in {f.refund_id for f in got.refunds}, f"answered REFUNDED {rid} lost"

        # nothing that was not asked
        records = {}
        async for k in r.scan_iter(match="{r44}:setl:*", count=1000):
            s = await led.get_settlement(k.decode().rsplit(":", 1)[1])
            records[s.order_id] = s
        assert set(records) <= set(answered) | in_flight
        assert set(answered) <= set(records)
        refund_ids = {f.refund_id for s in records.values() for f in s.refunds}
        assert set(refunds_answered) <= refund_ids <= set(refunds_answered) | refunds_in_flight

        # money is conserved and the totals match the records
        by_account = defaultdict(list)
        for s in records.values():
            by_account[s.credential_id].append(s)
        for a in ACCOUNTS:
            acct = await led.get_account(a, NOW)
            assert acct.opening_balance_fen - acct.settled_total_fen + acct.refunded_total_fen == acct.balance_fen
            assert acct.settled_total_fen == sum(s.account_pay_fen for s in by_account[a])
            assert acct.refunded_total_fen == sum(s.refunded_fen for s in by_account[a])
            assert acct.spent_today_fen == acct.settled_total_fen - acct.refunded_total_fen  # all on one day

        # the audit log holds an entry for every settlement and refund that exists
        entries = []
        since = None
        while page := await audit.read(r, "44", since=since, count=1000):
            entries += page
            since = page[-1].id
        audited = {e.detail["settlement_id"] for e in entries if e.what == "Settle" and e.outcome == "SETTLED"}
        assert {s.settlement_id for s in records.values()} == audited
        audited_refunds = {e.detail["refund_id"] for e in entries if e.what == "Refund" and e.outcome == "REFUNDED"}
        assert audited_refunds == refund_ids

        # the calls cut by the kill can be retried: each pays at most once
        before = {a: await led.get_account(a, NOW) for a in ACCOUNTS}
        retried = 0
        for order in in_flight:
            # a retry carries the same content: take it from the record when there is one
            if order in records:
                s = records[order]
                res = await led.settle(
                    SettleInput(INST, order, s.credential_id, INSURED, s.total_fen, s.account_pay_fen, "", NOW, INST),
                    dry_run=False,
                )
                assert res.replayed and res.settlement_id == s.settlement_id
            else:
                res = await led.settle(
                    SettleInput(INST, order, ACCOUNTS[0], INSURED, 1000, 1, "", NOW, INST), dry_run=False
                )
                assert res.outcome == "SETTLED" and not res.replayed
                retried += 1
        after = {a: await led.get_account(a, NOW) for a in ACCOUNTS}
        assert sum(b.balance_fen - a.balance_fen for a, b in zip(after.values(), before.values())) == retried
        for acct in after.values():
            assert acct.opening_balance_fen - acct.settled_total_fen + acct.refunded_total_fen == acct.balance_fen
