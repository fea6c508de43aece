"""A VerifyStream held open at a node, as the overload tests use to fill its
--max-in-flight: opened, answered once, then silent until released."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc

from yibao.v1 import verifier_pb2, verifier_pb2_grpc


def hold_stream(channel: grpc.Channel, first: verifier_pb2.VerifyRequest, release: threading.Event) -> Any:
    """Opens a VerifyStream, sends ``first`` and waits for its VALID answer;
    the stream then stays in progress until ``release`` is set. grpc.aio
    counts a call as finished a moment after its answer went out, so the
    readiness check of Node.start can briefly still hold a slot of a small
    --max-in-flight: that refusal ("Concurrent RPC limit exceeded!") is
    retried for up to 5 s, any other answer is not."""

    def requests() -> Iterator[verifier_pb2.VerifyRequest]:
        yield first
        release.wait(30)

    deadline = time.monotonic() + 5
    while True:
        stream = verifier_pb2_grpc.VerifierStub(channel).VerifyStream(requests(), timeout=60)
        try:
            answer = next(stream)
        except grpc.RpcError as e:
            if "Concurrent RPC limit exceeded" not in (e.details() or "") or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
            continue
        assert answer.outcome == verifier_pb2.OUTCOME_VALID, answer
        return stream
