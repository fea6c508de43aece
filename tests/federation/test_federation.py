"""Three provinces (11, 44, 65) on loopback, each with its own regional
store, sharing one national Redis Cluster with replicas (server/federation.py,
as scripts/federation starts it): 异地就医 both ways, a revocation enforced
everywhere within a second, a province's node stopped and started again
without anything lost or paid twice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from fedkit import SETTLED, Calls, new_cid, until

from server.federation import SAMPLE_HOSPITAL as HOSPITAL
from server.federation import SAMPLE_REGION6 as REGION6
from server.federation import Federation
from yibao.v1 import verifier_pb2


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    federation = Federation(tmp_path_factory.mktemp("federation"))
    try:
        yield federation.start()
    finally:
        federation.stop()


def test_cross_province_settlements_both_ways(fed: Federation) -> None:
    assert fed.issuer is not None
    for home, here in (("44", "11"), ("11", "44"), ("65", "44"), ("44", "65")):
        cid = new_cid()
        with Calls(fed.nodes[here]) as c:
            c.open_account(cid, REGION6[home], balance=10_000)
            token = c.token(fed.issuer, cid, REGION6[home], HOSPITAL[here])
            settled = c.settle(token, HOSPITAL[here], f"both-{home}-{here}", 2_500)
            assert settled.outcome == SETTLED, (home, here, settled)
            assert settled.settled_region == home, "paid where the person is insured"
        # The account lives at home, and only there.
        with Calls(fed.nodes[home]) as c:
            assert c.balance(cid, "") == 7_500


def test_a_revocation_at_one_node_is_enforced_at_the_others_within_a_second(fed: Federation) -> None:
    assert fed.issuer is not None
    cid = new_cid()
    with Calls(fed.nodes["11"]) as c:
        c.revoke(cid)
    revoked_at = time.monotonic()
    for p in ("44", "65"):
        with Calls(fed.nodes[p]) as c:
            until(
                lambda c=c, p=p: c.verify(fed.issuer.issue(cid, REGION6[p], 2), HOSPITAL[p]).outcome  # type: ignore[union-attr]
                == verifier_pb2.OUTCOME_REVOKED,
                f"revocation at 11 enforced at {p}", 5,
            )  # fmt: skip
    assert time.monotonic() - revoked_at < 1.0, "a revocation took over a second to reach every node"


def test_a_province_down_fails_fast_for_its_people_only_and_comes_back_whole(fed: Federation) -> None:
    assert fed.issuer is not None
    xj, gd, bj = new_cid(), new_cid(), new_cid()
    with Calls(fed.nodes["44"]) as c44, Calls(fed.nodes["11"]) as c11:
        c44.open_account(xj, REGION6["65"], balance=100_000)
        c44.open_account(gd, REGION6["44"], balance=100_000)
        c44.open_account(bj, REGION6["11"], balance=100_000)
        xj_token = c44.token(fed.issuer, xj, REGION6["65"], HOSPITAL["44"])
        gd_token = c11.token(fed.issuer, gd, REGION6["44"], HOSPITAL["11"])
        bj_token = c44.token(fed.issuer, bj, REGION6["11"], HOSPITAL["44"])
        answered: dict[str, object] = {"before": c44.settle(xj_token, HOSPITAL["44"], "xj-before", 1_000)}

        fed.nodes["65"].stop()
        for i in range(8):
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as down:
                c44.settle(xj_token, HOSPITAL["44"], f"xj-down-{i}", 1_000, timeout=2.0)
            assert down.value.code() == grpc.StatusCode.UNAVAILABLE, down.value
            assert time.monotonic() - started < 2.0, "not answered within the caller's deadline"
            # The other provinces keep settling meanwhile.
            assert c11.settle(gd_token, HOSPITAL["11"], f"gd-{i}", 100).outcome == SETTLED
            assert c44.settle(bj_token, HOSPITAL["44"], f"bj-{i}", 100).outcome == SETTLED

        fed.nodes["65"].start()
        # Every order again, with its own order_id, once the province is back.
        again = {
            o: until(lambda o=o: c44.settle(xj_token, HOSPITAL["44"], o, 1_000, timeout=2.0), f"Settle {o}", 20, 0.2)
            for o in ["xj-before", *(f"xj-down-{i}" for i in range(8))]
        }
        assert all(r.outcome == SETTLED for r in again.values())
        assert again["xj-before"].settlement_id == answered["before"].settlement_id  # type: ignore[attr-defined]
        assert len({r.settlement_id for r in again.values()}) == 9, "one settlement per order"
        assert c44.balance(xj, REGION6["65"]) == 100_000 - 9 * 1_000, "lost or paid twice"
        assert c44.balance(gd, REGION6["44"]) == 100_000 - 8 * 100
        assert c44.balance(bj, REGION6["11"]) == 100_000 - 8 * 100
