"""Durability over gRPC: a stream of concurrent Settles (and some Refunds)
while the regional Redis (AOF, appendfsync always) is killed with kill -9
and restarted on the same directory and port, or while the node itself is
killed -9 and started again.

What must hold (api.md "Rules", "Where state lives"):
- every order a client was told SETTLED is in the ledger afterwards, with
  the same amounts;
- no settlement exists that no client was told about, except for orders
  whose call failed (UNAVAILABLE or deadline); retrying those after
  recovery yields exactly one settlement per order;
- during the Redis outage Settle answers UNAVAILABLE, never SETTLED, and
  records nothing;
- opening balance - settled + refunded = balance.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import grpc
import pytest
import settlekit as sk
from yibao.v1 import settlement_pb2, settlement_pb2_grpc

from server.local import Redis

ORDERS = 400
IN_FLIGHT = 20
FAULT_AFTER = 120  # orders answered before the fault
OUTAGE_S = 1.5
ATTEMPT_TIMEOUT_S = 3.0
MAX_ATTEMPTS = 40
RETRY_SLEEP_S = 0.1
LOAD_BUDGET_S = 90.0
OPEN = 10**9
FAILED_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


@dataclass
class Attempt:
    start: float
    end: float
    code: grpc.StatusCode | None  # None: answered
    response: object = None


@dataclass
class Order:
    order_id: str
    total: int
    pay: int
    attempts: list[Attempt] = field(default_factory=list)
    settled: settlement_pb2.SettleResponse | None = None
    refund_id: str | None = None
    refund_attempts: list[Attempt] = field(default_factory=list)
    refunded: settlement_pb2.RefundResponse | None = None


@dataclass
class Fault:
    killed_at: float = 0.0
    restart_at: float = 0.0
    up_at: float = 0.0
    probes: list[tuple[str, grpc.StatusCode | str]] = field(default_factory=list)


def _orders(prefix: str) -> list[Order]:
    out = []
    for i in range(ORDERS):
        o = Order(f"{prefix}-{i:04d}-{sk.new_id('d')}", total=10_000 + i, pay=100 + i)
        if i % 10 == 3:
            o.refund_id = f"rf-{o.order_id}"[:64]
        out.append(o)
    return out


async def _call(fn, req) -> Attempt:
    t0 = time.monotonic()
    try:
        resp = await fn(req, timeout=ATTEMPT_TIMEOUT_S)
    except grpc.aio.AioRpcError as e:
        return Attempt(t0, time.monotonic(), e.code(), e.details())
    return Attempt(t0, time.monotonic(), None, resp)


async def _load(target: str, inst: str, token: str, orders: list[Order], fault, deadline: float) -> None:
    queue: asyncio.Queue[Order] = asyncio.Queue()
    for o in orders:
        queue.put_nowait(o)
    answered = 0
    fault_started = asyncio.Event()

    async with grpc.aio.insecure_channel(target, options=sk.FAST_RECONNECT) as ch:
        stub = settlement_pb2_grpc.SettlementStub(ch)

        async def worker() -> None:
            nonlocal answered
            while not queue.empty() and time.monotonic() < deadline:
                o = queue.get_nowait()
                req = sk.settle_request(token, inst, o.order_id, o.total, o.pay)
                while len(o.attempts) < MAX_ATTEMPTS and time.monotonic() < deadline:
                    a = await _call(stub.Settle, req)
                    o.attempts.append(a)
                    if a.code is None:
                        if a.response.outcome == sk.SETTLED:
                            o.settled = a.response
                        break  # any other answer is checked later
                    if a.code not in FAILED_CODES:
                        break
                    await asyncio.sleep(RETRY_SLEEP_S)
                if o.settled is not None and o.refund_id:
                    rreq = settlement_pb2.RefundRequest(
                        settlement_id=o.settled.settlement_id, refund_id=o.refund_id, amount_fen=7,
                        institution_code=inst,
                    )
                    while len(o.refund_attempts) < MAX_ATTEMPTS and time.monotonic() < deadline:
                        a = await _call(stub.Refund, rreq)
                        o.refund_attempts.append(a)
                        if a.code is None:
                            if a.response.outcome == sk.REFUNDED:
                                o.refunded = a.response
                            break
                        if a.code not in FAILED_CODES:
                            break
                        await asyncio.sleep(RETRY_SLEEP_S)
                answered += 1
                if answered >= FAULT_AFTER:
                    fault_started.set()

        async def trigger() -> None:
            await asyncio.wait_for(fault_started.wait(), timeout=max(1.0, deadline - time.monotonic()))
            await fault(stub)

        await asyncio.gather(trigger(), *(worker() for _ in range(IN_FLIGHT)))


def _recover_and_check(
    target: str, inst: str, cid: str, token: str, orders: list[Order], fault: Fault, *, redis_outage: bool
) -> None:
    s = sk.Stubs.connect(target)
    try:
        _check(s, inst, cid, token, orders, fault, redis_outage=redis_outage)
    finally:
        s.close()


def _retry(fn, *args, attempts: int = 40, **kwargs):
    last = None
    for _ in range(attempts):
        try:
            return fn(*args, **kwargs)
        except grpc.RpcError as e:
            assert e.code() in FAILED_CODES, (e.code(), e.details())
            last = e
            time.sleep(0.25)
    raise AssertionError(f"still failing after {attempts} tries: {last.code()} {last.details()}")


def _audited(s: sk.Stubs) -> dict[str, str]:
    """settlement_id -> order_id of every SETTLED entry of Guangdong's audit log."""
    out: dict[str, str] = {}
    since = ""
    for _ in range(20):
        page = _retry(s.audit, since=since, count=10_000, region=sk.GD)
        for e in page.entries:
            sid = e.detail.get("settlement_id")
            if e.outcome == "SETTLED" and sid:
                assert out.get(sid, e.detail.get("order_id")) == e.detail.get("order_id"), (sid, e)
                out[sid] = e.detail.get("order_id", "")
        if len(page.entries) < 10_000:
            break
        since = page.entries[-1].id
    return out


