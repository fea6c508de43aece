"""Garbage-collector settings for a process that serves (the node, and the
benchmarks' peers and load generator, which must not add pauses of their own)."""

from __future__ import annotations

import gc


def quiet_collector() -> None:
    """Keep Python's cyclic garbage collector out of the tail latency. What
    exists once the node serves (modules, descriptors, gRPC, the state) lives
    until exit, so it is frozen out of every later collection; and the young
    generation is collected every 50,000 allocations instead of 700, so the
    full collections, which walk everything still tracked, come rarely.
    (The open-loop p99 of `benchmarks/node.py verify` shows the difference.)"""
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
