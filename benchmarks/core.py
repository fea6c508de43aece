"""Verifications per second of the Rust core, one thread and batch, beside
its peers measured in the same run: `openssl speed` (OpenSSL's SM2 verify
and its assembly-optimised P-256 ECDSA verify) and the pure-Python `gmssl`
package. Prints a Markdown table; ratios are ours / OpenSSL SM2 verify.

    .venv/bin/python benchmarks/core.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import machine  # noqa: E402

import yibao_core  # noqa: E402

CODES = 2000


def rate(run_once: Callable[[], int], seconds: float) -> float:
    """Items per second of repeated calls, over at least `seconds`."""
    run_once()  # warm-up: tables, caches, thread pools
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        done += run_once()
    return done / elapsed


def openssl_verify_rates(seconds: float) -> dict[str, float]:
    out = subprocess.run(
        ["openssl", "speed", "-seconds", str(max(1, int(seconds))), "sm2", "ecdsap256"],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout
    rates = {}
    for label, pattern in (("sm2", r"SM2 \(CurveSM2\)"), ("p256", r"ecdsa \(nistp256\)")):
        m = re.search(pattern + r"\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", out)
        if not m:
            raise RuntimeError(f"cannot read openssl speed output for {label}:\n{out}")
        rates[label] = float(m.group(2))
    return rates


def gmssl_verify_rate(seconds: float) -> float:
    from gmssl import sm2

    key = yibao_core.sm2_generate_private_key()
    public = yibao_core.sm2_public_key(key)
    crypt = sm2.CryptSM2(private_key=key.hex(), public_key=public[1:].hex())
    message = os.urandom(63)
    signature = crypt.sign_with_sm3(message)
    assert crypt.verify_with_sm3(signature, message)
    return rate(lambda: int(crypt.verify_with_sm3(signature, message)), seconds)


def fixture() -> tuple[yibao_core.TrustList, list[str], int]:
    key = yibao_core.sm2_generate_private_key()
    public = yibao_core.sm2_public_key(key)
    trust = yibao_core.TrustList.from_json(
        '{"version": 1, "keys": [{"key_id": "%s", "public_key": "%s", "not_before": "2020-01-01T00:00:00Z",'
        ' "not_after": "2100-01-01T00:00:00Z", "issuer": "bench"}]}' % (yibao_core.key_id(public), public.hex())
    )
    now = int(time.time() * 1000)
    codes = [
        yibao_core.issue(key, credential_id=os.urandom(16).hex(), insured_region="440300", channel=2, issued_at_ms=now)
        for _ in range(CODES)
    ]
    return trust, codes, now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per figure (default %(default)s)")
    args = parser.parse_args()
    trust, codes, now = fixture()
    assert all(r.outcome == "VALID" for r in yibao_core.check_batch(codes, trust, now))

    def one_thread() -> int:
        for c in codes[:200]:
            yibao_core.check(c, trust, now)
        return 200

    cores = os.cpu_count() or 1
    ours_1 = rate(one_thread, args.seconds)
    ours_batch = rate(lambda: len(yibao_core.check_batch(codes, trust, now, threads=cores)), args.seconds)
    ours_batch_1 = rate(lambda: len(yibao_core.check_batch(codes, trust, now, threads=1)), args.seconds)
    ssl = openssl_verify_rates(args.seconds)
    gm = gmssl_verify_rate(args.seconds)

    base = ssl["sm2"]
    rows = [
        ("yibao_core.check, one thread (whole code: Base45, checks, SM2)", ours_1),
        ("yibao_core.check_batch, 1 thread", ours_batch_1),
        (f"yibao_core.check_batch, {cores} threads", ours_batch),
        ("openssl speed sm2: SM2 verify", base),
        ("openssl speed ecdsap256: P-256 verify (assembly)", ssl["p256"]),
        ("gmssl (pure Python) verify_with_sm3", gm),
    ]
    print(f"Machine: {machine.describe()}\n")
    print("| what | verifications/s | vs OpenSSL SM2 |")
    print("|---|---:|---:|")
    for name, value in rows:
        print(f"| {name} | {value:,.0f} | {value / base:.2f}x |")
    print(f"\nbatch speed-up over one thread: {ours_batch / ours_batch_1:.2f}x on {cores} threads")
    print(f"one thread vs P-256 (OpenSSL assembly): {ours_1 / ssl['p256']:.2f}x")


if __name__ == "__main__":
    main()