def _check(s: sk.Stubs, inst: str, cid: str, token: str, orders: list[Order], fault: Fault, *, redis_outage: bool) -> None:
    codes: dict[str, int] = {}
    for o in orders:
        for a in o.attempts + o.refund_attempts:
            k = a.code.name if a.code else "answered"
            codes[k] = codes.get(k, 0) + 1
    print(
        f"load: {sum(o.settled is not None for o in orders)}/{len(orders)} settled during the load, "
        f"attempts by result {codes}, probes {fault.probes}, outage {fault.restart_at - fault.killed_at:.2f} s, "
        f"back after {fault.up_at - fault.killed_at:.2f} s"
    )
    # 1. every answer was SETTLED / REFUNDED or a failure that says "retry"
    odd = [
        (o.order_id, a.code, a.response if a.code else sk.outcome_name(settlement_pb2.SettleOutcome, a.response.outcome))
        for o in orders
        for a in o.attempts + o.refund_attempts
        if (a.code is not None and a.code not in FAILED_CODES)
        or (a.code is None and a.response.outcome not in (sk.SETTLED, sk.REFUNDED))
    ]
    assert not odd, f"answers other than SETTLED/REFUNDED/UNAVAILABLE/DEADLINE_EXCEEDED: {odd[:5]}"
    assert fault.killed_at and fault.up_at, "the fault never happened"
    failed_calls = [a for o in orders for a in o.attempts if a.code is not None]
    assert failed_calls, "no call failed: the fault did not hit the load"

    # 2. during the outage, Settle said UNAVAILABLE (never SETTLED)
    if redis_outage:
        assert fault.probes, "no probe was sent during the outage"
        assert all(code == grpc.StatusCode.UNAVAILABLE for _, code in fault.probes), fault.probes
        inside = [
            a for o in orders for a in o.attempts if a.start > fault.killed_at + 0.05 and a.end < fault.restart_at
        ]
        assert inside, "no load call fell inside the outage"
        bad = [(a.code, a.response if a.code is None else "") for a in inside if a.code != grpc.StatusCode.UNAVAILABLE]
        assert not bad, f"{len(bad)} of {len(inside)} Settles during the outage were not UNAVAILABLE: {bad[:3]}"

    # 3. what clients were told SETTLED is in the ledger, unchanged
    for o in orders:
        if o.settled is None:
            continue
        g = _retry(s.get, o.settled.settlement_id)
        assert g.found, f"order {o.order_id} was answered SETTLED ({o.settled.settlement_id}) but is not in the ledger"
        rec = g.settlement
        assert (rec.order_id, rec.total_fen, rec.account_pay_fen, rec.cash_pay_fen) == (
            o.order_id, o.total, o.pay, o.total - o.pay), rec
        assert rec.balance_after_fen == o.settled.balance_after_fen
        assert rec.receipt == o.settled.receipt
        if o.refunded is not None:
            assert [r.refund_id for r in g.refunds] == [o.refund_id]
            assert g.refunds[0].receipt == o.refunded.receipt

    # 3b. before any retry: every settlement in the ledger's audit log was
    # told to a client, or belongs to an order one of whose calls failed;
    # none belongs to a probe sent during the outage
    by_order = {o.order_id: o for o in orders}
    probe_ids = {oid for oid, _ in fault.probes}
    for sid, order_id in _audited(s).items():
        assert order_id not in probe_ids, f"a Settle sent during the outage was recorded: {order_id} -> {sid}"
        o = by_order.get(order_id)
        assert o is not None, f"settlement {sid} of an order nobody sent: {order_id}"
        if o.settled is not None:
            assert sid == o.settled.settlement_id, f"order {order_id} has settlements {sid} and {o.settled.settlement_id}"
        else:
            assert any(a.code in FAILED_CODES for a in o.attempts), f"{sid} of {order_id} was never told to anyone"

    # 4. orders whose calls all failed: retried now, one settlement each
    for o in orders:
        first = _retry(s.settle, token, inst, o.order_id, o.total, o.pay)
        assert first.outcome == sk.SETTLED, (o.order_id, first)
        if o.settled is not None:
            assert first == o.settled, f"order {o.order_id}: the retry is not the settlement the client was told"
        again = _retry(s.settle, token, inst, o.order_id, o.total, o.pay)
        assert again == first
        o.settled = first
        if o.refund_id:
            r = _retry(s.refund, first.settlement_id, o.refund_id, 7, inst)
            assert r.outcome == sk.REFUNDED, r
            if o.refunded is not None:
                assert r == o.refunded
            o.refunded = r
    ids = [o.settled.settlement_id for o in orders]
    assert len(set(ids)) == ORDERS, "two orders share a settlement"

    # 5. the probes sent during the outage recorded nothing under their ids
    for order_id, _ in fault.probes:
        p = _retry(s.settle, token, inst, order_id, 555, 5)  # other content than the probe's
        assert p.outcome == sk.SETTLED, (order_id, p)
        ids.append(p.settlement_id)

    # 6. the audit log knows exactly these settlements
    audited = set(_audited(s))
    assert audited == set(ids), (
        f"settlements nobody was told about: {sorted(audited - set(ids))[:5]}; "
        f"told but not audited: {sorted(set(ids) - audited)[:5]}"
    )

    # 7. money: opening - settled + refunded = balance
    settled_total = refunded_total = 0
    for sid in ids:
        g = _retry(s.get, sid)
        assert g.found
        settled_total += g.settlement.account_pay_fen
        refunded_total += g.settlement.refunded_fen
        assert g.settlement.refunded_fen == sum(r.amount_fen for r in g.refunds)
    assert refunded_total == 7 * sum(1 for o in orders if o.refund_id)
    acct = _retry(s.account, cid, insured_region=sk.GD_REGION6)
    assert acct.balance_fen == OPEN - settled_total + refunded_total, (acct.balance_fen, settled_total, refunded_total)


