"""The node at twice its capacity, beside the empty grpc.aio unary service
offered the same load in the same run (issue #12):

    .venv/bin/python benchmarks/overload.py [--max-in-flight 64] [--max-queued 64] [--quick]

1. the node's unary Verify capacity in a closed loop (C calls/s, the better
   of two runs);
2. an open loop offering 2C calls/s to the node (with --max-in-flight N and
   --max-queued Q) and then to the empty service (grpc.aio's defaults);
3. then an open loop offering C/2 calls/s to the node (once the next run's
   codes are prepared, a few seconds): is it answering as usual again;
4. a table: what each answered, what was refused and how (RESOURCE_EXHAUSTED
   from the node's own limits; CANCELLED from gRPC core's bound on its
   queue, --max-queued: the load generator itself never cancels a call
   before its 30 s deadline) and how fast, the latency of what was accepted
   against the empty service's at the same offered load, and as the node
   itself measures it (from a handler's start: the latency SLO's measure,
   which leaves out the wait in gRPC core's queue), and the node's peak
   memory;
5. what refusing in Python would cost instead: the server CPU per call, in
   closed loops, of the node's Verify, of the empty service and of a
   grpc.aio handler that refuses every call (RESOURCE_EXHAUSTED, no
   message: the least a handler can do), and from those the most a node
   refusing its excess in Python could answer at 2C.

Latency runs from when a call was due (no coordinated omission). On this
2-core machine the load generator shares the cores, so at twice the
capacity its own lateness is in those figures too; a probe beside it (one
caller in this process, a call every 10 ms, timed from when it was sent)
shows what a single well-behaved caller sees. Every run is bounded in count
and time (benchmarks/load.py); loopback only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import load  # noqa: E402
import machine  # noqa: E402
from node import QUICK, Bench, Plan, wait_quiet  # noqa: E402


class Probe:
    """One caller beside the load: a call every 10 ms during the measured
    window, each timed from when it was sent (at most `len(requests)`)."""

    def __init__(self, target: str, path: str, requests: list[bytes]) -> None:
        self.target, self.path, self.requests = target, path, requests
        self.accepted: list[float] = []
        self.refused: dict[str, list[float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        import grpc

        with grpc.insecure_channel(self.target) as ch:
            call = ch.unary_unary(self.path)
            for body in self.requests:
                if self._stop.is_set():
                    return
                sent = time.monotonic()
                try:
                    call(body, timeout=30)
                    self.accepted.append(time.monotonic() - sent)
                except grpc.RpcError as e:
                    self.refused.setdefault(e.code().name, []).append(time.monotonic() - sent)
                time.sleep(max(0.0, sent + 0.01 - time.monotonic()))

    def summary(self) -> str:
        acc = sorted(self.accepted)
        q = (lambda p: f"{load._percentile(acc, p) * 1e3:.1f}") if acc else (lambda p: "—")  # noqa: E731
        refused = ", ".join(f"{code} {len(v)}" for code, v in sorted(self.refused.items())) or "none"
        return f"{len(acc)} accepted, p50 {q(50)} / p99 {q(99)} / max {q(100)} ms; refused: {refused}"


def _probed(b: Bench, spec: load.Spec, probe: Probe, on_window: Callable[[], None] = lambda: None) -> load.Result:
    print(f"  running {spec.mode} (open at {spec.rate:,.0f} codes/s) with a probe ...", file=sys.stderr, flush=True)
    try:
        r = load.run(spec, on_window=lambda: (on_window(), probe.start()))
    finally:
        probe.stop()
    print(f"  {r.summary()}\n  probe: {probe.summary()}", file=sys.stderr, flush=True)
    b.runs.append(r)
    return r


def _probe_cell(p: Probe) -> str:
    acc = sorted(p.accepted)
    if not acc:
        return "—"
    return " / ".join(f"{load._percentile(acc, q) * 1e3:.1f}" for q in (50, 99, 100))


def _probe_refused(p: Probe) -> str:
    n = len(p.accepted) + sum(len(v) for v in p.refused.values())
    return ", ".join(f"{len(v)} {code}" for code, v in sorted(p.refused.items())) + f" of {n}" if p.refused else f"0 of {n}"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _refused(r: load.Result, code: str = "RESOURCE_EXHAUSTED") -> int:
    return sum(n for k, n in r.errors.items() if k.startswith(code + ":"))


def _refusal_latency(r: load.Result, code: str) -> str:
    lat = r.error_latency_ms.get(code)
    return f"{lat['p50']:.1f} / {lat['p99']:.1f}" if lat else "—"


def _verify_buckets(metrics_url: str) -> dict[float, float]:
    """The node's own histogram of Verify calls answered OK
    (grpc_server_handling_seconds: from when a handler started to its
    status, the latency SLO's measure), cumulative per upper bound."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    return {
        float(s.labels["le"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "grpc_server_handling_seconds_bucket"
        and s.labels.get("grpc_method") == "Verify" and s.labels.get("grpc_code") == "OK"
    }


def _bucket_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float:
    """Prometheus' histogram_quantile over the calls between two readings:
    linear within the bucket the quantile falls in; seconds."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return float("nan")
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts):
        if count >= rank:
            if bound == float("inf"):
                return lower  # beyond the last finite bound: as Prometheus, its bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return float("nan")


def _print_refusal_cost(verify: load.Result, peers: dict[str, load.Result]) -> None:
    """Server CPU per call in the closed loops, and what follows for a node
    that would refuse its excess from Python: at 2C, accepting A and
    refusing 2C - A must fit in the CPU of C Verify calls, so
    A <= C (1 - 2r) / (1 - r) where r is a refusal's cost in Verify calls."""
    # Per expected answer: a VALID Verify, an empty answer, a refusal (load.py counts it as the refusing peer's).
    v, empty, refuse = (r.server_cpu_us_per_code or float("nan") for r in (verify, peers["empty"], peers["refuse"]))
    r = refuse / v
    share = max(0.0, (1 - 2 * r) / (1 - r)) if r < 1 else 0.0
    print("\n| closed loop, server CPU per call | µs | in Verify calls |")
    print("|---|---:|---:|")
    print(f"| node: Verify | {v:,.1f} | 1.00 |")
    print(f"| empty grpc.aio unary service | {empty:,.1f} | {empty / v:.2f} |")
    print(f"| grpc.aio handler refusing every call (RESOURCE_EXHAUSTED, no message) | {refuse:,.1f} | {r:.2f} |")
    print(f"\nRefusing the excess in Python instead of in gRPC core: at 2C the node could answer at most "
          f"{share:.2f} of C (each refusal costing {r:.2f} of a Verify)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-in-flight", type=int, default=64, help="the node's --max-in-flight (default %(default)s)")
    ap.add_argument("--max-queued", type=int, default=64, help="the node's --max-queued (default %(default)s)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: seconds, figures mean nothing")
    ap.add_argument("--max-load", type=float, default=0.5)
    ap.add_argument("--wait-quiet", type=float, default=0 if "--quick" in (argv or sys.argv) else 60)
    args = ap.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    note = wait_quiet(args.max_load, args.wait_quiet)
    with tempfile.TemporaryDirectory(prefix="yibao-overload-") as work:
        b = Bench(Path(work), 1, node_args=("--max-in-flight", str(args.max_in_flight),
                                            "--max-queued", str(args.max_queued)))  # fmt: skip
        try:
            assert b.node.proc is not None
            # Twice, the better of the two: a run slowed by another job on the
            # machine would make "twice the capacity" less than that.
            closed = max((b.run(b.node_spec("verify", plan, concurrency=plan.unary_concurrency,
                                            max_codes=plan.codes(plan.unary_codes_per_s))) for _ in range(2)),
                         key=lambda r: r.calls_per_s)  # fmt: skip
            offered = 2 * closed.calls_per_s
            peer_closed = {mode: b.run(b.peer_spec(mode, plan, concurrency=plan.unary_concurrency,
                                                   max_codes=load.PEER_POOL))
                           for mode in ("empty", "refuse")}  # fmt: skip
            peak = [_rss_kib(b.node.proc.pid)]
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    peak.append(_rss_kib(b.node.proc.pid))  # type: ignore[union-attr]
                    time.sleep(0.1)

            from yibao.v1 import verifier_pb2

            def verify(i: int) -> bytes:
                code = b.issuer.issue(os.urandom(16).hex().upper(), load.INSURED_REGION, 2, ttl_s=300)
                return verifier_pb2.VerifyRequest(code=code, institution_code=load.INSTITUTIONS[0],
                                                  request_id=f"probe-{i}").SerializeToString()  # fmt: skip

            probe_calls = int((plan.warmup_s + plan.duration_s) * 100) + 100
            node_probe = Probe(b.node.target, load.PATHS["verify"], [verify(i) for i in range(probe_calls)])
            sampler = threading.Thread(target=sample)
            sampler.start()
            at_window: list[dict[float, float]] = []
            ours = _probed(b, b.node_spec("verify", plan, concurrency=1024, rate=offered,
                                          max_codes=plan.codes(offered)), node_probe,
                           on_window=lambda: at_window.append(_verify_buckets(b.node.metrics_url)))  # fmt: skip
            at_node_p99 = _bucket_quantile(0.99, at_window[0], _verify_buckets(b.node.metrics_url))
            # The load drops to half the capacity: answered as usual again?
            after = b.run(b.node_spec("verify", plan, concurrency=1024, rate=closed.calls_per_s / 2,
                                      max_codes=plan.codes(closed.calls_per_s / 2)))  # fmt: skip
            stop.set()
            sampler.join()
            empty_probe = Probe("", load.PATHS["empty"], [verify(i) for i in range(probe_calls)])
            spec = b.peer_spec("empty", plan, concurrency=1024, rate=offered, max_codes=load.PEER_POOL)
            empty_probe.target = spec.target
            empty = _probed(b, spec, empty_probe)
        finally:
            b.stop()
    run_s = plan.warmup_s + plan.duration_s
    print(f"Machine: {machine.describe()}")
    if note:
        print(note)
    print(f"\nNode closed-loop Verify capacity: {closed.calls_per_s:,.0f} calls/s; offered twice that: "
          f"{offered:,.0f} calls/s; node --max-in-flight {args.max_in_flight} --max-queued {args.max_queued}\n")  # fmt: skip
    print("| at 2x capacity | node | empty grpc.aio service, same offered load |")
    print("|---|---:|---:|")
    print(f"| answered OK, calls/s | {ours.calls_per_s:,.0f} | {empty.calls_per_s:,.0f} |")
    for code, who in (("RESOURCE_EXHAUSTED", "the node's limits"), ("CANCELLED", "gRPC core's queue bound")):
        print(f"| refused {code} ({who}), calls/s | {_refused(ours, code) / run_s:,.0f} | "
              f"{_refused(empty, code) / run_s:,.0f} |")  # fmt: skip
        print(f"| refused {code}, p50 / p99 ms | {_refusal_latency(ours, code)} | {_refusal_latency(empty, code)} |")
    others = {k: n for k, n in ours.errors.items() if not k.startswith(("RESOURCE_EXHAUSTED:", "CANCELLED:"))}
    others_empty = {k: n for k, n in empty.errors.items() if not k.startswith(("RESOURCE_EXHAUSTED:", "CANCELLED:"))}
    print(f"| other errors | {sum(others.values())} | {sum(others_empty.values())} |")
    for q in ("p50", "p99", "max"):
        print(f"| accepted {q}, ms | {ours.latency_ms[q]:.1f} | {empty.latency_ms[q]:.1f} |")
    print(f"| a probe beside the load (a call every 10 ms, from its send): accepted p50 / p99 / max, ms | "
          f"{_probe_cell(node_probe)} | {_probe_cell(empty_probe)} |")  # fmt: skip
    print(f"| the probe's calls refused | {_probe_refused(node_probe)} | {_probe_refused(empty_probe)} |")
    print(f"| accepted p99 at the node (grpc_server_handling_seconds, Verify OK: from its handler's start, the "
          f"latency SLO's measure), ms | {at_node_p99 * 1e3:.1f} | |")  # fmt: skip
    print(f"| node peak RSS, MiB | {max(peak) / 1024:.0f} (at start {peak[0] / 1024:.0f}) | |")
    print(f"\nAfter it, at half the capacity ({closed.calls_per_s / 2:,.0f} calls/s offered): node answered "
          f"{after.calls_per_s:,.0f} calls/s, p99 {after.latency_ms['p99']:.1f} ms, "
          f"errors {sum(after.errors.values())}")  # fmt: skip
    _print_refusal_cost(closed, peer_closed)
    print("\nRuns:")
    for r in (*(r for r in b.runs if r.loop == "closed"), ours, after, empty):
        print(f"- {r.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
