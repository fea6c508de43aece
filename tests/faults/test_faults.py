"""Fault runs, bounded in time, on a real node over real gRPC: Redis made
slow by a delaying TCP proxy (the callers' deadlines hold, no call is left
stuck, nothing is paid twice), and the national Redis killed and restarted
under load (no revoked code accepted meanwhile, no server failure, back in
step after). A node killed mid-settlement and a province down and back are
in tests/settlement/test_settle_grpc_durability.py and tests/federation."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from server.local import Issuer, Node, Redis, free_port
from yibao.v1 import admin_pb2, admin_pb2_grpc, common_pb2, settlement_pb2, settlement_pb2_grpc, verifier_pb2, verifier_pb2_grpc

HOSPITAL = "H44030500001"
SERVER_FAILURES = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}


class DelayProxy:
    """A TCP proxy on loopback that holds every chunk, each way, for `delay`
    seconds (changeable while it runs): a slow network to Redis."""

    def __init__(self, upstream_port: int) -> None:
        self.port = free_port()
        self.delay = 0.0
        self._upstream = upstream_port
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self._thread.start()
        assert started.wait(10)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream)
            except OSError:
                writer.close()
                return
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        async def main() -> None:
            self._server = await asyncio.start_server(accept, "127.0.0.1", self.port)
            started.set()
            await self._server.serve_forever()

        try:
            self._loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass
        finally:
            # Every connection's task ends with the loop, none is left pending.
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        def cancel_all() -> None:
            for task in asyncio.all_tasks(self._loop):
                task.cancel()

        self._loop.call_soon_threadsafe(cancel_all)
        self._thread.join(5)


def _in_flight(node: Node) -> float:
    with urllib.request.urlopen(node.metrics_url, timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("yibao_in_flight_calls "):
                return float(line.split()[1])
    raise AssertionError("no yibao_in_flight_calls")


@pytest.fixture
def slow_stores(tmp_path: Path) -> Iterator[tuple[Node, DelayProxy, DelayProxy, Issuer]]:
    national = Redis(tmp_path / "national").start()
    regional = Redis(tmp_path / "regional", appendfsync="always").start()
    national_proxy, regional_proxy = DelayProxy(national.port), DelayProxy(regional.port)
    issuer = Issuer.create(tmp_path)
    node = Node(tmp_path / "node", national_proxy.url, issuer.trust_list_path,
                extra=("--regional-redis-url", regional_proxy.url)).start()  # fmt: skip
    try:
        yield node, national_proxy, regional_proxy, issuer
    finally:
        node.stop()
        national_proxy.close()
        regional_proxy.close()
        regional.stop()
        national.stop()


def _timed(call) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    try:
        result: object = call()
    except grpc.RpcError as e:
        result = e.code()
    return time.monotonic() - started, result


def test_slow_redis_deadlines_hold_and_nothing_is_stuck_or_paid_twice(slow_stores) -> None:  # type: ignore[no-untyped-def]
    node, national, regional, issuer = slow_stores
    cid = os.urandom(16).hex().upper()
    with node.channel() as ch:
        verifier = verifier_pb2_grpc.VerifierStub(ch)
        settlement = settlement_pb2_grpc.SettlementStub(ch)
        admin_pb2_grpc.AdminStub(ch).OpenAccount(admin_pb2.OpenAccountRequest(
            credential_id=cid, balance_fen=100_000, per_payment_limit_fen=100_000, daily_limit_fen=100_000,
            insured_region="440300"), timeout=10)  # fmt: skip
        token = verifier.Verify(verifier_pb2.VerifyRequest(code=issuer.issue(cid, "440300", 2), institution_code=HOSPITAL,
                                                           request_id="t"), timeout=10).ec_token  # fmt: skip

        def verify(i: int) -> object:
            code = issuer.issue(os.urandom(16).hex().upper(), "440300", 2)
            return verifier.Verify(verifier_pb2.VerifyRequest(code=code, institution_code=HOSPITAL,
                                                              request_id=f"slow-{i}"), timeout=1.0).outcome  # fmt: skip

        def settle(order: str, timeout: float = 1.0) -> object:
            return settlement.Settle(settlement_pb2.SettleRequest(
                ec_token=token, institution_code=HOSPITAL, order_id=order, total_fen=1_100, account_pay_fen=1_000),
                timeout=timeout)  # fmt: skip

        national.delay = regional.delay = 2.0
        with ThreadPoolExecutor(16) as pool:
            verifies = list(pool.map(lambda i: _timed(lambda: verify(i)), range(32)))
            settles = list(pool.map(lambda i: _timed(lambda: settle(f"slow-{i}")), range(16)))
        for took, result in verifies + settles:
            assert took < 1.5, f"a call with a 1 s deadline took {took:.2f} s"
            assert result not in SERVER_FAILURES, result
        assert all(r != settlement_pb2.SETTLE_OUTCOME_SETTLED for _, r in settles), "settled through a 2 s delay"

        national.delay = regional.delay = 0.0
        deadline = time.monotonic() + 15
        while _in_flight(node) > 0:
            assert time.monotonic() < deadline, "calls left stuck in the node"
            time.sleep(0.1)
        # The writes that reached Redis late may stand: every order again settles it exactly once.
        again = {}
        for i in range(16):
            order = f"slow-{i}"
            until = time.monotonic() + 15
            while True:
                try:
                    again[order] = settle(order, timeout=5)
                    break
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < until, e
                    time.sleep(0.2)
        assert all(r.outcome == settlement_pb2.SETTLE_OUTCOME_SETTLED for r in again.values())
        balance = admin_pb2_grpc.AdminStub(ch).GetAccount(admin_pb2.GetAccountRequest(credential_id=cid), timeout=10)
        assert balance.balance_fen == 100_000 - 16 * 1_000, "an order was paid twice, or lost"


def test_national_redis_killed_and_restarted_under_load(tmp_path: Path) -> None:
    national = Redis(tmp_path / "national", appendfsync="always").start()
    issuer = Issuer.create(tmp_path)
    node = Node(tmp_path / "node", national.url, issuer.trust_list_path).start()
    revoked = os.urandom(16).hex().upper()
    seen: list[object] = []
    stop = threading.Event()
    try:
        with node.channel() as ch:
            verifier = verifier_pb2_grpc.VerifierStub(ch)
            admin_pb2_grpc.AdminStub(ch).Revoke(admin_pb2.RevokeRequest(
                credential_id=revoked, reason=common_pb2.REVOCATION_REASON_LOST), timeout=10)  # fmt: skip

            def load(worker: int) -> None:
                i = 0
                while not stop.is_set() and i < 5_000:
                    i += 1
                    cid = revoked if i % 5 == 0 else os.urandom(16).hex().upper()
                    code = issuer.issue(cid, "440300", 2)
                    try:
                        outcome = verifier.Verify(verifier_pb2.VerifyRequest(
                            code=code, institution_code=HOSPITAL, request_id=f"{worker}-{i}"), timeout=2).outcome  # fmt: skip
                        seen.append((cid == revoked, outcome))
                    except grpc.RpcError as e:
                        seen.append((cid == revoked, e.code()))

            workers = [threading.Thread(target=load, args=(w,)) for w in range(4)]
            for w in workers:
                w.start()
            time.sleep(1.0)
            national.kill()
            time.sleep(2.0)
            national.start()
            time.sleep(2.0)
            stop.set()
            for w in workers:
                w.join(30)
            # Back in step: a fresh code is VALID again, through the national replay record.
            deadline = time.monotonic() + 15
            while True:
                code = issuer.issue(os.urandom(16).hex().upper(), "440300", 2)
                try:
                    if verifier.Verify(verifier_pb2.VerifyRequest(code=code, institution_code=HOSPITAL,
                                                                  request_id=f"after-{time.monotonic_ns()}"),
                                       timeout=5).outcome == verifier_pb2.OUTCOME_VALID:  # fmt: skip
                        break
                except grpc.RpcError:
                    pass
                assert time.monotonic() < deadline, "the node did not recover"
                time.sleep(0.2)
    finally:
        stop.set()
        node.stop()
        national.stop()
    assert len(seen) > 100, "the load did not run"
    assert not [r for is_revoked, r in seen if is_revoked and r == verifier_pb2.OUTCOME_VALID], "a revoked code was accepted"
    assert not [r for _, r in seen if r in SERVER_FAILURES], "server failures under the outage"
    assert {r for _, r in seen} <= {
        verifier_pb2.OUTCOME_VALID, verifier_pb2.OUTCOME_REVOKED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
    }, {r for _, r in seen}  # fmt: skip