@pytest.fixture
def durable(workdir, node_starter, national, code_issuer):
    """A Guangdong node on a regional Redis of its own, AOF fsync always."""
    regional = Redis(workdir / "regional-aof", appendfsync="always").start()
    node = node_starter(sk.GD, regional.url)
    s = sk.Stubs.connect(node.target)
    cid = sk.new_cid()
    s.open_account(cid, OPEN, OPEN, OPEN)
    try:
        yield regional, node, cid
    finally:
        s.close()
        regional.stop()


def _token(target: str, issuer, cid: str, inst: str) -> str:
    s = sk.Stubs.connect(target)
    try:
        return s.token(issuer, cid, inst).ec_token
    finally:
        s.close()


def _kill_redis(regional: Redis, fault: Fault, inst: str, token: str):
    async def kill(stub) -> None:
        await asyncio.to_thread(regional.kill)
        fault.killed_at = time.monotonic()
        await asyncio.sleep(0.3)
        for i in range(3):  # fresh orders, sent while Redis is down
            oid = sk.new_id(f"probe{i}")
            a = await _call(stub.Settle, sk.settle_request(token, inst, oid, 1_000, 100))
            got = a.code if a.code else sk.outcome_name(settlement_pb2.SettleOutcome, a.response.outcome)
            fault.probes.append((oid, got))
        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - fault.killed_at)))
        fault.restart_at = time.monotonic()
        await asyncio.to_thread(regional.start)
        fault.up_at = time.monotonic()

    return kill


