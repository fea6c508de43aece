"""Micro-benchmarks of the core's Python entry points (pytest-benchmark):

    .venv/bin/python -m pytest benchmarks/test_micro.py --benchmark-only

Add `--benchmark-columns=min,median,mean,ops,rounds` for a narrower table.
The file is outside tests/, so the main suite (testpaths = ["tests"]) does not collect
it; it runs under the repo's pytest settings (warnings are errors). The
trust list and codes come from benchmarks/core.py's fixture: one issuer key,
codes issued now with yibao_core.issue, all VALID. Each test also asserts
the result, so a figure is never that of a failing call.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import core  # noqa: E402  (benchmarks/core.py)

import yibao_core  # noqa: E402

BATCH = 500


@pytest.fixture(scope="module")
def issued() -> tuple[yibao_core.TrustList, list[str], int]:
    return core.fixture()


def test_check_one_code(benchmark, issued) -> None:
    trust, codes, now = issued
    result = benchmark(yibao_core.check, codes[0], trust, now)
    assert result.outcome == "VALID"


@pytest.mark.parametrize(
    "threads", [1, os.cpu_count() or 1], ids=["1-thread", f"{os.cpu_count() or 1}-threads"]
)
def test_check_batch_500(benchmark, issued, threads: int) -> None:
    trust, codes, now = issued
    batch = codes[:BATCH]
    benchmark.extra_info["codes per call"] = BATCH
    results = benchmark(yibao_core.check_batch, batch, trust, now, threads=threads)
    assert len(results) == BATCH and all(r.outcome == "VALID" for r in results)


def test_sm3_credential_message(benchmark) -> None:
    """SM3 of 63 bytes: the signed part of a credential payload."""
    message = os.urandom(63)
    assert len(benchmark(yibao_core.sm3, message)) == 32


def test_base45_decode_code(benchmark, issued) -> None:
    """Base45 of a whole code (191 characters after the prefix, 127 bytes)."""
    _, codes, _ = issued
    text = codes[0].removeprefix("YB1:")
    assert len(benchmark(yibao_core.base45_decode, text)) == 127


def test_sm2_verify_reference(benchmark) -> None:
    """RustCrypto's verifier (the reference): parses the key and computes Z_A on every call."""
    key = yibao_core.sm2_generate_private_key()
    public, message = yibao_core.sm2_public_key(key), os.urandom(63)
    signature = yibao_core.sm2_sign(key, message)
    assert benchmark(yibao_core.sm2_verify, public, message, signature) is True


def test_issue(benchmark) -> None:
    key = yibao_core.sm2_generate_private_key()
    code = benchmark(
        yibao_core.issue,
        key,
        credential_id=os.urandom(16).hex(),
        insured_region="440300",
        channel=2,
        issued_at_ms=1_790_000_000_000,
    )
    assert code.startswith("YB1:") and len(code) == 195
