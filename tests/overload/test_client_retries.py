"""The client library and `yibao revoke --from-file` against a real node
driven past its bounds, over real gRPC: what the node refuses (gRPC core's
queue bound: CANCELLED; its in-flight limits: RESOURCE_EXHAUSTED) is sent
again and answered, where without retries the caller sees the refusal. The
bounds are made small and held deterministically: --max-queued 8 under a
burst of 40 calls at once, or the one slot of --max-in-flight(-per-caller)
1 taken by a VerifyStream the test keeps open."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from yibao_client import AsyncClient, Client, YibaoError, _cli_admin
from yibao_client.cli import main

from held_streams import hold_stream
from server.local import Issuer, Node, Redis
from yibao.v1 import verifier_pb2, verifier_pb2_grpc

HOSPITAL = "H44030500001"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Redis, Issuer]]:
    redis = Redis(tmp_path / "redis").start()
    try:
        yield redis, Issuer.create(tmp_path)
    finally:
        redis.stop()


@contextlib.contextmanager
def _started(node: Node) -> Iterator[Node]:
    node.start()
    try:
        yield node
    finally:
        node.stop()


class _Holder:
    """A VerifyStream that has had its first answer and stays open until
    release(): one call in progress at the node, of caller "VerifyStream"."""

    def __init__(self, node: Node, issuer: Issuer) -> None:
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._channel = node.channel()
        first = verifier_pb2.VerifyRequest(code=issuer.issue(os.urandom(16).hex().upper(), "440300", 2),
                                           institution_code=HOSPITAL, request_id="holder")  # fmt: skip
        self._call = hold_stream(self._channel, first, self._done)

    def release(self) -> None:
        with self._lock:  # from a timer, and again when the test ends
            if not self._done.is_set():
                self._done.set()
                assert list(self._call) == []
                self._channel.close()


def test_the_library_retries_what_the_queue_bound_refused(tmp_path: Path, store: tuple[Redis, Issuer]) -> None:
    """40 Verify calls at once into a queue bound of 8: without retries most
    are refused CANCELLED (gRPC core, before any handler); with the
    library's retries every one is answered VALID."""
    redis, issuer = store
    with _started(Node(tmp_path / "node", redis.url, issuer.trust_list_path, extra=("--max-queued", "8"))) as node:

        async def burst(retries: int, prefix: str) -> list[str]:
            codes = [issuer.issue(os.urandom(16).hex().upper(), "440300", 2) for _ in range(40)]
            async with AsyncClient(node.target, insecure=True, timeout=30, retries=retries) as c:
                answers = await asyncio.gather(
                    *(c.verify(code, institution_code=HOSPITAL, request_id=f"{prefix}-{i}")
                      for i, code in enumerate(codes)), return_exceptions=True)  # fmt: skip
            return [a.code.name if isinstance(a, YibaoError) else verifier_pb2.Outcome.Name(a.outcome)
                    for a in answers]  # fmt: skip

        retried = asyncio.run(burst(4, "r"))
        assert retried == ["OUTCOME_VALID"] * 40, retried
        refused = asyncio.run(burst(0, "n"))
        assert "CANCELLED" in refused, f"40 calls at once into a bound of 8 and none refused: {refused}"
        assert set(refused) <= {"OUTCOME_VALID", "CANCELLED"}, refused


