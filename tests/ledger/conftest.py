"""Fixtures for the ledger tests (server/ledger.py, receipts.py, audit.py,
node_key.py), all on a real ``redis-server`` (server.local.Redis).

- ``redis_server``: one redis-server for the session, no persistence.
- ``redis_url``: its URL, with every database flushed first, so each test
  starts from an empty store.

Helpers (``ledger`` context manager, ``dump`` of every key, constants) are
in ledgerkit.py. No pytest-asyncio: every test drives its coroutines with
asyncio.run, and every client is closed with ``aclose()`` (warnings are
errors).
"""

from __future__ import annotations

import shutil

import ledgerkit
import pytest


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server not on PATH (see scripts/setup)", pytrace=False)
    server = ledgerkit.Redis(tmp_path_factory.mktemp("ledger-redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    ledgerkit.flush(redis_server.url)
    return redis_server.url
