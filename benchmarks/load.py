"""Multi-process load generator on grpc.aio for a node and its peers.

N client processes (``--processes``), each with M concurrent callers
(``--concurrency``: calls in flight per process for the unary modes, streams
per process for the stream modes), one channel per process. Modes:

    verify   Verifier.Verify, one fresh valid code per call
    batch    Verifier.VerifyBatch, --batch codes per call (500)
    stream   Verifier.VerifyStream, up to --window messages in flight per stream
    settle   Settlement.Settle with the ec_token of a code verified beforehand
    empty    the empty unary peer (benchmarks/peers.py), same messages as verify
    echo     the echo bidi-stream peer, same messages as stream
    refuse   the refusing unary peer, same messages as verify; its
             RESOURCE_EXHAUSTED is the expected answer

Closed loop (default): every caller sends as soon as its previous answer is
in; the figure is the maximum throughput. Open loop (``--rate``, in codes
per second over all processes): calls leave at fixed intervals whatever the
answers do, and a latency runs from the time the call was due, so a server
that falls behind shows it (no coordinated omission).

Every run is bounded in count (the codes prepared before it: ``--max-codes``)
and in time (``--warmup`` + ``--duration``, plus a bounded drain). The codes
are issued (SM2-signed, ``yibao_core.issue``) by the client processes before
the clock starts, over many credential ids, each with a random nonce, so
every one is fresh and valid; for ``settle`` the accounts are opened and the
codes verified (for their ec_tokens) beforehand too.

The server's CPU time is read from /proc/<pid>/stat (utime + stime, the
process and all its descendants, so ``--workers`` counts) at the start and
the end of the measured window; so is Redis's when its pid is given.

    .venv/bin/python benchmarks/load.py --target 127.0.0.1:PORT --mode batch \\
        --issuer-key HEX --server-pid PID [--redis-pid PID] [--rate CODES_PER_S] [--json]

benchmarks/node.py starts the node, Redis and the peers and runs this for
each figure of issue 5.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import queue
import sys
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

MODES = ("verify", "batch", "stream", "settle", "empty", "echo", "refuse")
STREAM_MODES = ("stream", "echo")
PEER_MODES = ("empty", "echo", "refuse")
PATHS = {
    "verify": "/yibao.v1.Verifier/Verify",
    "batch": "/yibao.v1.Verifier/VerifyBatch",
    "stream": "/yibao.v1.Verifier/VerifyStream",
    "settle": "/yibao.v1.Settlement/Settle",
    "empty": "/yibao.bench.Peers/Empty",
    "echo": "/yibao.bench.Peers/Echo",
    "refuse": "/yibao.bench.Peers/Refuse",
}
# The answer a mode expects when it is a refusal rather than a message.
EXPECTED_REFUSAL = {"refuse": "RESOURCE_EXHAUSTED"}
INSTITUTIONS = [f"H440300{i:05d}" for i in range(1, 21)]
INSURED_REGION = "440300"
# The peers do not check codes, so they cycle through a small pool.
PEER_POOL = 4000
ACCOUNT_BALANCE_FEN = 10**12
TOTAL_FEN, ACCOUNT_PAY_FEN = 2350, 2000
ITEMS = (("XA01BAA0010101", "阿莫西林胶囊", 2000, "盒", 850, 1700), ("XB05XAE0010202", "葡萄糖注射液", 1000, "瓶", 650, 650))


@dataclass
class Spec:
    target: str
    mode: str
    processes: int = 2
    concurrency: int = 8
    duration_s: float = 10.0
    warmup_s: float = 1.0
    rate: float | None = None  # offered codes/s over all processes; None: closed loop
    max_codes: int = 50_000
    batch: int = 500
    window: int = 200  # stream: messages in flight per stream
    call_timeout_s: float = 30.0
    issuer_key: str = ""  # hex; required for the node's modes
    accounts: int = 1000  # settle: credential ids with an account
    credential_ids: int = 20_000  # distinct credential ids the codes are spread over
    server_pids: Sequence[int] = ()
    redis_pid: int | None = None
    run_tag: str = field(default_factory=lambda: os.urandom(4).hex())

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r}: one of {', '.join(MODES)}")
        host = self.target.rpartition(":")[0]
        if host not in ("127.0.0.1", "localhost", "[::1]"):
            raise ValueError(f"target {self.target!r}: load goes to the loopback only")
        if self.processes < 1 or self.concurrency < 1 or self.duration_s <= 0 or self.max_codes < 1:
            raise ValueError("processes, concurrency, duration and max_codes must be positive")
        if self.mode not in PEER_MODES and not self.issuer_key:
            raise ValueError(f"mode {self.mode}: --issuer-key (a key of the node's trust list) is required")


@dataclass
class Result:
    mode: str
    loop: str  # "closed" or "open at N codes/s"
    processes: int
    concurrency: int
    window_s: float  # measured window
    ended_by: str  # "time" or "count"
    calls: int
    codes: int
    valid: int  # codes with the expected answer (VALID, or SETTLED for settle)
    other_outcomes: dict[str, int]
    errors: dict[str, int]
    # per status code of the failed calls: p50, p99, max in ms, from when each was due (unary modes)
    error_latency_ms: dict[str, dict[str, float]]
    codes_per_s: float
    calls_per_s: float
    latency_ms: dict[str, float]  # p50, p90, p99, p99.9, max; per call (per message for streams)
    server_cpu_s: float | None
    server_cpu_us_per_code: float | None
    server_cores: float | None  # server CPU seconds per second of the window
    redis_cpu_us_per_code: float | None
    offered_codes_per_s: float | None
    client_cores: float  # the load generator's processes
    others_cores: float  # everything on the machine outside this run (should be ~0)

    def summary(self) -> str:
        lat = self.latency_ms
        cpu = ""
        if self.server_cpu_us_per_code is not None:
            cpu = f", server {self.server_cpu_us_per_code:.1f} µs CPU/code ({self.server_cores:.2f} cores)"
        if self.redis_cpu_us_per_code is not None:
            cpu += f", redis {self.redis_cpu_us_per_code:.1f} µs CPU/code"
        cpu += f", clients {self.client_cores:.2f} cores, others {self.others_cores:.2f} cores"
        return (
            f"{self.mode} ({self.loop}, {self.processes}x{self.concurrency}): {self.codes_per_s:,.0f} codes/s, "
            f"{self.calls_per_s:,.0f} calls/s, p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, "
            f"p99.9 {lat['p99.9']:.2f} ms{cpu}; ended by {self.ended_by}; "
            f"bad outcomes {sum(self.other_outcomes.values())}, errors {sum(self.errors.values())}"
            + (f" {self.errors}" if self.errors else "")
        )


# ---------------------------------------------------------------------------
# CPU time of a process tree from /proc
# ---------------------------------------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of the processes and everything below them, in seconds."""
    return _cpu_of({d for pid in pids for d in _descendants(pid)})


