"""Overload, on a real node over real gRPC: many more callers than the node
takes at once (--max-in-flight 8, 64 callers in a closed loop from
benchmarks/load.py). What must hold: every call beyond the limit is refused
with RESOURCE_EXHAUSTED (never UNKNOWN, INTERNAL or a deadline), and
quickly; what is accepted is answered VALID; the node's memory stays
bounded; when the load stops, every call is answered again. Speed is not
asserted (benchmarks/overload.py measures it beside an empty service); the
bounds below are correctness bounds, far above the figures."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import grpc

from benchmarks import load
from server.local import Issuer, Node, Redis
from yibao.v1 import verifier_pb2, verifier_pb2_grpc

HOSPITAL = "H44030500001"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_beyond_its_limit_the_node_sheds_fast_and_recovers(tmp_path: Path) -> None:
    redis = Redis(tmp_path / "redis").start()
    issuer = Issuer.create(tmp_path)
    node = Node(tmp_path / "node", redis.url, issuer.trust_list_path,
                extra=("--max-in-flight", "8", "--max-in-flight-per-caller", "8")).start()  # fmt: skip
    assert node.proc is not None
    shed_latencies: list[float] = []
    rss: list[int] = []
    stop = threading.Event()

    def probe() -> None:
        """Beside the load: how fast is a refusal, and how big is the node."""
        with node.channel() as ch:
            stub = verifier_pb2_grpc.VerifierStub(ch)
            while not stop.is_set():
                # A burst of 16 on top of the load: more than the 8 slots by itself.
                started = time.monotonic()
                burst = [stub.Verify.future(verifier_pb2.VerifyRequest(code="x", institution_code=HOSPITAL,
                                                                        request_id=f"p{i}"), timeout=10)
                         for i in range(16)]  # fmt: skip
                for call in burst:
                    try:
                        call.result()
                    except grpc.RpcError as e:
                        if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                            shed_latencies.append(time.monotonic() - started)
                rss.append(_rss_kib(node.proc.pid))  # type: ignore[union-attr]
                time.sleep(0.05)

    try:
        rss_before = _rss_kib(node.proc.pid)
        prober = threading.Thread(target=probe)
        spec = load.Spec(
            target=node.target, mode="verify", processes=2, concurrency=32, duration_s=5, warmup_s=0.5,
            max_codes=40_000, issuer_key=issuer.private_key.hex(), server_pids=[node.proc.pid], call_timeout_s=10,
        )  # fmt: skip
        prober.start()
        result = load.run(spec)
        stop.set()
        prober.join(15)

        refused = {k: v for k, v in result.errors.items() if k.startswith("RESOURCE_EXHAUSTED")}
        assert refused, f"64 callers against a limit of 8 and nothing shed: {result.summary()}"
        assert result.errors == refused, f"answers other than RESOURCE_EXHAUSTED: {result.errors}"
        # Refused by the node's admission check, or by gRPC's own count of the
        # calls it holds (--max-in-flight is both), before any work.
        assert all("calls in progress" in k or "Concurrent RPC limit" in k for k in refused), refused
        assert result.calls > 0 and result.valid == result.codes, "accepted calls must be answered VALID"
        assert result.latency_ms["max"] < 5_000, f"an accepted call waited {result.latency_ms['max']:.0f} ms"
        assert shed_latencies, "the probe never met a refusal"
        shed_latencies.sort()
        assert shed_latencies[len(shed_latencies) // 2] < 1.0, "refusals are not quick"
        assert (max(rss) - rss_before) / 1024 < 100, "the node's memory grew under load"

        # The load is gone: every call is answered again.
        with node.channel() as ch:
            stub = verifier_pb2_grpc.VerifierStub(ch)
            for i in range(20):
                code = issuer.issue(os.urandom(16).hex().upper(), "440300", 2)
                answer = stub.Verify(verifier_pb2.VerifyRequest(code=code, institution_code=HOSPITAL,
                                                                request_id=f"after-{i}"), timeout=10)  # fmt: skip
                assert answer.outcome == verifier_pb2.OUTCOME_VALID
    finally:
        stop.set()
        node.stop()
        redis.stop()


def test_one_caller_cannot_take_the_whole_node(tmp_path: Path) -> None:
    """Per-caller limit: an institution at its allowance is refused while another is still served."""
    redis = Redis(tmp_path / "redis").start()
    issuer = Issuer.create(tmp_path)
    node = Node(tmp_path / "node", redis.url, issuer.trust_list_path,
                extra=("--max-in-flight", "64", "--max-in-flight-per-caller", "2")).start()  # fmt: skip
    try:
        with node.channel() as ch:
            batch = ch.unary_unary(
                "/yibao.v1.Verifier/VerifyBatch",
                request_serializer=verifier_pb2.VerifyBatchRequest.SerializeToString,
                response_deserializer=verifier_pb2.VerifyBatchResponse.FromString,
            )

            def big(inst: str) -> verifier_pb2.VerifyBatchRequest:
                codes = [issuer.issue(os.urandom(16).hex().upper(), "440300", 2) for _ in range(1000)]
                return verifier_pb2.VerifyBatchRequest(requests=[
                    verifier_pb2.VerifyRequest(code=c, institution_code=inst, request_id=f"{inst}-{i}")
                    for i, c in enumerate(codes)])  # fmt: skip

            greedy = [big("H44030500001") for _ in range(6)]
            futures = [batch.future(r, timeout=30) for r in greedy]
            other = verifier_pb2_grpc.VerifierStub(ch).Verify(verifier_pb2.VerifyRequest(
                code=issuer.issue(os.urandom(16).hex().upper(), "440300", 2), institution_code="P44010600002",
                request_id="other"), timeout=30)  # fmt: skip
            codes = []
            for f in futures:
                try:
                    f.result()
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as e:
                    codes.append(e.code())
        assert other.outcome == verifier_pb2.OUTCOME_VALID, "another institution was turned away"
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes, f"six batches at once under an allowance of 2: {codes}"
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
    finally:
        node.stop()
        redis.stop()


def test_the_overload_benchmark_runs() -> None:
    """benchmarks/overload.py --quick: every figure printed (its values mean nothing on a smoke run)."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, str(repo / "benchmarks" / "overload.py"), "--quick"], cwd=repo,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    for line in ("answered OK, calls/s", "refused (RESOURCE_EXHAUSTED), calls/s", "accepted p99, ms", "node peak RSS"):
        assert line in run.stdout, run.stdout
