"""Garbage-collector settings for a process that serves (the node, and the
benchmarks' peers and load generator, which must not add pauses of their own)."""

from __future__ import annotations

import gc

# grpc.aio leaves a few objects of cyclic garbage per call (a closure of its
# method lookup), all freed in the pause of the next young collection: with a
# threshold of 50,000 such a pause took tens of ms under load. 5,000 keeps
# the pauses short and collects seven times less often than the default 700.
YOUNG_THRESHOLD = 5_000


def quiet_collector() -> None:
    """Keep Python's cyclic garbage collector out of the tail latency. What
    exists once the process serves (modules, descriptors, gRPC, the state)
    lives until exit, so it is frozen out of every later collection: a full
    collection then walks only what was made since."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 10, 10)
