"""The node's figures of issue 5, each beside its peer measured in the same
run, as ratios, with the machine named. One command per figure:

    .venv/bin/python benchmarks/node.py batch    # VerifyBatch (500 per call): codes/s, server CPU per code
    .venv/bin/python benchmarks/node.py stream   # VerifyStream vs a grpc.aio echo bidi stream
    .venv/bin/python benchmarks/node.py verify   # unary Verify vs an empty grpc.aio unary service; p99 at half its rate
    .venv/bin/python benchmarks/node.py settle   # Settle vs the empty unary service; p99 at a third of its rate
    .venv/bin/python benchmarks/node.py sweep    # Verify and the empty service at rising offered load: PNG plot
    .venv/bin/python benchmarks/node.py all      # the four figures, one table

Each command starts a private redis-server and a node (``python -m server``,
server/local.py) and, where the figure needs one, the peers
(benchmarks/peers.py), all on free loopback ports, runs the load generator
(benchmarks/load.py: separate client processes on grpc.aio) and prints a
Markdown table: our figure, the peer's, the ratio, the target. Below it, every
run's own line: latencies, the server's and Redis's CPU per code, and the CPU
that the load generator and everything else on the machine used meanwhile.

The machine is shared, so before measuring it waits (up to ``--wait-quiet``
seconds) for the 1-minute load average to drop below ``--max-load``, and says
so in the output if it did not.

``--quick`` is a smoke run (seconds, small counts): it checks that every
piece works, its figures mean nothing. ``--workers N`` runs the node with N
processes. ``--event-loop uvloop|asyncio`` picks the event loop of the node
and of the peers alike (default uvloop, the node's default).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import load  # noqa: E402
import machine  # noqa: E402

from server.local import Issuer, Node, Redis  # noqa: E402

FIGURES = ("batch", "stream", "verify", "settle")


@dataclass(frozen=True)
class Plan:
    """Durations and counts of one command; --quick shrinks them."""

    duration_s: float = 8.0
    warmup_s: float = 1.0
    quick: bool = False
    processes: int = 2
    # closed-loop callers per client process
    unary_concurrency: int = 16
    batch_concurrency: int = 2
    streams: int = 4
    window: int = 100
    # Upper bounds of the rates, for how many codes to issue before a run.
    batch_codes_per_s: int = 28_000
    stream_codes_per_s: int = 12_000
    unary_codes_per_s: int = 3_000
    settle_codes_per_s: int = 1_500

    def codes(self, per_s: float) -> int:
        return int(per_s * (self.warmup_s + self.duration_s) * 1.1) + 1000


QUICK = Plan(duration_s=1.5, warmup_s=0.5, quick=True, batch_codes_per_s=15_000, stream_codes_per_s=3_000,
             unary_codes_per_s=1_000, settle_codes_per_s=400)


@dataclass
class Row:
    what: str
    ours: str
    peer: str
    ratio: str
    target: str
    met: bool | None


class Bench:
    """Redis, a node and the peers for one command, stopped at exit."""

    def __init__(self, workdir: Path, workers: int, event_loop: str = "uvloop", node_args: Sequence[str] = ()) -> None:
        self.redis = Redis(workdir / "redis").start()
        self.issuer = Issuer.create(workdir)
        self.event_loop = event_loop
        extra = ["--event-loop", event_loop, *(["--workers", str(workers)] if workers > 1 else []), *node_args]
        self.node = Node(workdir, self.redis.url, self.issuer.trust_list_path, extra=extra).start()
        self.peers: subprocess.Popen[str] | None = None
        self.peers_target = ""
        self.runs: list[load.Result] = []

    def start_peers(self) -> None:
        if self.peers is not None:
            return
        self.peers = subprocess.Popen(
            [sys.executable, str(HERE / "peers.py"), "--listen", "127.0.0.1:0", "--event-loop", self.event_loop],
            stdout=subprocess.PIPE, text=True,
        )
        line = self.peers.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("listening on "):
            raise RuntimeError(f"peers did not start: {line!r}")
        self.peers_target = line.split()[-1]

    def stop(self) -> None:
        if self.peers is not None:
            self.peers.terminate()
            try:
                self.peers.wait(10)
            except subprocess.TimeoutExpired:
                self.peers.kill()
        self.node.stop()
        self.redis.stop()

    def run(self, spec: load.Spec) -> load.Result:
        print(f"  running {spec.mode} ({'open at %d codes/s' % spec.rate if spec.rate else 'closed loop'}) ...",
              file=sys.stderr, flush=True)
        r = load.run(spec)
        print(f"  {r.summary()}", file=sys.stderr, flush=True)
        self.runs.append(r)
        return r

    def node_spec(self, mode: str, plan: Plan, **kw: object) -> load.Spec:
        assert self.node.proc is not None and self.redis.proc is not None
        return load.Spec(
            target=self.node.target, mode=mode, processes=plan.processes, duration_s=plan.duration_s,
            warmup_s=plan.warmup_s, issuer_key=self.issuer.private_key.hex(), window=plan.window,
            server_pids=[self.node.proc.pid], redis_pid=self.redis.proc.pid, **kw,  # type: ignore[arg-type]
        )

    def peer_spec(self, mode: str, plan: Plan, **kw: object) -> load.Spec:
        self.start_peers()
        assert self.peers is not None
        return load.Spec(
            target=self.peers_target, mode=mode, processes=plan.processes, duration_s=plan.duration_s,
            warmup_s=plan.warmup_s, window=plan.window, server_pids=[self.peers.pid], **kw,  # type: ignore[arg-type]
        )


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


# ---------------------------------------------------------------------------
# The figures
# ---------------------------------------------------------------------------
def core_batch_rate(seconds: float) -> tuple[float, float]:
    """The core's check_batch on all cores, in process (no gRPC, no Redis):
    codes/s and CPU µs per code. The ceiling the node's VerifyBatch works under."""
    import yibao_core

    key = yibao_core.sm2_generate_private_key()
    public = yibao_core.sm2_public_key(key)
    trust = yibao_core.TrustList.from_json(
        json.dumps({"version": 1, "keys": [{"key_id": yibao_core.key_id(public), "public_key": public.hex(),
                                            "not_before": "2020-01-01T00:00:00Z", "not_after": "2100-01-01T00:00:00Z",
                                            "issuer": "bench"}]})
    )
    now = int(time.time() * 1000)
    codes = [yibao_core.issue(key, credential_id=os.urandom(16).hex(), insured_region="440300", channel=2,
                              issued_at_ms=now) for _ in range(500)]
    mirror = yibao_core.RevocationSet()
    yibao_core.check_batch(codes, trust, now, revocations=mirror)
    done, cpu0, t0 = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        done += len(yibao_core.check_batch(codes, trust, now, revocations=mirror))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return done / wall, cpu / done * 1e6