def _cpu_of(pids: set[int]) -> float:
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        except OSError:
            pass
    return total / _TICK


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / _TICK


class Cpu:
    """CPU of the server, of Redis, of this run's own processes (the load
    generator and whatever this process started), and of everything else on
    the machine (other people's work, which makes a figure unreliable)."""

    def __init__(self, server_pids: Sequence[int], redis_pid: int | None) -> None:
        self.server_pids, self.redis_pid = list(server_pids), redis_pid

    def sample(self) -> tuple[float, float, float, float]:
        server = {d for pid in self.server_pids for d in _descendants(pid)}
        redis = set(_descendants(self.redis_pid)) if self.redis_pid else set()
        mine = set(_descendants(os.getpid())) | server | redis
        return _cpu_of(server), _cpu_of(redis), _cpu_of(mine), machine_busy_seconds()


# ---------------------------------------------------------------------------
# What each client process sends
# ---------------------------------------------------------------------------
def _credential_ids(spec: Spec) -> list[str]:
    n = spec.accounts if spec.mode == "settle" else spec.credential_ids
    seed = bytes.fromhex(spec.run_tag)
    import hashlib

    return [hashlib.blake2b(seed + i.to_bytes(4, "big"), digest_size=16).hexdigest().upper() for i in range(n)]


