"""Fixtures for the black-box Settlement tests (real gRPC, real nodes, real
redis-server, all on 127.0.0.1; helpers in settlekit.py).

- ``national``: the national Redis shared by every node of the session (the
  token MAC key, the replay record, the trust list live there).
- ``code_issuer``: an SM2 issuer key and its trust list (server.local.Issuer).
- ``cluster``: two nodes for the session, Guangdong (44) and Beijing (11),
  each with a regional Redis of its own, each the other's ``--peer``. Tests
  share them and stay apart by using fresh credential ids and order ids.
- ``gd`` / ``bj``: the stubs of those nodes.
- ``workdir``: a per-test directory for processes a test starts itself
  (``node_starter`` starts nodes there and stops them at teardown).

When a test fails, what every node logged during it is added to the report.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import settlekit as sk

from server.local import Issuer, Node, Redis


def _mine(item) -> bool:
    try:
        return Path(str(item.fspath)).resolve().parent == Path(__file__).resolve().parent
    except (OSError, ValueError):  # pragma: no cover
        return False


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item._settle_logs = sk.log_sizes()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _mine(item):
        sizes = getattr(item, "_settle_logs", {})
        for name, node in sk.ALL_NODES:
            text = sk.log_since(node, sizes.get(id(node), 0))
            if text.strip():
                rep.sections.append((f"node {name} log during the test", text))


@pytest.fixture(scope="session")
def national(tmp_path_factory):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server not on PATH (see scripts/setup)", pytrace=False)
    r = Redis(tmp_path_factory.mktemp("national")).start()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def code_issuer(tmp_path_factory) -> Issuer:
    return Issuer.create(tmp_path_factory.mktemp("issuer"))


@pytest.fixture(scope="session")
def cluster(tmp_path_factory, national, code_issuer):
    base = tmp_path_factory.mktemp("cluster")
    regionals = {p: Redis(base / f"regional-{p}").start() for p in (sk.GD, sk.BJ)}
    nodes = {
        p: Node(base / f"node-{p}", national.url, code_issuer.trust_list_path, region=p) for p in (sk.GD, sk.BJ)
    }
    started: list[Node] = []
    stubs: list[sk.Stubs] = []
    try:
        for p, other in ((sk.GD, sk.BJ), (sk.BJ, sk.GD)):
            sk.start_node(
                base, national, code_issuer.trust_list_path, p, regionals[p].url,
                peers={other: nodes[other].port}, node=nodes[p],
            )
            started.append(nodes[p])
        # Guangdong's node started first and met Beijing's port closed: its
        # channel is in gRPC's reconnect backoff (up to 2 s) until its health
        # watch sees Beijing serving. The tests here begin after that.
        for p, other in ((sk.GD, sk.BJ), (sk.BJ, sk.GD)):
            deadline = time.monotonic() + 15
            while sk.metric(nodes[p].metrics_url, "yibao_peer_up", peer=other) != 1:
                assert time.monotonic() < deadline, f"the node of province {p} never saw province {other}'s node up"
                time.sleep(0.1)
        provinces = {}
        for p in (sk.GD, sk.BJ):
            s = sk.Stubs.connect(nodes[p].target)
            stubs.append(s)
            provinces[p] = sk.Province(p, regionals[p], nodes[p], s)
        yield sk.Cluster(national, code_issuer, provinces[sk.GD], provinces[sk.BJ])
    finally:
        for s in stubs:
            s.close()
        for n in started:
            n.stop()
        for r in regionals.values():
            r.stop()


@pytest.fixture
def gd(cluster) -> sk.Stubs:
    return cluster.gd.stubs


@pytest.fixture
def bj(cluster) -> sk.Stubs:
    return cluster.bj.stubs


@pytest.fixture
def workdir(tmp_path) -> Path:
    return tmp_path


@pytest.fixture
def node_starter(tmp_path, national, code_issuer):
    """start(region, regional_url, peers={province: port}) -> a started Node
    of this test, stopped (SIGTERM, then SIGKILL) at teardown."""
    mine: list[Node] = []

    def start(region: str, regional_url: str, peers: dict[str, int] | None = None) -> Node:
        d = tmp_path / f"node-{region}-{len(mine)}"
        node = sk.start_node(d, national, code_issuer.trust_list_path, region, regional_url, peers=peers)
        mine.append(node)
        return node

    yield start
    for n in mine:
        t0 = time.monotonic()
        n.stop()
        assert time.monotonic() - t0 < 30
