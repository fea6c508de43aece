"""benchmarks/revocation_buckets.py at its smallest, so the command behind
the README's bucket figures keeps working: a row for each bucket size, each
with a measured cost. Speed is not judged here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_bucket_benchmark_prints_every_row() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "revocation_buckets.py"), "--ids", "250000"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ") and "buckets (" in line]
    assert [r.split("|")[1].strip() for r in rows] == [
        "100 million ids, 2^16 buckets (before)",
        "20 million ids, 2^16 buckets (before)",
        "100 million ids, 2^20 buckets (now)",
        "20 million ids, 2^20 buckets (now)",
    ], out.stdout
    for r in rows:
        us, rate, per_id = (float(c.strip().replace(",", "")) for c in r.split("|")[3:6])
        assert us > 0 and rate > 0 and per_id > 0, r


def test_too_few_ids_is_refused_by_name() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "revocation_buckets.py"), "--ids", "1000"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 2 and "--ids 1000" in out.stderr, out.stderr
