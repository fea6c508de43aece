"""Where the node's time goes: py-spy samples the node while the load
generator drives it, then the samples are summed by what the innermost known
frame belongs to (gRPC, Redis client, the per-code Python, the core, ...),
and by function.

    .venv/bin/python benchmarks/profile_node.py verify [--seconds 8] [--svg profile-verify.svg]
    .venv/bin/python benchmarks/profile_node.py batch          # also: stream, settle
    .venv/bin/python benchmarks/profile_node.py --raw FILE      # summarise a py-spy raw file

Needs py-spy (the ``bench`` extra) and ptrace on the node, which a process
may do to its own children unless /proc/sys/kernel/yama/ptrace_scope forbids
it. py-spy sees Python frames; time spent inside a C extension is charged to
the Python line that called it, and grpc.aio's Cython code shows as
asyncio's ``Handle._run`` with nothing below it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

# (what, needles): a sample belongs to the first of these that any of its
# frames matches, innermost frame first ...
OWNERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core check called inline (small batches)", ("VerifyEngine.verify.<locals>.<listcomp>",)),
    ("responses: VerifyResponse fields", ("VerifyEngine._response", "_set_ms", "well_known_types")),
    ("ec_token (tokens.mint)", ("tokens.py", "hmac.py", "base64.py")),
    ("Redis client (redis-py: pack, send, parse, pool)", ("redis/",)),
    ("replay record: fingerprints, admissions, local record", ("_record_replays", "_fingerprint", "national.py")),
    ("request validation", ("validation.py",)),
    ("settlement: ledger, receipts (SM2 signature), audit", ("settlement.py", "ledger.py", "receipts.py", "audit.py")),
    ("metrics (prometheus_client, interceptor)", ("prometheus_client", "metrics.py", "interceptor.py")),
    ("Batcher, handlers, engine bookkeeping", ("Batcher", "verifier.py", "VerifyEngine.verify")),
)
# ... else to the first of these.
GENERIC: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("thread hand-offs (executor, call_soon_threadsafe)", ("concurrent/futures", "threading.py", "_write_to_self",
                                                          "_read_from_self", "run_in_executor")),
    ("event loop: epoll, tasks, scheduling (mostly grpc.aio's own)", ("asyncio/", "selectors.py")),
)
GRPC = "gRPC (grpc.aio Cython: calls, (de)serialising, HTTP/2)"


def categorise(frames: list[str]) -> str:
    # grpc.aio runs its Cython coroutines from Handle._run: a sample whose
    # innermost Python frame is Handle._run is time inside grpc.
    if frames[-1].startswith("Handle._run"):
        return GRPC
    for table in (OWNERS, GENERIC):
        for frame in reversed(frames):
            for what, needles in table:
                if any(n in frame for n in needles):
                    return what
    return "other"


def summarise(raw: Path, top: int = 25) -> str:
    by_cat: Counter[str] = Counter()
    by_leaf: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        total += int(n)
        by_cat[categorise(frames)] += int(n)
        by_leaf[frames[-1]] += int(n)
    out = [f"{total} samples of the thread holding the GIL\n", "| where | share |", "|---|---:|"]
    out += [f"| {what} | {n / total:.1%} |" for what, n in by_cat.most_common()]
    out += ["", "| innermost Python frame | share |", "|---|---:|"]
    out += [f"| `{f}` | {n / total:.1%} |" for f, n in by_leaf.most_common(top)]
    return "\n".join(out)


def record(mode: str, seconds: float, svg: Path | None) -> Path:
    import load

    from server.local import Issuer, Node, Redis

    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    tmp = Path(tempfile.mkdtemp(prefix="yibao-profile-"))
    redis = Redis(tmp / "redis").start()
    issuer = Issuer.create(tmp)
    node = Node(tmp, redis.url, issuer.trust_list_path).start()
    assert node.proc is not None
    try:
        per_s = {"verify": 2_500, "batch": 28_000, "stream": 10_000, "settle": 1_500}[mode]
        spec = load.Spec(
            target=node.target, mode=mode, processes=2, concurrency={"verify": 16, "batch": 2, "stream": 4, "settle": 16}[mode],
            duration_s=seconds * (2 if svg else 1) + 3, warmup_s=1, max_codes=int(per_s * (seconds + 4)), window=100,
            issuer_key=issuer.private_key.hex(), server_pids=[node.proc.pid],
        )
        raw = tmp / f"{mode}.raw"
        # --gil: only the thread holding the GIL, i.e. the event loop's
        # Python work, the resource that runs out (the core's check_batch
        # runs without the GIL on its own threads, and grpc's C-core threads
        # never hold it). Started when the load generator's measured window
        # opens, after its set-up (issuing codes, opening accounts).
        pid = str(node.proc.pid)
        cmd = [pyspy, "record", "--pid", pid, "--duration", str(int(seconds)), "--gil", "--rate", "250"]

        def spy() -> None:
            subprocess.run([*cmd, "--format", "raw", "-o", str(raw)], capture_output=True, timeout=seconds + 60, check=False)
            if svg:  # a flame graph of a second window of the same length
                subprocess.run([*cmd, "-o", str(svg)], capture_output=True, timeout=seconds + 60, check=False)

        spies = [threading.Thread(target=spy)]
        result = [load.run(spec, on_window=spies[0].start)]
        spies[0].join(2 * seconds + 120)
        if result:
            print(f"load during the profile: {result[0].summary()}\n")
        return raw
    finally:
        node.stop()
        redis.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", nargs="?", choices=("verify", "batch", "stream", "settle"))
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--svg", type=Path, help="also write a flame graph (SVG) of the same window")
    p.add_argument("--raw", type=Path, help="summarise this py-spy raw file instead of recording")
    a = p.parse_args()
    if a.raw:
        print(summarise(a.raw))
        return
    if not a.mode:
        p.error("a mode, or --raw FILE")
    raw = record(a.mode, a.seconds, a.svg)
    print(summarise(raw))
    print(f"\nraw samples: {raw}")


if __name__ == "__main__":
    main()
