"""The ledger on a Redis Cluster (one redis-server in cluster mode holding
all 16384 slots, driven through redis.asyncio.RedisCluster): every script
runs, and every key of a province hashes to one slot."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time

import pytest
import redis
from ledgerkit import INST, INSURED, NOW, cid
from redis.asyncio.cluster import RedisCluster

from server import audit
from server.ledger import Ledger, RefundInput, SettleInput


def _low_free_port() -> int:
    # the cluster bus listens on port + 10000, so the port must be below 55536
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 55536:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
    for port in range(20000, 30000, 7):
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue
    pytest.fail("no free port below 55536")


@pytest.fixture
def cluster(tmp_path):
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server not on PATH", pytrace=False)
    port = _low_free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes", "--cluster-config-file",
         "nodes.conf", "--save", "", "--appendonly", "no", "--dir", str(tmp_path), "--logfile",
         str(tmp_path / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        client = redis.Redis(port=port, socket_timeout=1)
        added = False
        while True:
            assert proc.poll() is None, (tmp_path / "redis.log").read_text()
            try:
                if not added:
                    client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
                    added = True
                if b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO"):
                    break
            except redis.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the cluster did not come up"
            time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_ledger_runs_on_a_redis_cluster_in_one_slot(cluster):
    async def go():
        r = RedisCluster.from_url(cluster, max_connections=512)
        try:
            led = Ledger(r, "44")
            accounts = [cid(0xC0 + i) for i in range(4)]
            for a in accounts:
                await led.open_account(
                    a, balance_fen=1000, per_payment_limit_fen=1000, daily_limit_fen=10_000, actor="admin", now_ms=NOW
                )

            def req(i):
                return SettleInput(INST, f"o{i}", accounts[i % 4], INSURED, 100, 100, "", NOW, INST)

            results = await asyncio.gather(*(led.settle(req(i % 60), dry_run=False) for i in range(120)))
            # 60 orders (15 per account), each sent twice; 10 per account fit
            outcomes = [x.outcome for x in results]
            assert (outcomes.count("SETTLED"), outcomes.count("INSUFFICIENT_BALANCE")) == (80, 40)
            assert len({x.settlement_id for x in results if x.settlement_id}) == 40
            dry = await led.settle(req(999), dry_run=True)
            assert dry.outcome == "INSUFFICIENT_BALANCE"
            sid = results[0].settlement_id
            rf = await led.refund(RefundInput(sid, "r", 40, INST, NOW, INST))
            assert rf.outcome == "REFUNDED"
            got = await led.get_settlement(sid)
            assert got.refunds == (rf.refund,)
            frozen = await led.set_status(accounts[0], "FROZEN", actor="admin", now_ms=NOW)
            assert frozen.status == "FROZEN"
            await audit.append(r, "44", "admin", "Revoke", "REVOKED", {"credential_id": accounts[1]})
            entries = await audit.read(r, "44", count=1000)
            assert entries[-1].what == "Revoke"
            for a in accounts:
                acct = await led.get_account(a, NOW)
                assert acct.opening_balance_fen - acct.settled_total_fen + acct.refunded_total_fen == acct.balance_fen
                assert acct.balance_fen == (40 if a == accounts[0] else 0)
            keys = [k async for k in r.scan_iter(match="*", count=1000)]
            slots = {await r.cluster_keyslot(k) for k in keys}  # asked of the server
            # 4 accounts, 4 spent-by-day, 40 orders, 40 settlements, counter, audit, refund list, refund
            assert len(keys) == 4 + 4 + 40 + 40 + 4 and len(slots) == 1
        finally:
            await r.aclose()

    asyncio.run(go())
