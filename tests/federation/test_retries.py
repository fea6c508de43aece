"""Which forwarded calls are retried, and how, over real gRPC between real
nodes: a node that is up but not SERVING is left out by gRPC's client-side
health checking; Settle is retried where SetAccountStatus is not, a retried
Settle pays once, and retries stop at the caller's deadline. The peer's
failures are real: its regional store's only replica is paused (SIGSTOP), so
every write is made but not confirmed (WAIT times out) and answered
UNAVAILABLE."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from fedkit import SETTLED, Calls, new_cid, until
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from test_forwarding import BJ_HOSPITAL, _metric

from server.local import Issuer, Node, Redis, free_port
from yibao.v1 import admin_pb2, common_pb2


def test_a_node_not_serving_its_health_check_gets_no_calls(tmp_path: Path) -> None:
    national = Redis(tmp_path / "national").start()
    issuer = Issuer.create(tmp_path)
    # Up and listening, but NOT_SERVING (as a node draining for shutdown), and
    # without the Settlement service: a call sent there would fail UNIMPLEMENTED.
    draining = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, draining)
    draining_port = free_port()
    draining.add_insecure_port(f"127.0.0.1:{draining_port}")
    draining.start()
    nodes: list[Node] = []
    try:
        gd = Node(tmp_path / "gd", national.url, issuer.trust_list_path, region="44").start()
        nodes.append(gd)
        bj = Node(tmp_path / "bj", national.url, issuer.trust_list_path, region="11",
                  extra=("--peer", f"44=ipv4:127.0.0.1:{draining_port},{gd.target}")).start()  # fmt: skip
        nodes.append(bj)
        cid = new_cid()
        with Calls(bj) as c:
            until(lambda: c.open_account(cid, "440300", balance=10_000), "OpenAccount forwarded to 44", 10, 0.1)
            token = c.token(issuer, cid, "440300", BJ_HOSPITAL)
            assert all(c.settle(token, BJ_HOSPITAL, f"hc-{i}", 100).outcome == SETTLED for i in range(20))
            assert c.balance(cid, "440300") == 10_000 - 20 * 100
    finally:
        for node in nodes:
            node.stop()
        draining.stop(0)
        national.stop()


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[tuple[Redis, Redis]]:
    primary = Redis(tmp_path / "primary", appendfsync="always").start()
    replica = Redis(tmp_path / "replica", appendfsync="always", extra=("--replicaof", "127.0.0.1", str(primary.port)))
    replica.start()
    try:
        until(lambda: b"master_link_status:up" in replica.command("INFO", "replication"), "replica in step", 10, 0.1)
        yield primary, replica
    finally:
        replica.resume()
        replica.stop()
        primary.stop()


def test_only_idempotent_calls_are_retried_a_retry_pays_once_and_stops_at_the_deadline(
    tmp_path: Path, replicated: tuple[Redis, Redis]
) -> None:
    primary, replica = replicated
    issuer = Issuer.create(tmp_path)
    # One store for both nodes: the national one (shared token key) and the accounts of 44.
    gd = Node(tmp_path / "gd", primary.url, issuer.trust_list_path, region="44",
              extra=("--min-replicas", "1", "--replica-timeout-ms", "200")).start()  # fmt: skip
    bj = Node(tmp_path / "bj", primary.url, issuer.trust_list_path, region="11", extra=("--peer", f"44={gd.target}"))
    try:
        bj.start()
        cid = new_cid()
        with Calls(bj) as c:
            c.open_account(cid, "440300", balance=10_000)
            token = c.token(issuer, cid, "440300", BJ_HOSPITAL)
            assert c.settle(token, BJ_HOSPITAL, "in-step", 1_000).outcome == SETTLED

            replica.pause()
            with pytest.raises(grpc.RpcError) as unconfirmed:
                c.settle(token, BJ_HOSPITAL, "retried", 1_000, timeout=5)
            assert unconfirmed.value.code() == grpc.StatusCode.UNAVAILABLE, unconfirmed.value
            attempts = _metric(gd, "grpc_server_handled_total", grpc_method="Settle", grpc_code="UNAVAILABLE")
            assert attempts == 3, f"Settle is idempotent (order_id) and retried up to 3 attempts, saw {attempts}"
            assert c.balance(cid, "440300") == 8_000, "three attempts of one order paid once"

            with pytest.raises(grpc.RpcError) as status_change:
                c.admin.SetAccountStatus(admin_pb2.SetAccountStatusRequest(
                    credential_id=cid, status=common_pb2.ACCOUNT_STATUS_ACTIVE, insured_region="440300"), timeout=5)  # fmt: skip
            assert status_change.value.code() == grpc.StatusCode.UNAVAILABLE, status_change.value
            assert _metric(gd, "grpc_server_handled_total", grpc_method="SetAccountStatus") == 1, "retried"

            started_before = _metric(gd, "grpc_server_started_total", grpc_method="Settle")
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as late:
                c.settle(token, BJ_HOSPITAL, "short-deadline", 1_000, timeout=0.3)
            assert late.value.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE), late.value
            assert time.monotonic() - started < 0.3 + 0.5
            time.sleep(1.0)
            tried = _metric(gd, "grpc_server_started_total", grpc_method="Settle") - started_before
            assert 1 <= tried <= 2, f"attempts of a call with 0.3 s left (200 ms each): {tried}"

            replica.resume()
            until(lambda: b"master_link_status:up" in replica.command("INFO", "replication"), "replica back", 10, 0.1)
            # Retried by the HIS with the same order_ids: each settles exactly once.
            again = [c.settle(token, BJ_HOSPITAL, o, 1_000) for o in ("in-step", "retried", "short-deadline")]
            assert all(r.outcome == SETTLED for r in again), again
            assert len({r.settlement_id for r in again}) == 3
            assert c.balance(cid, "440300") == 10_000 - 3 * 1_000, "an order paid twice, or one lost"
    finally:
        replica.resume()
        bj.stop()
        gd.stop()
