"""The README's command for several provinces on one machine
(`scripts/federation`, which runs `python -m server.federation` once set
up): it prints every address and a settled 异地就医 sample, the `yibao`
command it prints reads that account through a third province's node, and
Ctrl-C stops everything it started."""

from __future__ import annotations

import os
import re
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _lines_until(printed: queue.Queue[str], proc: subprocess.Popen[str], last: str, timeout_s: float) -> list[str]:
    """What `proc` printed up to the line starting with `last`, bounded in time."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while not (seen and seen[-1].startswith(last)):
        left = deadline - time.monotonic()
        assert left > 0 and proc.poll() is None, f"no {last!r} line within {timeout_s:g} s; printed: {seen}"
        try:
            seen.append(printed.get(timeout=min(left, 1.0)))
        except queue.Empty:
            pass
    return seen


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_scripts_federation_starts_three_provinces_and_stops_them_on_ctrl_c() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "server.federation"], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    printed: queue.Queue[str] = queue.Queue()
    # Read by a thread, so that a silent process cannot hang the test.
    reader = threading.Thread(target=lambda: [printed.put(x.rstrip("\n")) for x in proc.stdout or ()], daemon=True)
    reader.start()
    try:
        lines = _lines_until(printed, proc, "running", 90)
        text = "\n".join(lines)
        for p in ("11", "44", "65"):
            assert re.search(rf"^province {p}: node 127\.0\.0\.1:\d+ ", text, re.M), text
        assert "insured in 44, treated in 11: OUTCOME_VALID, then SETTLE_OUTCOME_SETTLED by province 44" in text
        listed = "\n".join(line for line in lines if not line.startswith("try: "))
        ports = [int(x) for x in re.findall(r"127\.0\.0\.1:(\d+)", listed)]
        assert len(ports) == 1 + 3 * 3 and all(_listening(x) for x in ports), text

        (try_line,) = [line.removeprefix("try: ") for line in lines if line.startswith("try: ")]
        argv = shlex.split(try_line)
        argv[0] = str(Path(sys.executable).parent / "yibao")  # the printed .venv/bin/yibao, wherever the venv is
        shown = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=30)
        assert shown.returncode == 0, shown.stderr
        assert re.search(r"^balance +400\.00 ", shown.stdout, re.M), shown.stdout

        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        assert not [x for x in ports if _listening(x)], "something it started still listens"
    finally:
        if proc.poll() is None:  # the test failed midway: still stop what it started
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        reader.join(10)
        if proc.stdout is not None:
            proc.stdout.close()