def _issue(spec: Spec, worker: int, count: int) -> list[tuple[str, str, str]]:
    """(code, institution_code, request_id) of `count` fresh codes."""
    import yibao_core

    key = bytes.fromhex(spec.issuer_key) if spec.issuer_key else yibao_core.sm2_generate_private_key()
    ids = _credential_ids(spec)
    now = int(time.time() * 1000)
    out = []
    for i in range(count):
        cid = ids[(i * spec.processes + worker) % len(ids)]
        code = yibao_core.issue(key, credential_id=cid, insured_region=INSURED_REGION, channel=1 + i % 5,
                                issued_at_ms=now, ttl_s=300)
        out.append((code, INSTITUTIONS[i % len(INSTITUTIONS)], f"{spec.run_tag}-{worker}-{i}"))
    return out


async def _tokens(spec: Spec, reqs: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """Verify the codes (VerifyBatch) for their ec_tokens: (token, institution)."""
    import grpc

    from yibao.v1 import verifier_pb2, verifier_pb2_grpc

    out = []
    async with grpc.aio.insecure_channel(spec.target) as ch:
        stub = verifier_pb2_grpc.VerifierStub(ch)
        for i in range(0, len(reqs), 500):
            chunk = reqs[i : i + 500]
            reply = await stub.VerifyBatch(
                verifier_pb2.VerifyBatchRequest(
                    requests=[verifier_pb2.VerifyRequest(code=c, institution_code=inst, request_id=r) for c, inst, r in chunk]
                ),
                timeout=spec.call_timeout_s,
            )
            for (_, inst, _), resp in zip(chunk, reply.responses):
                if resp.outcome != verifier_pb2.OUTCOME_VALID:
                    raise RuntimeError(f"settle set-up: a code verified {verifier_pb2.Outcome.Name(resp.outcome)}")
                out.append((resp.ec_token, inst))
    return out


def _prepare(spec: Spec, worker: int, count: int) -> list[bytes]:
    """The serialized requests of one client process, one per call (one per
    message for the stream modes)."""
    from yibao.v1 import settlement_pb2, verifier_pb2

    if spec.mode in PEER_MODES:
        count = min(count, PEER_POOL)
    reqs = _issue(spec, worker, count)
    if spec.mode == "settle":
        tokens = asyncio.run(_tokens(spec, reqs))
        items = [
            settlement_pb2.SettleItem(item_code=a, name=b, quantity_milli=c, unit=d, unit_price_fen=e, amount_fen=f)
            for a, b, c, d, e, f in ITEMS
        ]
        return [
            settlement_pb2.SettleRequest(
                ec_token=token, institution_code=inst, order_id=f"{spec.run_tag}-{worker}-{i}",
                total_fen=TOTAL_FEN, account_pay_fen=ACCOUNT_PAY_FEN, items=items,
            ).SerializeToString()
            for i, (token, inst) in enumerate(tokens)
        ]
    one = [
        verifier_pb2.VerifyRequest(code=c, institution_code=inst, request_id=r).SerializeToString() for c, inst, r in reqs
    ]
    if spec.mode != "batch":
        return one
    batches = []
    for i in range(0, len(one) - spec.batch + 1, spec.batch):
        batch = verifier_pb2.VerifyBatchRequest()
        batch.requests.extend(verifier_pb2.VerifyRequest.FromString(b) for b in one[i : i + spec.batch])
        batches.append(batch.SerializeToString())
    return batches


# ---------------------------------------------------------------------------
# One client process
# ---------------------------------------------------------------------------
class _Recorder:
    __slots__ = ("done", "latency", "codes", "valid", "outcomes", "errors", "error_latency")

    def __init__(self) -> None:
        self.done: list[float] = []
        self.latency: list[float] = []
        self.codes: list[int] = []
        self.valid: list[int] = []
        self.outcomes: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        # status code name -> seconds from when each failed call was due to its answer
        self.error_latency: dict[str, list[float]] = {}

    def add(self, done: float, latency: float, codes: int, valid: int) -> None:
        self.done.append(done)
        self.latency.append(latency)
        self.codes.append(codes)
        self.valid.append(valid)


class _Client:
    def __init__(self, spec: Spec, worker: int, items: list[bytes], t0: float) -> None:
        import grpc

        from yibao.v1 import settlement_pb2, verifier_pb2

        self.spec, self.items, self.next = spec, items, 0
        self.t0 = t0
        self.t_end = t0 + spec.warmup_s + spec.duration_s
        self.rec = _Recorder()
        self.grpc = grpc
        mode = spec.mode
        if mode == "batch":
            decode = verifier_pb2.VerifyBatchResponse.FromString
            self.count = self._count_batch
        elif mode == "settle":
            decode = settlement_pb2.SettleResponse.FromString
            self.count = self._count_settle
        else:
            decode = verifier_pb2.VerifyResponse.FromString
            self.count = self._count_one
        self.codes_per_call = spec.batch if mode == "batch" else 1
        self.decode = decode
        self.VALID = verifier_pb2.OUTCOME_VALID
        self.SETTLED = settlement_pb2.SETTLE_OUTCOME_SETTLED
        self.outcome_name = verifier_pb2.Outcome.Name
        self.settle_name = settlement_pb2.SettleOutcome.Name
        # Open loop: this process's share of the offered rate, in calls (or
        # messages) per second, and its phase so that processes interleave.
        if spec.rate:
            calls_per_s = spec.rate / self.codes_per_call
            self.interval = spec.processes / calls_per_s
            self.phase = worker / calls_per_s
        self.cycle = mode in PEER_MODES
        self.expected_refusal = EXPECTED_REFUSAL.get(mode)

    def take(self) -> bytes | None:
        i = self.next
        if i >= len(self.items):
            if not self.cycle:
                return None
            i = i % len(self.items)
        self.next += 1
        return self.items[i]

    # answers -> (codes, expected ones)
    def _count_one(self, resp: Any) -> tuple[int, int]:
        if resp.outcome == self.VALID:
            return 1, 1
        self.rec.outcomes[self.outcome_name(resp.outcome)] += 1
        return 1, 0

    def _count_batch(self, resp: Any) -> tuple[int, int]:
        valid, n = 0, 0
        for r in resp.responses:
            n += 1
            if r.outcome == self.VALID:
                valid += 1
            else:
                self.rec.outcomes[self.outcome_name(r.outcome)] += 1
        return n, valid

    def _count_settle(self, resp: Any) -> tuple[int, int]:
        if resp.outcome == self.SETTLED:
            return 1, 1
        self.rec.outcomes[self.settle_name(resp.outcome)] += 1
        return 1, 0

    async def unary(self, item: bytes, due: float) -> None:
        try:
            resp = await self.method(item, timeout=self.spec.call_timeout_s)
        except self.grpc.aio.AioRpcError as e:
            if e.code().name == self.expected_refusal:
                now = time.monotonic()
                self.rec.add(now, now - due, 1, 1)
                return
            self.rec.errors[f"{e.code().name}: {(e.details() or '')[:80]}"] += 1
            self.rec.error_latency.setdefault(e.code().name, []).append(time.monotonic() - due)
            return
        now = time.monotonic()
        n, ok = self.count(resp)
        self.rec.add(now, now - due, n, ok)

    async def closed_caller(self) -> None:
        while time.monotonic() < self.t_end:
            item = self.take()
            if item is None:
                return
            await self.unary(item, time.monotonic())

    async def open_scheduler(self) -> None:
        """Calls due at t0 + phase + k * interval, at most --concurrency in flight."""
        limit = asyncio.Semaphore(self.spec.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        k = 0
        while True:
            due = self.t0 + self.phase + k * self.interval
            if due >= self.t_end:
                break
            item = self.take()
            if item is None:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await limit.acquire()

            async def one(item: bytes = item, due: float = due) -> None:
                try:
                    await self.unary(item, due)
                finally:
                    limit.release()

            t = asyncio.create_task(one())
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            k += 1
        if tasks:
            await asyncio.wait(tasks, timeout=self.spec.call_timeout_s + 5)

    async def stream(self, index: int) -> None:
        """One stream: a writer keeping up to --window messages in flight (or
        writing at its share of the offered rate), a reader matching answers
        to the times their requests were due, in order."""
        spec = self.spec
        call = self.method(timeout=spec.warmup_s + spec.duration_s + spec.call_timeout_s)
        sent: deque[float] = deque()
        window = asyncio.Semaphore(spec.window)
        if spec.rate:
            interval = self.interval * spec.concurrency
            phase = self.phase + index * self.interval

        async def writer() -> None:
            k = 0
            try:
                while True:
                    if spec.rate:
                        due = self.t0 + phase + k * interval
                        if due >= self.t_end:
                            break
                        delay = due - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    elif time.monotonic() >= self.t_end:
                        break
                    await window.acquire()
                    item = self.take()
                    if item is None:
                        break
                    sent.append(due if spec.rate else time.monotonic())
                    await call.write(item)
                    k += 1
                await call.done_writing()
            except self.grpc.aio.AioRpcError:
                pass  # the reader records it

        async def reader() -> None:
            try:
                while True:
                    resp = await call.read()
                    if resp is self.grpc.aio.EOF:
                        return
                    now = time.monotonic()
                    n, ok = self.count(resp)
                    self.rec.add(now, now - sent.popleft(), n, ok)
                    window.release()
            except self.grpc.aio.AioRpcError as e:
                self.rec.errors[f"{e.code().name}: {(e.details() or '')[:80]}"] += 1

        w = asyncio.create_task(writer())
        await reader()
        w.cancel()
        await asyncio.gather(w, return_exceptions=True)

    async def run(self) -> None:
        # Requests go out as prepared bytes; answers are decoded as a client would.
        self.channel = self.grpc.aio.insecure_channel(self.spec.target)
        path = PATHS[self.spec.mode]
        if self.spec.mode in STREAM_MODES:
            self.method = self.channel.stream_stream(path, request_serializer=None, response_deserializer=self.decode)
        else:
            self.method = self.channel.unary_unary(path, request_serializer=None, response_deserializer=self.decode)
        await asyncio.wait_for(self.channel.channel_ready(), 10)
        delay = self.t0 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        n = self.spec.concurrency
        if self.spec.mode in STREAM_MODES:
            jobs = [self.stream(i) for i in range(n)]
        elif self.spec.rate:
            jobs = [self.open_scheduler()]
        else:
            jobs = [self.closed_caller() for _ in range(n)]
        drain = self.spec.call_timeout_s + 10
        await asyncio.wait_for(asyncio.gather(*jobs), self.spec.warmup_s + self.spec.duration_s + drain)
        await self.channel.close()


def _worker(spec: Spec, worker: int, count: int, ready: Any, start: Any, out: Any) -> None:
    sys.path.insert(0, str(REPO))
    try:
        items = _prepare(spec, worker, count)
        # The client's own garbage collections would show as the server's
        # latency: the same settings as the node's.
        from server.gc_settings import quiet_collector

        quiet_collector()
        ready.put(("ready", worker, len(items)))
        t0 = start.get(timeout=600)
        client = _Client(spec, worker, items, t0)
        try:
            asyncio.run(client.run())
        except TimeoutError:
            client.rec.errors["CLIENT_TIMEOUT"] += 1
        ready.put(("done", worker, time.monotonic()))
        r = client.rec
        out.put((worker, r.done, r.latency, r.codes, r.valid, dict(r.outcomes), dict(r.errors), r.error_latency))
    except BaseException as e:  # reported to the parent
        import traceback

        ready.put(("failed", worker, traceback.format_exc()))
        raise SystemExit(1) from e


# ---------------------------------------------------------------------------
# The parent: set-up, the measured window, the figures
# ---------------------------------------------------------------------------
async def _open_accounts(spec: Spec) -> None:
    import grpc

    from yibao.v1 import admin_pb2, admin_pb2_grpc

    async with grpc.aio.insecure_channel(spec.target) as ch:
        stub = admin_pb2_grpc.AdminStub(ch)
        limit = asyncio.Semaphore(32)

        async def one(cid: str) -> None:
            async with limit:
                await stub.OpenAccount(
                    admin_pb2.OpenAccountRequest(
                        credential_id=cid, balance_fen=ACCOUNT_BALANCE_FEN, per_payment_limit_fen=ACCOUNT_BALANCE_FEN,
                        daily_limit_fen=ACCOUNT_BALANCE_FEN, insured_region=INSURED_REGION,
                    ),
                    timeout=spec.call_timeout_s,
                )

        await asyncio.gather(*(one(c) for c in _credential_ids(spec)))


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q / 100 * len(sorted_values)) - 1))]