def figure_batch(b: Bench, plan: Plan) -> list[Row]:
    r = b.run(b.node_spec("batch", plan, concurrency=plan.batch_concurrency,
                          max_codes=plan.codes(plan.batch_codes_per_s)))
    core_rate, core_cpu = core_batch_rate(1.0 if plan.quick else 3.0)
    cpu = r.server_cpu_us_per_code or 0.0
    return [
        Row("Node VerifyBatch (500 per call), codes/s", f"{r.codes_per_s:,.0f}",
            f"core check_batch in process: {core_rate:,.0f}", _ratio(r.codes_per_s, core_rate),
            "≥ 15,000 codes/s", r.codes_per_s >= 15_000),
        Row("Node VerifyBatch, server CPU per code", f"{cpu:.1f} µs",
            f"core check_batch: {core_cpu:.1f} µs", _ratio(cpu, core_cpu), "≤ 60 µs", cpu <= 60),
    ]


def figure_stream(b: Bench, plan: Plan) -> list[Row]:
    kw = {"concurrency": plan.streams}
    codes = plan.codes(plan.stream_codes_per_s)
    # Peer and node alternate, twice, so a change in the machine's load
    # during the run touches both; the figure is the mean of each pair.
    echo, ours = [], []
    for _ in range(1 if plan.quick else 2):
        echo.append(b.run(b.peer_spec("echo", plan, max_codes=load.PEER_POOL, **kw)))
        ours.append(b.run(b.node_spec("stream", plan, max_codes=codes, **kw)))
    e = sum(x.codes_per_s for x in echo) / len(echo)
    o = sum(x.codes_per_s for x in ours) / len(ours)
    return [
        Row("Node VerifyStream, messages/s", f"{o:,.0f}", f"grpc.aio echo bidi stream: {e:,.0f}", _ratio(o, e),
            "≥ 0.60", o >= 0.6 * e),
    ]


def _unary_pair(b: Bench, plan: Plan, mode: str, per_s: int) -> tuple[float, float]:
    kw = {"concurrency": plan.unary_concurrency}
    empty, ours = [], []
    for _ in range(1 if plan.quick else 2):
        empty.append(b.run(b.peer_spec("empty", plan, max_codes=load.PEER_POOL, **kw)))
        ours.append(b.run(b.node_spec(mode, plan, max_codes=plan.codes(per_s), **kw)))
    return (sum(x.codes_per_s for x in empty) / len(empty), sum(x.codes_per_s for x in ours) / len(ours))


