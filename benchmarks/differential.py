"""Differential check of the core against OpenSSL (issue #5): codes issued
by yibao_core under trusted issuer keys, their signatures corrupted, and
yibao_core.check's verdict (VALID or BAD_SIGNATURE) compared with OpenSSL's
libcrypto verifying the same 63 signed bytes (credential-v1 sections 2-3:
payload bytes 0..62, SM2 with SM3 and the ID 1234567812345678) under the
issuer's public key.

    .venv/bin/python benchmarks/differential.py [--cases 1000000] [--seconds 3600]

Kinds of case: the signature as issued; one to three random bit flips in r
or in s; r or s set to 0, n or n+1; s = n - r (so r + s = n); the same key's
signature over other bytes; another trusted key's signature over these
bytes. Runs on every core (one process each). OpenSSL is called through
ctypes (libcrypto.so.3): d2i_PUBKEY on the key's DER SubjectPublicKeyInfo,
EVP_PKEY_CTX_set1_id, EVP_DigestVerifyInit with EVP_sm3, EVP_DigestVerify on
the DER signature; at start each process checks that the ID is really
applied (another ID must refuse a good signature). Every case also has an
expected verdict (only the untouched signature is valid). A disagreement,
or a verdict other than the expected one, is printed with the case in hex
and fails the run (exit 1). Issuer keys, fields and corruptions come from
--seed, so a run can be repeated.

The Rust leg (fast verifier against RustCrypto, same corruptions) is
`YIBAO_DIFF_CASES=1000000 cargo test --release --lib -- --ignored differential --nocapture`.
"""

from __future__ import annotations

import argparse
import ctypes
import multiprocessing
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import machine  # noqa: E402

import yibao_core  # noqa: E402

N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
DISTID = b"1234567812345678"
SIGNED_LEN = 63
ISSUER_KEYS = 4
CHUNK = 2000
# id-ecPublicKey with the curve SM2, then the BIT STRING holding 04||X||Y.
SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200")
REGIONS = ("440300", "110101", "310115", "510104", "650102")
#: kind -> weight; "valid" is the untouched signature, the only one expected to verify.
KINDS = {
    "valid": 4,
    "bit flips in r": 3,
    "bit flips in s": 3,
    "r = 0": 1,
    "s = 0": 1,
    "r = n": 1,
    "s = n": 1,
    "r = n+1": 1,
    "s = n+1": 1,
    "r + s = n": 1,
    "other message, same key": 2,
    "other key, same message": 2,
}


def der_signature(r: int, s: int) -> bytes:
    """DER SEQUENCE { INTEGER r, INTEGER s }; any r, s below 2^256 (0 and n+1 included)."""

    def integer(v: int) -> bytes:
        b = v.to_bytes(33, "big").lstrip(b"\0") or b"\0"
        if b[0] & 0x80:
            b = b"\0" + b
        return b"\x02" + bytes((len(b),)) + b

    body = integer(r) + integer(s)
    return b"\x30" + bytes((len(body),)) + body


class LibCrypto:
    """SM2 verification by OpenSSL's libcrypto, through ctypes."""

    def __init__(self) -> None:
        lib = ctypes.CDLL("libcrypto.so.3")
        vp, cp, sz = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t
        for name, res, args in (
            ("OpenSSL_version", cp, [ctypes.c_int]),
            ("d2i_PUBKEY", vp, [vp, ctypes.POINTER(cp), ctypes.c_long]),
            ("EVP_PKEY_is_a", ctypes.c_int, [vp, cp]),
            ("EVP_PKEY_free", None, [vp]),
            ("EVP_MD_CTX_new", vp, []),
            ("EVP_MD_CTX_free", None, [vp]),
            ("EVP_PKEY_CTX_new", vp, [vp, vp]),
            ("EVP_PKEY_CTX_free", None, [vp]),
            ("EVP_PKEY_CTX_set1_id", ctypes.c_int, [vp, cp, ctypes.c_int]),
            ("EVP_MD_CTX_set_pkey_ctx", None, [vp, vp]),
            ("EVP_sm3", vp, []),
            ("EVP_DigestVerifyInit", ctypes.c_int, [vp, vp, vp, vp, vp]),
            ("EVP_DigestVerify", ctypes.c_int, [vp, cp, sz, cp, sz]),
            ("ERR_clear_error", None, []),
        ):
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        self.lib = lib
        self.sm3 = lib.EVP_sm3()
        self.version = lib.OpenSSL_version(0).decode()

    def public_key(self, sec1: bytes) -> int:
        """An EVP_PKEY (SM2) from a 65-byte uncompressed point, via its DER SubjectPublicKeyInfo."""
        der = SPKI_PREFIX + sec1
        pp = ctypes.c_char_p(der)
        pkey = self.lib.d2i_PUBKEY(None, ctypes.byref(pp), len(der))
        if not pkey or self.lib.EVP_PKEY_is_a(pkey, b"SM2") != 1:
            raise RuntimeError(f"libcrypto did not load {sec1.hex()} as an SM2 key")
        return pkey

    def verify(self, pkey: int, message: bytes, der: bytes, distid: bytes = DISTID) -> int:
        """EVP_DigestVerify's return: 1 valid, 0 invalid, negative on error."""
        lib = self.lib
        mctx, pctx = lib.EVP_MD_CTX_new(), lib.EVP_PKEY_CTX_new(pkey, None)
        try:
            if not mctx or not pctx or lib.EVP_PKEY_CTX_set1_id(pctx, distid, len(distid)) != 1:
                raise RuntimeError("libcrypto: cannot set up an SM2 verification context")
            lib.EVP_MD_CTX_set_pkey_ctx(mctx, pctx)
            if lib.EVP_DigestVerifyInit(mctx, None, self.sm3, None, pkey) != 1:
                raise RuntimeError("libcrypto: EVP_DigestVerifyInit failed")
            return lib.EVP_DigestVerify(mctx, der, len(der), message, len(message))
        finally:
            lib.ERR_clear_error()
            lib.EVP_MD_CTX_free(mctx)
            lib.EVP_PKEY_CTX_free(pctx)