def run(spec: Spec, *, log: Any = None, on_window: Any = None) -> Result:
    """One bounded run; returns its figures. `on_window()` is called as the
    measured window opens (e.g. to start a profiler); it must not block."""
    say = log or (lambda *a: None)
    if spec.mode == "settle":
        say(f"opening {spec.accounts} accounts")
        asyncio.run(_open_accounts(spec))
    ctx = mp.get_context("spawn")
    ready, start, out = ctx.Queue(), [ctx.Queue() for _ in range(spec.processes)], ctx.Queue()
    per = math.ceil(spec.max_codes / spec.processes)  # codes per process (batch mode groups them)
    procs = [
        ctx.Process(target=_worker, args=(spec, w, per, ready, start[w], out), daemon=True)
        for w in range(spec.processes)
    ]
    for p in procs:
        p.start()
    try:
        return _measure(spec, procs, ready, start, out, say, on_window)
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)


def _measure(spec: Spec, procs: list[Any], ready: Any, start: Any, out: Any, say: Any, on_window: Any) -> Result:
    t_prep = time.monotonic()
    say(f"preparing {spec.max_codes:,} codes in {spec.processes} processes")
    waiting = set(range(len(procs)))
    deadline = time.monotonic() + 900
    while waiting:
        try:
            kind, worker, info = ready.get(timeout=1)
        except queue.Empty:
            dead = [w for w in waiting if procs[w].exitcode is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"client processes {dead or sorted(waiting)} died or hung while preparing") from None
            continue
        if kind == "failed":
            raise RuntimeError(f"client process {worker} failed while preparing:\n{info}")
        waiting.discard(worker)
    say(f"prepared in {time.monotonic() - t_prep:.1f} s; running")
    t0 = time.monotonic() + 0.5
    for q in start:
        q.put(t0)
    t_window = t0 + spec.warmup_s
    t_end = t_window + spec.duration_s
    cpu = Cpu(spec.server_pids, spec.redis_pid)
    time.sleep(max(0.0, t_window - time.monotonic()))
    before = cpu.sample()
    if on_window is not None:
        on_window()
    # The window closes at t_end, or earlier when every process has run out of codes.
    finished = 0
    while finished < len(procs) and (left := t_end - time.monotonic()) > 0:
        try:
            kind, worker, info = ready.get(timeout=left)
        except queue.Empty:  # the time is up
            break
        if kind == "failed":
            raise RuntimeError(f"client process {worker} failed:\n{info}")
        finished += 1
    t_close = min(time.monotonic(), t_end)
    after = cpu.sample()
    server_d, redis_d, mine_d, busy_d = (a - b for a, b in zip(after, before))
    ended_by = "time" if t_close >= t_end - 1e-3 else "count"

    latencies: list[float] = []
    calls = codes = valid = 0
    outcomes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    error_latency: dict[str, list[float]] = {}
    for _ in procs:
        _, done, lat, n, ok, oc, er, el = out.get(timeout=spec.call_timeout_s + 60)
        outcomes.update(oc)
        errors.update(er)
        for code, values in el.items():
            error_latency.setdefault(code, []).extend(values)
        for d, la, c, v in zip(done, lat, n, ok):
            if t_window <= d <= t_close:
                calls += 1
                codes += c
                valid += v
                latencies.append(la)
    window = t_close - t_window
    latencies.sort()
    lat = {
        "p50": _percentile(latencies, 50) * 1e3,
        "p90": _percentile(latencies, 90) * 1e3,
        "p99": _percentile(latencies, 99) * 1e3,
        "p99.9": _percentile(latencies, 99.9) * 1e3,
        "max": (latencies[-1] if latencies else math.nan) * 1e3,
    }
    server_cpu = server_d if spec.server_pids else None
    redis_cpu = redis_d if spec.redis_pid else None
    clients = mine_d - server_d - redis_d
    return Result(
        mode=spec.mode,
        loop=f"open at {spec.rate:,.0f} codes/s" if spec.rate else "closed",
        processes=spec.processes,
        concurrency=spec.concurrency,
        window_s=window,
        ended_by=ended_by,
        calls=calls,
        codes=codes,
        valid=valid,
        other_outcomes=dict(outcomes),
        errors=dict(errors),
        error_latency_ms={
            code: {q: _percentile(values, float(q[1:])) * 1e3 for q in ("p50", "p99")} | {"max": values[-1] * 1e3}
            for code, values in ((c, sorted(v)) for c, v in error_latency.items())
        },
        codes_per_s=valid / window if window > 0 else 0.0,
        calls_per_s=calls / window if window > 0 else 0.0,
        latency_ms=lat,
        server_cpu_s=server_cpu,
        server_cpu_us_per_code=server_cpu / valid * 1e6 if server_cpu is not None and valid else None,
        server_cores=server_cpu / window if server_cpu is not None and window > 0 else None,
        redis_cpu_us_per_code=redis_cpu / valid * 1e6 if redis_cpu is not None and valid else None,
        offered_codes_per_s=spec.rate,
        client_cores=clients / window if window > 0 else 0.0,
        others_cores=max(0.0, busy_d - mine_d) / window if window > 0 else 0.0,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", required=True, help="HOST:PORT on the loopback")
    p.add_argument("--mode", required=True, choices=MODES)
    p.add_argument("--processes", type=int, default=2, help="client processes (default %(default)s)")
    p.add_argument("--concurrency", type=int, default=8, help="callers (streams) per process (default %(default)s)")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds (default %(default)s)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds before the window opens (default %(default)s)")
    p.add_argument("--rate", type=float, help="open loop: offered codes/s over all processes")
    p.add_argument("--max-codes", type=int, default=50_000, help="codes prepared, the run's count bound (default %(default)s)")
    p.add_argument("--batch", type=int, default=500, help="codes per VerifyBatch call (default %(default)s)")
    p.add_argument("--window", type=int, default=200, help="stream: messages in flight per stream (default %(default)s)")
    p.add_argument("--issuer-key", default="", help="hex private key of a key in the node's trust list")
    p.add_argument("--accounts", type=int, default=1000, help="settle: accounts opened (default %(default)s)")
    p.add_argument("--server-pid", type=int, action="append", default=[], help="count this process tree's CPU")
    p.add_argument("--redis-pid", type=int, help="count redis-server's CPU too")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    a = p.parse_args()
    spec = Spec(
        target=a.target, mode=a.mode, processes=a.processes, concurrency=a.concurrency, duration_s=a.duration,
        warmup_s=a.warmup, rate=a.rate, max_codes=a.max_codes, batch=a.batch, window=a.window,
        issuer_key=a.issuer_key, accounts=a.accounts, server_pids=a.server_pid, redis_pid=a.redis_pid,
    )
    result = run(spec, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(asdict(result), indent=1) if a.json else result.summary())


if __name__ == "__main__":
    main()