def _open(b: Bench, plan: Plan, mode: str, rate: float, peer: bool) -> load.Result:
    kw = {"concurrency": 512, "rate": rate, "max_codes": plan.codes(rate)}
    if peer:
        return b.run(b.peer_spec("empty", plan, **{**kw, "max_codes": load.PEER_POOL}))
    return b.run(b.node_spec(mode, plan, **kw))


def figure_unary(b: Bench, plan: Plan, mode: str) -> list[Row]:
    verify = mode == "verify"
    per_s = plan.unary_codes_per_s if verify else plan.settle_codes_per_s
    e, o = _unary_pair(b, plan, mode, per_s)
    share, fraction, p99_target = (0.70, 2, 10.0) if verify else (0.50, 3, 20.0)
    rate = e / fraction
    ours = _open(b, plan, mode, rate, peer=False)
    peer = _open(b, plan, mode, rate, peer=True)
    # The same fraction of the node's own maximum, for when the node's
    # maximum is too close to the empty service's fraction to say anything
    # about latency below saturation.
    own = _open(b, plan, mode, o / fraction, peer=False)
    name = "Verify" if verify else "Settle"
    part = "half" if verify else "a third"
    p99 = ours.latency_ms["p99"]
    return [
        Row(f"Node {name}, calls/s (closed loop)", f"{o:,.0f}", f"empty grpc.aio unary: {e:,.0f}", _ratio(o, e),
            f"≥ {share:.2f}", o >= share * e),
        Row(f"Node {name}, p99 at {part} of the empty rate ({rate:,.0f}/s offered, "
            f"{ours.calls_per_s:,.0f}/s answered)",
            f"{p99:.1f} ms", f"empty unary at the same rate: {peer.latency_ms['p99']:.1f} ms",
            _ratio(p99, peer.latency_ms["p99"]), f"≤ {p99_target:g} ms", p99 <= p99_target and not ours.errors),
        Row(f"Node {name}, p99 at {part} of its own closed-loop rate ({o / fraction:,.0f}/s offered, "
            f"{own.calls_per_s:,.0f}/s answered)", f"{own.latency_ms['p99']:.1f} ms", "—", "—",
            f"(≤ {p99_target:g} ms)", None),
    ]


def sweep(b: Bench, plan: Plan, out: Path) -> None:
    """Verify and the empty unary service at rising offered load; plot
    answered rate and p99 against the offered rate."""
    kw = {"concurrency": plan.unary_concurrency}
    top = b.run(b.peer_spec("empty", plan, max_codes=load.PEER_POOL, **kw)).codes_per_s
    fractions = (0.25, 0.5) if plan.quick else (0.1, 0.25, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2)
    points: dict[str, list[tuple[float, float, float]]] = {"verify": [], "empty": []}
    for f in fractions:
        rate = top * f
        for mode in ("empty", "verify"):
            r = _open(b, plan, "verify", rate, peer=mode == "empty")
            points[mode].append((rate, r.codes_per_s, r.latency_ms["p99"]))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for mode, label in (("verify", "node Verify"), ("empty", "empty grpc.aio unary")):
        xs = [p[0] for p in points[mode]]
        ax1.plot(xs, [p[1] for p in points[mode]], marker="o", label=label)
        ax2.plot(xs, [p[2] for p in points[mode]], marker="o", label=label)
    ax1.plot([0, max(xs)], [0, max(xs)], ls=":", c="grey", label="answered = offered")
    ax1.set(xlabel="offered calls/s", ylabel="answered calls/s", title="Throughput")
    ax2.axhline(10, ls="--", c="red", label="p99 target 10 ms")
    ax2.set(xlabel="offered calls/s", ylabel="p99 latency (ms)", title="p99 latency", yscale="log")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Unary Verify vs empty unary, open loop, {os.cpu_count()} cores shared with the load generator",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print("\n| offered calls/s | Verify answered/s | Verify p99 ms | empty answered/s | empty p99 ms |")
    print("|---:|---:|---:|---:|---:|")
    for (rate, vo, vp), (_, eo, ep) in zip(points["verify"], points["empty"]):
        print(f"| {rate:,.0f} | {vo:,.0f} | {vp:.1f} | {eo:,.0f} | {ep:.1f} |")
    print(f"\nplot: {out}")


