"""benchmarks/node.py must keep working: its --quick smoke run starts Redis,
a node and the peers, drives every mode of the load generator and prints
every figure of issue 5. Its figures mean nothing here (seconds of load on a
busy machine), so nothing is asserted about speed; what is asserted is that
every run measured calls, that every call was answered with the outcome
expected (VALID, SETTLED) and without an error, and that every figure is
there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

FIGURES = (
    "Node VerifyBatch (500 per call), codes/s",
    "Node VerifyBatch, server CPU per code",
    "Node VerifyStream, messages/s",
    "Node Verify, calls/s (closed loop)",
    "Node Verify, p99 at half of the empty rate",
    "Node Verify, p99 at half of its own closed-loop rate",
    "Node Settle, calls/s (closed loop)",
    "Node Settle, p99 at a third of the empty rate",
    "Node Settle, p99 at a third of its own closed-loop rate",
)


def test_every_figure_is_measured_by_the_quick_run(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "node.py"), "all", "--quick", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=280,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    result = json.loads(out.read_text())
    names = [row["what"] for row in result["rows"]]
    for figure in FIGURES:
        assert any(name.startswith(figure) for name in names), (figure, names)
    modes = {run["mode"] for run in result["runs"]}
    assert modes == {"batch", "stream", "echo", "verify", "empty", "settle"}
    for run in result["runs"]:
        assert run["calls"] > 0 and run["codes_per_s"] > 0, run
        assert run["valid"] == run["codes"] and not run["other_outcomes"], run
        if run["offered_codes_per_s"] is None:  # closed loop: no call may fail
            assert not run["errors"], run
        assert run["server_cpu_us_per_code"] > 0, run
