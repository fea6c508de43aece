"""Fixtures for the black-box tests of a running node.

- ``redis_server``: one real ``redis-server`` for the session, on a free
  127.0.0.1 port, no persistence. Tests are isolated by database number: every
  ``node_factory`` takes a database no other test used, so the national state
  (revocations, replay record, shared trust list) of one test is invisible to
  the next, including what a node reads from Redis when it starts.
- ``private_redis``: a ``redis-server`` of the test's own, for fault tests
  that kill -9 and restart it (``kill9()`` / ``restart()``, same port).
- ``node_issuer``: a fresh SM2 issuer key valid 2020-01-01 to 2100-01-01.
- ``trust_list_path``: a trust list file with that key and the keys of the
  shared vectors (shared/spec/vectors/trust-list.json).
- ``node_factory``: starts ``python -m server`` subprocesses (cwd = the repo
  root, logs in tmp_path), waits for grpc.health SERVING with a bounded
  timeout, and stops them with SIGTERM (SIGKILL after a grace) at teardown.

When a test fails, the logs of the nodes that were running during it are
added to its report.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import nodekit
import pytest


def _is_node_test(item) -> bool:
    try:
        return Path(str(item.fspath)).resolve().parent == Path(__file__).resolve().parent
    except Exception:  # pragma: no cover
        return False


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item._nodekit_t0 = time.monotonic()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _is_node_test(item):
        t0 = getattr(item, "_nodekit_t0", 0.0)
        for node in nodekit.nodes_active_since(t0):
            rep.sections.append((f"node {node.name} ({' '.join(node.args)})", node.log_tail()))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server not on PATH (Debian package redis-server; see scripts/setup)", pytrace=False)
    server = nodekit.RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_redis(tmp_path):
    """A Redis of this test's own, which it may kill -9 and restart."""
    server = nodekit.RedisServer(tmp_path / "private-redis", databases=16)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def node_issuer():
    return nodekit.Issuer()


@pytest.fixture(scope="session")
def shared_trust_list() -> dict:
    path = nodekit.spec_dir() / "vectors" / "trust-list.json"
    if not path.is_file():
        pytest.fail(f"shared vectors trust list not found at {path} (set YIBAO_SPEC_DIR)", pytrace=False)
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def base_trust_entries(node_issuer, shared_trust_list) -> list[dict]:
    """The test issuer's key first, then the shared vectors' keys."""
    return [node_issuer.entry(), *shared_trust_list["keys"]]


@pytest.fixture(scope="session")
def trust_list_path(tmp_path_factory, base_trust_entries) -> Path:
    path = tmp_path_factory.mktemp("trust") / "trust-list.json"
    path.write_text(nodekit.trust_list_json(base_trust_entries), encoding="utf-8")
    return path


@pytest.fixture
def node_factory(tmp_path, redis_server, trust_list_path):
    factory = nodekit.NodeFactory(tmp_path, redis_server, trust_list_path)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def module_node_factory(tmp_path_factory, redis_server, trust_list_path):
    """Like node_factory, for nodes shared by the tests of one module (one
    database of its own; tests use fresh credential ids)."""
    factory = nodekit.NodeFactory(tmp_path_factory.mktemp("nodes"), redis_server, trust_list_path)
    yield factory
    factory.close()