# ---------------------------------------------------------------------------
def wait_quiet(max_load: float, wait_s: float) -> str:
    """Wait until the 1-minute load average is below max_load, at most wait_s."""
    deadline = time.monotonic() + wait_s
    while (load1 := os.getloadavg()[0]) >= max_load and time.monotonic() < deadline:
        print(f"  load average {load1:.2f} ≥ {max_load}: waiting for a quiet machine ...", file=sys.stderr, flush=True)
        time.sleep(min(15.0, max(0.0, deadline - time.monotonic())))
    if load1 >= max_load:
        return f"**machine busy**: 1-minute load average {load1:.2f} ≥ {max_load} after waiting {wait_s:.0f} s"
    return f"1-minute load average {load1:.2f} at start"


def print_table(rows: Sequence[Row], runs: Sequence[load.Result], notes: Sequence[str]) -> None:
    print(f"Machine: {machine.describe()}")
    for n in notes:
        print(f"{n}")
    print()
    print("| figure | ours | peer, same run | ratio | target | met |")
    print("|---|---:|---|---:|---|---|")
    for r in rows:
        met = "—" if r.met is None else ("yes" if r.met else "**no**")
        print(f"| {r.what} | {r.ours} | {r.peer} | {r.ratio} | {r.target} | {met} |")
    print("\nRuns:\n")
    for r in runs:
        print(f"- {r.summary()}")
    busiest = max((r.others_cores for r in runs), default=0.0)
    if busiest > 0.2:
        print(f"\nNote: other processes on the machine used up to {busiest:.2f} cores during a run; "
              "the figures are lower than on a quiet machine.")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("figure", choices=(*FIGURES, "all", "sweep"))
    p.add_argument("--quick", action="store_true", help="smoke run: seconds, small counts; figures meaningless")
    p.add_argument("--duration", type=float, help="measured seconds per run (default 8; 1.5 with --quick)")
    p.add_argument("--workers", type=int, default=1, help="node processes (--workers of the node)")
    p.add_argument("--event-loop", choices=("uvloop", "asyncio"), default="uvloop",
                   help="event loop of the node and of the peers alike (default %(default)s)")
    p.add_argument("--max-load", type=float, default=0.8, help="wait for a 1-minute load average below this")
    p.add_argument("--wait-quiet", type=float, default=300, help="seconds to wait for it at most (default %(default)s)")
    p.add_argument("--json", type=Path, help="also write every run's figures to this file")
    p.add_argument("--plot", type=Path, default=HERE / "verify-load.png", help="sweep: the PNG (default %(default)s)")
    a = p.parse_args(argv)
    plan = QUICK if a.quick else Plan()
    if a.duration:
        plan = replace(plan, duration_s=a.duration)
    notes = []
    if a.quick:
        notes.append("**--quick smoke run: the figures mean nothing**")
    else:
        notes.append(wait_quiet(a.max_load, a.wait_quiet))
    if a.workers > 1:
        notes.append(f"node with --workers {a.workers}")
    notes.append(f"event loop of the node and the peers: {a.event_loop}")
    with tempfile.TemporaryDirectory(prefix="yibao-bench-") as tmp:
        b = Bench(Path(tmp), a.workers, a.event_loop)
        try:
            if a.figure == "sweep":
                print(f"Machine: {machine.describe()}")
                print("\n".join(notes))
                sweep(b, plan, a.plot)
                return 0
            rows: list[Row] = []
            runners: dict[str, Callable[[], list[Row]]] = {
                "batch": lambda: figure_batch(b, plan),
                "stream": lambda: figure_stream(b, plan),
                "verify": lambda: figure_unary(b, plan, "verify"),
                "settle": lambda: figure_unary(b, plan, "settle"),
            }
            for f in FIGURES if a.figure == "all" else (a.figure,):
                rows += runners[f]()
            notes.append(f"1-minute load average {os.getloadavg()[0]:.2f} at the end (this run's own load included)")
            print_table(rows, b.runs, notes)
            if a.json:
                a.json.write_text(json.dumps({"machine": machine.describe(), "notes": notes,
                                              "rows": [asdict(r) for r in rows],
                                              "runs": [asdict(r) for r in b.runs]}, indent=1))
            # A wrong answer, or a failed call below saturation, fails the
            # command; an open-loop run offered more than the node can take
            # may lose a few calls at its tail, which is reported only.
            bad = [r for r in b.runs if not r.calls or r.other_outcomes or (r.errors and r.offered_codes_per_s is None)]
            if bad:
                print(f"\n{len(bad)} run(s) measured nothing, or had failed calls or unexpected outcomes: see above",
                      file=sys.stderr)
                return 1
            return 0
        finally:
            b.stop()


if __name__ == "__main__":
    sys.exit(main())