def issuer_keys(seed: int) -> list[bytes]:
    """ISSUER_KEYS private keys derived from the seed (valid scalars in [1, n-2])."""
    keys: list[bytes] = []
    i = 0
    while len(keys) < ISSUER_KEYS:
        k = yibao_core.sm3(b"differential issuer %d %d" % (seed, i))
        i += 1
        if 1 <= int.from_bytes(k, "big") <= N - 2:
            keys.append(k)
    return keys


def trust_list_json(publics: list[bytes]) -> str:
    entries = ",".join(
        '{"key_id": "%s", "public_key": "%s", "not_before": "2020-01-01T00:00:00Z",'
        ' "not_after": "2100-01-01T00:00:00Z", "issuer": "differential %d"}' % (yibao_core.key_id(p), p.hex(), i)
        for i, p in enumerate(publics)
    )
    return '{"version": 1, "keys": [%s]}' % entries


# ---- one process ----------------------------------------------------------
_state: dict = {}


def _init_worker(seed: int, now_ms: int, deadline: float) -> None:
    privs = issuer_keys(seed)
    publics = [yibao_core.sm2_public_key(k) for k in privs]
    ssl = LibCrypto()
    pkeys = [ssl.public_key(p) for p in publics]
    # The ID must be the one given: a good signature under another ID is refused.
    message = b"differential self-test"
    der = der_signature(*_split(yibao_core.sm2_sign(privs[0], message)))
    if ssl.verify(pkeys[0], message, der) != 1 or ssl.verify(pkeys[0], message, der, b"1234567812345679") == 1:
        raise RuntimeError("libcrypto does not verify SM2 with the ID as set: the comparison would mean nothing")
    _state.update(
        privs=privs, publics=publics, ssl=ssl, pkeys=pkeys, now_ms=now_ms, deadline=deadline,
        trust=yibao_core.TrustList.from_json(trust_list_json(publics)),
    )


def _split(raw: bytes) -> tuple[int, int]:
    return int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")


def _corrupt(kind: str, rng: random.Random, k: int, signed: bytes, r: int, s: int) -> tuple[int, int]:
    privs = _state["privs"]
    if kind == "valid":
        return r, s
    if kind.startswith("bit flips"):
        v = r if kind.endswith("r") else s
        for bit in rng.sample(range(256), rng.randint(1, 3)):
            v ^= 1 << bit
        return (v, s) if kind.endswith("r") else (r, v)
    fixed = {"0": 0, "n": N, "n+1": N + 1}
    if kind.startswith("r = "):
        return fixed[kind[4:]], s
    if kind.startswith("s = "):
        return r, fixed[kind[4:]]
    if kind == "r + s = n":
        return r, N - r
    if kind == "other message, same key":
        other = bytearray(signed)
        other[rng.randrange(SIGNED_LEN)] ^= 1 << rng.randrange(8)
        return _split(yibao_core.sm2_sign(privs[k], bytes(other)))
    if kind == "other key, same message":
        other_key = (k + rng.randrange(1, len(privs))) % len(privs)
        return _split(yibao_core.sm2_sign(privs[other_key], signed))
    raise ValueError(kind)