def test_the_library_retries_what_the_in_flight_limit_refused(tmp_path: Path, store: tuple[Redis, Issuer]) -> None:
    """One stream at a time (--max-in-flight-per-caller 1; streams share one
    caller's allowance): while another is open a stream is refused
    RESOURCE_EXHAUSTED, reason OVERLOADED, and with retries it is answered
    once the other ends (gRPC retries a stream that has had no answer)."""
    redis, issuer = store
    extra = ("--max-in-flight-per-caller", "1")
    with _started(Node(tmp_path / "node", redis.url, issuer.trust_list_path, extra=extra)) as node:
        codes = [issuer.issue(os.urandom(16).hex().upper(), "440300", 2) for _ in range(3)]
        items = [(code, HOSPITAL, f"s-{i}") for i, code in enumerate(codes)]
        holder = _Holder(node, issuer)
        try:
            with Client(node.target, insecure=True, retries=0) as c, pytest.raises(YibaoError) as info:
                list(c.verify_stream(items, timeout=10))
            assert (info.value.code, info.value.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED")

            answers: list[verifier_pb2.VerifyResponse] = []
            # Backoffs long enough that four retries cannot all fall before the release (p < 2e-4).
            with Client(node.target, insecure=True, retries=4, retry_initial_backoff=0.5, retry_max_backoff=2.0) as c:
                stream = threading.Thread(target=lambda: answers.extend(c.verify_stream(items, timeout=20)))
                stream.start()
                threading.Timer(0.3, holder.release).start()
                stream.join(30)
        finally:
            holder.release()
        assert [(a.request_id, a.outcome) for a in answers] == [(f"s-{i}", verifier_pb2.OUTCOME_VALID) for i in range(3)]


def _revoke_file(tmp_path: Path, n: int) -> tuple[Path, list[str]]:
    ids = [os.urandom(16).hex().upper() for _ in range(n)]
    path = tmp_path / "revocations.txt"
    path.write_text("".join(f"{cid} deceased\n" for cid in ids))
    return path, ids


def _revoke(node: Node, path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    # --retries 0: every refusal reaches the command's own waits, which are what is tested here.
    code = main(["--insecure", "--target", node.target, "--retries", "0", "--timeout", "30", "revoke",
                 "--from-file", str(path)], stdout=out, stderr=err)  # fmt: skip
    return code, out.getvalue(), err.getvalue()


def test_a_bulk_revocation_rides_out_the_nodes_refusals(tmp_path: Path, store: tuple[Redis, Issuer]) -> None:
    """`yibao revoke --from-file` while the node takes no call (its one slot,
    --max-in-flight 1, held for 1.5 s): the batches refused are sent again
    after a wait, and the whole file is revoked."""
    redis, issuer = store
    path, ids = _revoke_file(tmp_path, 25_000)
    with _started(Node(tmp_path / "node", redis.url, issuer.trust_list_path, extra=("--max-in-flight", "1"))) as node:
        holder = _Holder(node, issuer)
        release = threading.Timer(1.5, holder.release)
        release.start()
        try:
            code, out, err = _revoke(node, path)
        finally:
            release.cancel()
            holder.release()
        assert code == 0, err
        assert "RESOURCE_EXHAUSTED" in err and "sending them again" in err, err
        assert "25,000 of 25,000" in out, out
        with node.channel() as ch:
            stub = verifier_pb2_grpc.VerifierStub(ch)
            for i, cid in enumerate(ids[::5_000]):
                answer = stub.Verify(verifier_pb2.VerifyRequest(code=issuer.issue(cid, "440300", 2),
                                                                institution_code=HOSPITAL, request_id=f"v-{i}"),
                                     timeout=10)  # fmt: skip
                assert answer.outcome == verifier_pb2.OUTCOME_REVOKED


def test_a_bulk_revocation_stops_after_its_waits(
    tmp_path: Path, store: tuple[Redis, Issuer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bounded: a node that refuses throughout gets each batch a few more
    times (the waits, shortened here), then the command stops with exit 3,
    saying where and that running it again is safe."""
    redis, issuer = store
    monkeypatch.setattr(_cli_admin, "BATCH_WAITS_S", (0.05, 0.05, 0.05))
    path, _ = _revoke_file(tmp_path, 100)
    with _started(Node(tmp_path / "node", redis.url, issuer.trust_list_path, extra=("--max-in-flight", "1"))) as node:
        holder = _Holder(node, issuer)
        try:
            code, out, err = _revoke(node, path)
        finally:
            holder.release()
    assert code == 3, (out, err)
    assert err.count("sending them again") == 3, err
    assert "stopped at line 1: 0 of 100 revoked; running the same command again is safe" in err, err
    assert err.rstrip().splitlines()[-1].startswith("yibao revoke: RESOURCE_EXHAUSTED"), err
