"""Fixtures of the client tests (the fake peer lives in client_fake_peer.py,
a module with a name of its own so that tests can import its constants)."""

import os

import pytest
from client_fake_peer import fake_node

__all__ = ["fake_node"]


@pytest.fixture(autouse=True)
def _clean_yibao_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads YIBAO_* defaults from the environment; tests start without them."""
    for name in list(os.environ):
        if name.startswith("YIBAO_"):
            monkeypatch.delenv(name)