def _run_chunk(task: tuple[int, int, int]) -> tuple[Counter, list[str], int]:
    """Cases of one chunk: (tally of (kind, ours, theirs, rc sign), failures as text, cases run)."""
    chunk, count, seed = task
    st = _state
    rng = random.Random(seed * 1_000_003 + chunk)
    kinds, weights = list(KINDS), list(KINDS.values())
    tally: Counter = Counter()
    failures: list[str] = []
    done = 0
    for _ in range(count):
        if time.time() > st["deadline"]:
            break
        k = rng.randrange(len(st["privs"]))
        family = rng.random() < 0.1
        code = yibao_core.issue(
            st["privs"][k],
            credential_id=(b"\x01" + rng.randbytes(15)).hex(),
            insured_region=rng.choice(REGIONS),
            channel=rng.randint(1, 5),
            issued_at_ms=st["now_ms"] - rng.randrange(30_000),
            ttl_s=60,
            nonce=rng.randbytes(8),
            presenter_id=(b"\x02" + rng.randbytes(15)).hex() if family else None,
        )
        payload = yibao_core.base45_decode(code[4:])
        signed = payload[:SIGNED_LEN]
        kind = rng.choices(kinds, weights)[0]
        r, s = _corrupt(kind, rng, k, signed, *_split(payload[SIGNED_LEN:]))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        ours = yibao_core.check("YB1:" + yibao_core.base45_encode(signed + sig), st["trust"], st["now_ms"]).outcome
        rc = st["ssl"].verify(st["pkeys"][k], signed, der_signature(r, s))
        theirs = rc == 1
        rc_class = "1" if rc == 1 else "0" if rc == 0 else "<0"
        tally[(kind, ours, rc_class)] += 1
        done += 1
        expected = kind == "valid"
        if ours not in ("VALID", "BAD_SIGNATURE") or (ours == "VALID") != theirs or theirs != expected:
            failures.append(
                f"{kind}: yibao_core {ours}, OpenSSL EVP_DigestVerify={rc}, expected {'valid' if expected else 'invalid'}\n"
                f"  public key {st['publics'][k].hex()}\n  signed     {signed.hex()}\n"
                f"  r||s       {sig.hex()}\n  DER        {der_signature(r, s).hex()}"
            )
    return tally, failures, done


# ---- the run ----------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1_000_000, help="cases to run (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=3600, help="stop after this long (default %(default)s)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: one per core)")
    parser.add_argument("--seed", type=int, default=None, help="repeat a run (default: random, printed)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**63)
    load_start = os.getloadavg()[0]
    start = time.time()
    now_ms = int(start * 1000)
    ssl_version = LibCrypto().version
    print(f"Machine: {machine.describe()}")
    print(f"yibao_core {yibao_core.__version__} against {ssl_version} (libcrypto.so.3 via ctypes); "
          f"{args.cases:,} cases on {args.workers} processes, --seconds {args.seconds:g}, --seed {seed}", flush=True)

    tasks = [(i, min(CHUNK, args.cases - i * CHUNK), seed) for i in range((args.cases + CHUNK - 1) // CHUNK)]
    tally: Counter = Counter()
    failures: list[str] = []
    done = 0
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(args.workers, _init_worker, (seed, now_ms, start + args.seconds)) as pool:
        last_report = time.time()
        for chunk_tally, chunk_failures, n in pool.imap_unordered(_run_chunk, tasks):
            tally.update(chunk_tally)
            failures += chunk_failures
            done += n
            if time.time() - last_report >= 30:
                last_report = time.time()
                print(f"  {done:,} cases, {done / (last_report - start):,.0f}/s, "
                      f"{len(failures)} failures so far", file=sys.stderr, flush=True)
    elapsed = time.time() - start

    print(f"\n1-minute load average {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    print(f"{done:,} cases in {elapsed:.1f} s: {done / elapsed:,.0f} cases/s "
          "(issue, corrupt, yibao_core.check and an OpenSSL verify each)\n")
    print("| kind | cases | yibao_core VALID | OpenSSL accepted (rc 1) | OpenSSL rc 0 | OpenSSL rc < 0 | agree |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for kind in KINDS:
        rows = {key: n for key, n in tally.items() if key[0] == kind}
        total = sum(rows.values())
        ours_valid = sum(n for (_, ours, _), n in rows.items() if ours == "VALID")
        by_rc: Counter[str] = Counter()
        for (_, _, rc), n in rows.items():
            by_rc[rc] += n
        bad = sum(1 for f in failures if f.startswith(kind + ":"))
        print(f"| {kind} | {total:,} | {ours_valid:,} | {by_rc['1']:,} | {by_rc['0']:,} | {by_rc['<0']:,} | "
              f"{'yes' if not bad else f'NO: {bad}'} |")
    if done < args.cases:
        print(f"\nstopped by --seconds after {done:,} of {args.cases:,} cases")
    if failures:
        print(f"\n{len(failures)} FAILURES (disagreement or unexpected verdict):")
        for f in failures[:50]:
            print(f)
        if len(failures) > 50:
            print(f"... and {len(failures) - 50} more")
        return 1
    print(f"\nall {done:,} verdicts agree, and each is the expected one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