def _run(target: str, inst: str, cid: str, token: str, prefix: str, fault_fn, fault: Fault, *, redis_outage: bool):
    orders = _orders(prefix)
    deadline = time.monotonic() + LOAD_BUDGET_S
    asyncio.run(asyncio.wait_for(_load(target, inst, token, orders, fault_fn, deadline), LOAD_BUDGET_S + 10))
    _recover_and_check(target, inst, cid, token, orders, fault, redis_outage=redis_outage)


def test_regional_redis_kill_9_mid_load(durable, code_issuer):
    regional, node, cid = durable
    token = _token(node.target, code_issuer, cid, sk.GD_INST)
    fault = Fault()
    _run(node.target, sk.GD_INST, cid, token, "rk", _kill_redis(regional, fault, sk.GD_INST, token), fault,
         redis_outage=True)


def test_regional_redis_kill_9_mid_load_forwarded(durable, code_issuer, node_starter, cluster):
    """The same through a Beijing node forwarding to the Guangdong node whose
    store dies: the peer's UNAVAILABLE comes back as UNAVAILABLE."""
    regional, node, cid = durable
    beijing = node_starter(sk.BJ, cluster.bj.regional.url, peers={sk.GD: node.port})
    token = _token(beijing.target, code_issuer, cid, sk.BJ_INST)
    fault = Fault()
    _run(beijing.target, sk.BJ_INST, cid, token, "rkf", _kill_redis(regional, fault, sk.BJ_INST, token), fault,
         redis_outage=True)


def test_node_kill_9_mid_load(durable, code_issuer):
    _regional, node, cid = durable
    token = _token(node.target, code_issuer, cid, sk.GD_INST)
    fault = Fault()

    async def kill_node(stub) -> None:
        node.proc.kill()
        await asyncio.to_thread(node.proc.wait, 10)
        fault.killed_at = time.monotonic()
        await asyncio.sleep(0.5)
        fault.restart_at = time.monotonic()
        await asyncio.to_thread(node.start)
        fault.up_at = time.monotonic()

    _run(node.target, sk.GD_INST, cid, token, "nk", kill_node, fault, redis_outage=False)
