"""Forwarding that survives peers, over real gRPC between real nodes:
round robin over a province's nodes with one of them gone, the circuit
breaker opening and closing, a forwarded call never forwarded again; and the
--peer option and the breaker on their own."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from fedkit import SETTLED, Calls, new_cid, until

from server import config
from server.breaker import Breaker
from server.local import Issuer, Node, Redis, free_port

GD_HOSPITAL, BJ_HOSPITAL = "H44030500001", "H11010500001"


def _metric(node: Node, name: str, **labels: str) -> float:
    with urllib.request.urlopen(node.metrics_url, timeout=5) as r:
        lines = r.read().decode().splitlines()
    total = 0.0
    for line in lines:
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Redis, Redis, Issuer]]:
    national = Redis(tmp_path / "national").start()
    regional = Redis(tmp_path / "regional", appendfsync="always").start()
    try:
        yield national, regional, Issuer.create(tmp_path)
    finally:
        regional.stop()
        national.stop()


def _node(tmp_path: Path, name: str, stores: tuple[Redis, Redis, Issuer], region: str, *extra: str,
          port: int | None = None) -> Node:  # fmt: skip
    national, regional, issuer = stores
    node = Node(tmp_path / name, national.url, issuer.trust_list_path, region=region,
                extra=("--regional-redis-url", regional.url, *extra))  # fmt: skip
    if port is not None:
        node.port = port
    return node


def test_round_robin_over_a_provinces_nodes_and_one_of_them_gone(tmp_path: Path, stores) -> None:  # type: ignore[no-untyped-def]
    issuer = stores[2]
    gd_a, gd_b = _node(tmp_path, "gd-a", stores, "44").start(), _node(tmp_path, "gd-b", stores, "44").start()
    bj = _node(tmp_path, "bj", stores, "11", "--peer", f"44=ipv4:{gd_a.target},{gd_b.target}").start()
    try:
        cid = new_cid()
        with Calls(bj) as c:
            c.open_account(cid, "440300", balance=100_000)
            token = c.token(issuer, cid, "440300", BJ_HOSPITAL)
            assert all(c.settle(token, BJ_HOSPITAL, f"rr-{i}", 100).outcome == SETTLED for i in range(20))
            served = [_metric(n, "grpc_server_handled_total", grpc_method="Settle", grpc_code="OK") for n in (gd_a, gd_b)]
            assert all(n > 0 for n in served), f"round robin: Settles served per node {served}"

            gd_a.stop()
            assert all(c.settle(token, BJ_HOSPITAL, f"one-left-{i}", 100).outcome == SETTLED for i in range(20))
            assert c.balance(cid, "440300") == 100_000 - 40 * 100
    finally:
        bj.stop()
        gd_b.stop()
        gd_a.stop()


def test_a_failing_province_is_cut_off_then_probed_back(tmp_path: Path, stores) -> None:  # type: ignore[no-untyped-def]
    issuer = stores[2]
    xj_port = free_port()  # nothing listens there yet
    gd = _node(tmp_path, "gd", stores, "44", "--peer", f"65=127.0.0.1:{xj_port}").start()
    xj = _node(tmp_path, "xj", stores, "65", port=xj_port)
    try:
        cid = new_cid()
        with Calls(gd) as c:
            token = c.token(issuer, cid, "650102", GD_HOSPITAL)
            messages = []
            for i in range(8):
                with pytest.raises(grpc.RpcError) as down:
                    c.settle(token, GD_HOSPITAL, f"cut-{i}", 100, timeout=3)
                assert down.value.code() == grpc.StatusCode.UNAVAILABLE
                messages.append(down.value.details())
            assert "cut off" not in messages[0]
            assert "cut off" in messages[-1], messages
            assert _metric(gd, "yibao_peer_circuit_open", peer="65") == 1.0
            started = time.monotonic()
            with pytest.raises(grpc.RpcError):
                c.settle(token, GD_HOSPITAL, "cut-fast", 100, timeout=3)
            assert time.monotonic() - started < 0.5, "an open circuit answers at once"

            xj.start()
            until(lambda: c.open_account(cid, "650102", balance=10_000), "OpenAccount forwarded to 65", 20, 0.25)
            assert until(lambda: c.settle(token, GD_HOSPITAL, "back", 100).outcome == SETTLED, "Settle at 65", 20, 0.25)
            assert _metric(gd, "yibao_peer_circuit_open", peer="65") == 0.0
    finally:
        gd.stop()
        xj.stop()


def test_a_forwarded_call_is_never_forwarded_again(tmp_path: Path, stores) -> None:  # type: ignore[no-untyped-def]
    issuer = stores[2]
    bj = _node(tmp_path, "bj", stores, "11").start()
    # Province 65's node knows the way to 11, but 44 was told (wrongly) that 65's node is 11's.
    xj = _node(tmp_path, "xj", stores, "65", "--peer", f"11={bj.target}").start()
    gd = _node(tmp_path, "gd", stores, "44", "--peer", f"11={xj.target}").start()
    try:
        cid = new_cid()
        with Calls(gd) as c:
            token = c.token(issuer, cid, "110105", GD_HOSPITAL)
            with pytest.raises(grpc.RpcError) as misrouted:
                c.settle(token, GD_HOSPITAL, "loop-1", 100)
        assert misrouted.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "forwarded by province 44" in misrouted.value.details()
        assert _metric(bj, "grpc_server_handled_total", grpc_method="Settle") == 0, "forwarded twice"
    finally:
        gd.stop()
        xj.stop()
        bj.stop()


def test_peer_option_takes_targets_and_refuses_ambiguity(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--insecure", "--region", "44"]
    cfg = config.parse([*base, "--peer", "11=dns:///yibao-11.example:50051", "--peer", "65=10.0.0.1:50051",
                        "--peer", "31=ipv4:10.0.0.2:50051,10.0.0.3:50051"])  # fmt: skip
    assert cfg.peers == {
        "11": "dns:///yibao-11.example:50051", "65": "10.0.0.1:50051", "31": "ipv4:10.0.0.2:50051,10.0.0.3:50051",
    }  # fmt: skip
    for bad, says in (
        (["--peer", "11=a:1", "--peer", "11=b:2"], "given twice"),
        (["--peer", "44=a:1"], "own province"),
        (["--peer", "11=no port"], "not HOST:PORT"),
        (["--peer", "99=a:1"], "not a province"),
    ):
        with pytest.raises(SystemExit):
            config.parse([*base, *bad])
        assert says in capsys.readouterr().err


def test_breaker_opens_after_failures_in_a_row_and_one_probe_closes_it() -> None:
    now = [0.0]
    b = Breaker(threshold=3, cooldown_s=5.0, clock=lambda: now[0])
    b.failed()
    b.failed()
    b.succeeded()  # a success in between: the count starts again
    b.failed()
    b.failed()
    assert b.admit() is None and not b.open
    b.failed()
    assert b.open and b.admit() == 5.0
    now[0] = 4.0
    assert b.admit() == pytest.approx(1.0)
    now[0] = 5.0
    assert b.admit() is None  # the probe
    assert b.admit() == 0.0  # only one probe at a time
    b.failed()  # the probe failed: another cool-down
    assert b.open and b.admit() == 5.0
    now[0] = 10.0
    assert b.admit() is None
    b.succeeded()
    assert not b.open and b.admit() is None
    now[0] = 16.0
    assert b.admit() is None
    b.abandoned()  # a cancelled call changes nothing
    assert not b.open
