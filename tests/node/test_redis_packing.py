"""The node's Redis connections pack commands with hiredis; the bytes must
be exactly what redis-py itself would send."""

from __future__ import annotations

import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from server.national import HiredisPackedConnection

_arg = st.one_of(st.text(max_size=40), st.binary(max_size=40), st.integers(-(2**63), 2**63 - 1))


def _both(*args: object) -> tuple[bytes, bytes]:
    ours = HiredisPackedConnection()
    theirs = aioredis.Connection()
    return b"".join(ours.pack_command(*args)), b"".join(theirs.pack_command(*args))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.sampled_from(["EVALSHA", "SET", "XREAD", b"GET"]), st.lists(_arg, max_size=60))
def test_same_bytes_as_redis_py(command: object, args: list[object]) -> None:
    ours, theirs = _both(command, *args)
    assert ours == theirs


def test_multi_word_commands_and_floats() -> None:
    for args in (("SCRIPT LOAD", "return 1"), ("CLIENT SETNAME", "node"), ("SET", "k", 1.5), ("SET", "k", b"\x00\xff")):
        ours, theirs = _both(*args)
        assert ours == theirs, args
