"""Verifications per second of the Rust core, one thread and batch, beside
its peers measured in the same run: `openssl speed` (OpenSSL's SM2 verify
and its assembly-optimised P-256 ECDSA verify), the pure-Python `gmssl`
package, and the PyPI bindings `tongsuopy` (Tongsuo, an OpenSSL 3 fork) and
`gmssl-pyx` (GmSSL 3). Each Python peer verifies, with SM3 and the default
ID 1234567812345678, a signature our core made over 63 bytes (the signed
part of a credential), and is first checked to accept it and to refuse it
with one bit flipped. Prints a Markdown table; ratios are ours / OpenSSL
SM2 verify. A peer that cannot be imported gets no figure, only the reason.

    .venv/bin/python benchmarks/core.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import importlib.metadata
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


def _der_int(v: int) -> bytes:
    b = v.to_bytes(33, "big").lstrip(b"\0")
    b = b"\0" + b if not b or b[0] & 0x80 else b
    return b"\x02" + bytes((len(b),)) + b


def raw_to_der(sig: bytes) -> bytes:
    """Raw r||s (64 bytes) to DER SEQUENCE { INTEGER r, INTEGER s }, as the peers take it."""
    body = _der_int(int.from_bytes(sig[:32], "big")) + _der_int(int.from_bytes(sig[32:], "big"))
    return b"\x30" + bytes((len(body),)) + body


def ours_signed() -> tuple[bytes, bytes, bytes, bytes]:
    """(public key, message, raw signature, a wrong message): a signature by our
    core over a credential's 63 signed bytes, for a peer to verify."""
    key = yibao_core.sm2_generate_private_key()
    message = os.urandom(63)
    wrong = bytes((message[0] ^ 1,)) + message[1:]
    return yibao_core.sm2_public_key(key), message, yibao_core.sm2_sign(key, message), wrong


def tongsuopy_verify_rate(seconds: float) -> float:
    from tongsuopy.crypto import hashes
    from tongsuopy.crypto.asymciphers import ec
    from tongsuopy.crypto.exceptions import InvalidSignature

    public, message, signature, wrong = ours_signed()
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SM2(), public)
    der = raw_to_der(signature)
    # tongsuopy sets no SM2 ID of its own: Tongsuo's default is 1234567812345678,
    # which is what accepting our signature (and refusing a changed message) shows.
    key.verify(der, message, ec.ECDSA(hashes.SM3()))
    try:
        key.verify(der, wrong, ec.ECDSA(hashes.SM3()))
    except InvalidSignature:
        pass
    else:
        raise AssertionError("tongsuopy accepted a signature over another message")

    def once() -> int:
        key.verify(der, message, ec.ECDSA(hashes.SM3()))  # raises unless valid
        return 1

    return rate(once, seconds)


def gmssl_pyx_verify_rate(seconds: float) -> float:
    import gmssl_pyx

    public, message, signature, wrong = ours_signed()
    der, xy = raw_to_der(signature), public[1:]
    assert gmssl_pyx.sm2_verify(xy, message, der, signer_id=b"1234567812345678")
    # GmSSL prints a line to stderr for every failed verification; one is expected here.
    assert not gmssl_pyx.sm2_verify(xy, wrong, der, signer_id=b"1234567812345678")
    return rate(lambda: int(gmssl_pyx.sm2_verify(xy, message, der, signer_id=b"1234567812345678")), seconds)


def peer_rate(measure: Callable[[float], float], seconds: float) -> float | str:
    """The peer's rate, or why it has none (it is not installed or cannot load here)."""
    try:
        return measure(seconds)
    except ImportError as e:
        return f"cannot be imported: {e} (install the `bench` extra: pip install -e '.[bench]')"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


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
    load_start = os.getloadavg()[0]
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
    tongsuo = peer_rate(tongsuopy_verify_rate, args.seconds)
    pyx = peer_rate(gmssl_pyx_verify_rate, args.seconds)

    base = ssl["sm2"]
    rows: list[tuple[str, float | str]] = [
        ("yibao_core.check, one thread (whole code: Base45, checks, SM2)", ours_1),
        ("yibao_core.check_batch, 1 thread", ours_batch_1),
        (f"yibao_core.check_batch, {cores} threads", ours_batch),
        ("openssl speed sm2: SM2 verify", base),
        ("openssl speed ecdsap256: P-256 verify (assembly)", ssl["p256"]),
        ("gmssl (pure Python) verify_with_sm3", gm),
        (f"tongsuopy {_version('tongsuopy')} (Tongsuo via cffi) verify, SM3", tongsuo),
        (f"gmssl-pyx {_version('gmssl-pyx')} (GmSSL 3 via C extension) sm2_verify", pyx),
    ]
    print(f"Machine: {machine.describe()}")
    print(f"1-minute load average {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end\n")
    print("| what | verifications/s | vs OpenSSL SM2 |")
    print("|---|---:|---:|")
    for name, value in rows:
        if isinstance(value, str):
            print(f"| {name} | no figure: {value} | — |")
        else:
            print(f"| {name} | {value:,.0f} | {value / base:.2f}x |")
    print(f"\nbatch speed-up over one thread: {ours_batch / ours_batch_1:.2f}x on {cores} threads")
    print(f"one thread vs P-256 (OpenSSL assembly): {ours_1 / ssl['p256']:.2f}x")


if __name__ == "__main__":
    main()
