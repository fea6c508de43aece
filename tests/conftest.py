"""Shared fixtures and independent reference helpers for the yibao-verify tests.

The helpers here (Base45, the payload layout of credential-v1 section 2, a
model of the checks of section 4, DER for SM2 signatures, SM3, plain affine
arithmetic on sm2p256v1) are written from the spec alone, in plain Python, so
that the Rust core is compared with something that does not share its code.
They are exposed through the session fixture ``ref`` (a namespace), not by
importing this module.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, settings

# --------------------------------------------------------------------------
# Hypothesis: deterministic for CI (same examples every run, no database).
# Select another profile with HYPOTHESIS_PROFILE=dev (random, more examples).
# --------------------------------------------------------------------------
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=200,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    derandomize=False,
    deadline=None,
    database=None,
    max_examples=2000,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# --------------------------------------------------------------------------
# Spec location
# --------------------------------------------------------------------------
def _spec_dir() -> Path:
    env = os.environ.get("YIBAO_SPEC_DIR")
    if env:
        return Path(env).resolve()
    # <parent of repo>/shared/spec ; this file is <repo>/tests/conftest.py
    return Path(__file__).resolve().parents[2] / "shared" / "spec"


def _load_vectors() -> dict:
    path = _spec_dir() / "vectors" / "cases.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"credential-v1 test vectors not found at {path}; "
            "set YIBAO_SPEC_DIR to the directory holding credential-v1.md and vectors/"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise any test taking ``vector_case`` over every case of cases.json, by name."""
    if "vector_case" in metafunc.fixturenames:
        cases = _load_vectors()["cases"]
        metafunc.parametrize("vector_case", cases, ids=[c["name"] for c in cases])


@pytest.fixture(scope="session")
def spec_dir() -> Path:
    d = _spec_dir()
    if not (d / "credential-v1.md").is_file():
        pytest.fail(f"credential-v1 spec not found in {d} (set YIBAO_SPEC_DIR)")
    return d


@pytest.fixture(scope="session")
def vectors(spec_dir: Path) -> dict:
    return json.loads((spec_dir / "vectors" / "cases.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def cases(vectors: dict) -> list[dict]:
    return vectors["cases"]


@pytest.fixture(scope="session")
def trust_list_text(spec_dir: Path) -> str:
    return (spec_dir / "vectors" / "trust-list.json").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def trust_list_data(trust_list_text: str) -> dict:
    return json.loads(trust_list_text)


@pytest.fixture(scope="session")
def trust_list(trust_list_text: str):
    import yibao_core

    return yibao_core.TrustList.from_json(trust_list_text)


# --------------------------------------------------------------------------
# OpenSSL CLI (required, never skipped)
# --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def openssl() -> str:
    exe = os.environ.get("OPENSSL") or shutil.which("openssl")
    if not exe:
        pytest.fail(
            "the OpenSSL 3 command line tool `openssl` is required by the interoperability "
            "tests and was not found on PATH (install the Debian package `openssl`, "
            "or point $OPENSSL at it)",
            pytrace=False,
        )
    out = subprocess.run([exe, "version"], capture_output=True, text=True, check=False)
    version = out.stdout.strip()
    if out.returncode != 0 or not version.startswith("OpenSSL 3"):
        pytest.fail(f"`{exe} version` gave {version!r}; OpenSSL 3.x is required", pytrace=False)
    probe = subprocess.run(
        [exe, "ecparam", "-name", "SM2", "-noout"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        pytest.fail(f"{version} has no SM2 support: {probe.stderr.strip()}", pytrace=False)
    return exe


# --------------------------------------------------------------------------
# Reference helpers (independent of the Rust core)
# --------------------------------------------------------------------------
B45_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_B45_INDEX = {c: i for i, c in enumerate(B45_ALPHABET)}
PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 "
    "61 62 63 64 65".split()
)
#: ASCII white space a verifier strips from both ends. VT (0x0b) is left out on
#: purpose: whether it counts is not settled by the spec, so tests avoid it.
ASCII_WS = " \t\n\r\f"
OUTCOMES = (
    "VALID",
    "MALFORMED",
    "UNSUPPORTED_VERSION",
    "UNKNOWN_KEY",
    "KEY_NOT_VALID",
    "NOT_YET_VALID",
    "EXPIRED",
    "BAD_SIGNATURE",
    "REVOKED",
    "CHANNEL_REVOKED",
    "REPLAYED",
)
PAYLOAD_LEN = 127
SIGNED_LEN = 63
DEFAULT_ID = b"1234567812345678"

# sm2p256v1 (GB/T 32918.5)
SM2_P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
SM2_A = SM2_P - 3
SM2_B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
SM2_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
SM2_GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
SM2_GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0


def b45encode(data: bytes) -> str:
    out = []
    for i in range(0, len(data) - 1, 2):
        v = data[i] * 256 + data[i + 1]
        c, v = divmod(v, 45)[::-1]
        d, e = divmod(v, 45)[::-1]
        out += [B45_ALPHABET[c], B45_ALPHABET[d], B45_ALPHABET[e]]
    if len(data) % 2:
        v = data[-1]
        out += [B45_ALPHABET[v % 45], B45_ALPHABET[v // 45]]
    return "".join(out)


def b45decode(text: str) -> bytes | None:
    """RFC 9285 decoding; None where a strict decoder must refuse."""
    if len(text) % 3 == 1:
        return None
    out = bytearray()
    for i in range(0, len(text), 3):
        group = text[i : i + 3]
        try:
            vals = [_B45_INDEX[c] for c in group]
        except KeyError:
            return None
        if len(vals) == 3:
            v = vals[0] + vals[1] * 45 + vals[2] * 2025
            if v > 0xFFFF:
                return None
            out += bytes((v >> 8, v & 0xFF))
        else:
            v = vals[0] + vals[1] * 45
            if v > 0xFF:
                return None
            out.append(v)
    return bytes(out)


def iso_ms(text: str) -> int:
    return int(_dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def ms_iso(ms: int) -> str:
    assert ms % 1000 == 0
    return _dt.datetime.fromtimestamp(ms // 1000, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _id16(v: str | bytes | None) -> bytes:
    if v is None:
        return bytes(16)
    if isinstance(v, str):
        v = bytes.fromhex(v)
    assert len(v) == 16
    return v


def build_body(
    *,
    key_id: bytes | str,
    credential_id: str | bytes,
    insured_region: str | bytes = "440300",
    channel: int = 2,
    issued_at_ms: int,
    ttl_s: int = 60,
    nonce: bytes = b"\x01\x02\x03\x04\x05\x06\x07\x08",
    presenter_id: str | bytes | None = None,
    flags: int | None = None,
    version: int = 1,
) -> bytes:
    """Bytes 0..62 of a credential-v1 payload (section 2), no rule enforced."""
    if isinstance(key_id, str):
        key_id = bytes.fromhex(key_id)
    if isinstance(insured_region, str):
        insured_region = insured_region.encode("ascii")
    if flags is None:
        flags = 1 if presenter_id is not None else 0
    body = (
        bytes((version, flags))
        + key_id
        + _id16(credential_id)
        + _id16(presenter_id)
        + insured_region
        + bytes((channel,))
        + struct.pack(">QH", issued_at_ms, ttl_s)
        + nonce
    )
    assert len(body) == SIGNED_LEN, len(body)
    return body


def parse_payload(p: bytes) -> dict:
    assert len(p) == PAYLOAD_LEN
    issued, ttl = struct.unpack(">QH", p[45:55])
    return {
        "version": p[0],
        "flags": p[1],
        "key_id": p[2:6].hex().upper(),
        "credential_id": p[6:22].hex().upper(),
        "presenter_id": p[22:38].hex().upper(),
        "insured_region": p[38:44].decode("latin-1"),
        "channel": p[44],
        "issued_at_ms": issued,
        "ttl_s": ttl,
        "nonce": p[55:63].hex().upper(),
        "signature": p[63:],
    }


def code_of(payload: bytes) -> str:
    return "YB1:" + b45encode(payload)


def payload_of(code: str) -> bytes:
    t = code.strip(ASCII_WS)
    assert t.startswith("YB1:")
    p = b45decode(t[4:])
    assert p is not None
    return p


def model_outcome(code: str, keys: list[dict], now_ms: int, skew_ms: int, good_payloads) -> str:
    """Steps 1 to 5 of credential-v1 section 4, with the signature step
    answered by membership in ``good_payloads`` (payloads known to carry a
    valid signature). ``keys``: dicts with key_id (8 hex), not_before_ms,
    not_after_ms."""
    t = code.strip(ASCII_WS)
    if not t.startswith("YB1:"):
        return "MALFORMED"
    p = b45decode(t[4:])
    if not p:
        return "MALFORMED"
    if p[0] != 1:
        return "UNSUPPORTED_VERSION"
    if len(p) != PAYLOAD_LEN:
        return "MALFORMED"
    f = parse_payload(p)
    cred, pres = p[6:22], p[22:38]
    if f["flags"] & 0xFE:
        return "MALFORMED"
    if cred == bytes(16):
        return "MALFORMED"
    if f["flags"] & 1:
        if pres == bytes(16) or pres == cred:
            return "MALFORMED"
    elif pres != bytes(16):
        return "MALFORMED"
    region = p[38:44]
    if not all(0x30 <= b <= 0x39 for b in region) or region[:2].decode() not in PROVINCES:
        return "MALFORMED"
    if not 1 <= f["channel"] <= 5:
        return "MALFORMED"
    if not 1 <= f["ttl_s"] <= 300:
        return "MALFORMED"
    matching = [k for k in keys if k["key_id"].upper() == f["key_id"]]
    if not matching:
        return "UNKNOWN_KEY"
    issued = f["issued_at_ms"]
    if not any(k["not_before_ms"] <= issued < k["not_after_ms"] for k in matching):
        return "KEY_NOT_VALID"
    if issued > now_ms + skew_ms:
        return "NOT_YET_VALID"
    if now_ms >= issued + 1000 * f["ttl_s"] + skew_ms:
        return "EXPIRED"
    if p not in good_payloads:
        return "BAD_SIGNATURE"
    return "VALID"


def trust_list_json(keys: list[dict]) -> str:
    """keys: dicts with public_key (bytes or hex), not_before, not_after
    (ISO text or ms), optional key_id (else computed with the reference SM3)
    and issuer."""
    out = []
    for i, k in enumerate(keys):
        pub = k["public_key"]
        if isinstance(pub, str):
            pub = bytes.fromhex(pub)
        nb, na = k["not_before"], k["not_after"]
        out.append(
            {
                "key_id": k.get("key_id") or sm3(pub)[:4].hex().upper(),
                "public_key": pub.hex(),
                "not_before": nb if isinstance(nb, str) else ms_iso(nb),
                "not_after": na if isinstance(na, str) else ms_iso(na),
                "issuer": k.get("issuer", f"test issuer {i}"),
            }
        )
    return json.dumps({"version": 1, "keys": out})


# ---- DER for SM2 signatures and keys ------------------------------------
def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(b),)) + b


def _der_int(v: int) -> bytes:
    b = v.to_bytes(32, "big").lstrip(b"\0") or b"\0"
    if b[0] & 0x80:
        b = b"\0" + b
    return b"\x02" + _der_len(len(b)) + b


def raw_to_der(sig: bytes) -> bytes:
    """Raw r||s (64 bytes) to DER SEQUENCE { INTEGER r, INTEGER s }."""
    assert len(sig) == 64
    body = _der_int(int.from_bytes(sig[:32], "big")) + _der_int(int.from_bytes(sig[32:], "big"))
    return b"\x30" + _der_len(len(body)) + body


def _read_len(buf: bytes, i: int) -> tuple[int, int]:
    n = buf[i]
    i += 1
    if n < 0x80:
        return n, i
    k = n & 0x7F
    if not 1 <= k <= 2:
        raise ValueError("bad DER length")
    return int.from_bytes(buf[i : i + k], "big"), i + k


def der_to_raw(der: bytes) -> bytes:
    """DER SEQUENCE { INTEGER r, INTEGER s } to raw r||s, strictly."""
    if der[0] != 0x30:
        raise ValueError("not a DER SEQUENCE")
    length, i = _read_len(der, 1)
    if i + length != len(der):
        raise ValueError("DER SEQUENCE length mismatch")
    out = b""
    for _ in range(2):
        if der[i] != 0x02:
            raise ValueError("expected DER INTEGER")
        n, i = _read_len(der, i + 1)
        v = int.from_bytes(der[i : i + n], "big")
        if der[i] & 0x80 or not 0 < v < SM2_N:
            raise ValueError("DER INTEGER out of range")
        i += n
        out += v.to_bytes(32, "big")
    if i != len(der):
        raise ValueError("trailing bytes after DER signature")
    return out


_SPKI_SM2_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200")
_OID_SM2 = bytes.fromhex("06082a811ccf5501822d")


def public_key_pem(pub: bytes) -> str:
    """SubjectPublicKeyInfo PEM (id-ecPublicKey, curve SM2) of a 65-byte point."""
    assert len(pub) == 65 and pub[0] == 4
    b64 = base64.b64encode(_SPKI_SM2_PREFIX + pub).decode("ascii")
    lines = "".join(b64[i : i + 64] + "\n" for i in range(0, len(b64), 64))
    return f"-----BEGIN PUBLIC KEY-----\n{lines}-----END PUBLIC KEY-----\n"


def private_key_der(priv: bytes) -> bytes:
    """SEC1 ECPrivateKey DER (curve SM2) of a 32-byte scalar, for `openssl -keyform DER`."""
    assert len(priv) == 32
    body = b"\x02\x01\x01" + b"\x04\x20" + priv + b"\xa0" + bytes((len(_OID_SM2),)) + _OID_SM2
    return b"\x30" + _der_len(len(body)) + body


# ---- SM3 (GB/T 32905), plain Python ------------------------------------
_SM3_IV = (0x7380166F, 0x4914B2B9, 0x172442D7, 0xDA8A0600, 0xA96F30BC, 0x163138AA, 0xE38DEE4D, 0xB0FB0E4E)
_M32 = 0xFFFFFFFF


def _rotl(x: int, n: int) -> int:
    n %= 32
    return ((x << n) | (x >> (32 - n))) & _M32


def sm3(data: bytes) -> bytes:
    msg = bytearray(data)
    bitlen = len(data) * 8
    msg.append(0x80)
    while len(msg) % 64 != 56:
        msg.append(0)
    msg += bitlen.to_bytes(8, "big")
    v = list(_SM3_IV)
    for off in range(0, len(msg), 64):
        w = list(struct.unpack(">16I", msg[off : off + 64]))
        for j in range(16, 68):
            x = w[j - 16] ^ w[j - 9] ^ _rotl(w[j - 3], 15)
            p1 = x ^ _rotl(x, 15) ^ _rotl(x, 23)
            w.append(p1 ^ _rotl(w[j - 13], 7) ^ w[j - 6])
        w1 = [w[j] ^ w[j + 4] for j in range(64)]
        a, b, c, d, e, f, g, h = v
        for j in range(64):
            t = 0x79CC4519 if j < 16 else 0x7A879D8A
            ss1 = _rotl((_rotl(a, 12) + e + _rotl(t, j)) & _M32, 7)
            ss2 = ss1 ^ _rotl(a, 12)
            if j < 16:
                ff, gg = a ^ b ^ c, e ^ f ^ g
            else:
                ff = (a & b) | (a & c) | (b & c)
                gg = (e & f) | (~e & g)
            tt1 = (ff + d + ss2 + w1[j]) & _M32
            tt2 = (gg + h + ss1 + w[j]) & _M32
            d, c, b, a = c, _rotl(b, 9), a, tt1
            h, g, f = g, _rotl(f, 19), e
            e = tt2 ^ _rotl(tt2, 9) ^ _rotl(tt2, 17)
        v = [x ^ y for x, y in zip(v, (a, b, c, d, e, f, g, h))]
    return struct.pack(">8I", *v)


# ---- sm2p256v1 affine arithmetic (slow, for a handful of reference points)
def ec_add(p1, p2):
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    if p1[0] == p2[0]:
        if (p1[1] + p2[1]) % SM2_P == 0:
            return None
        lam = (3 * p1[0] * p1[0] + SM2_A) * pow(2 * p1[1], -1, SM2_P) % SM2_P
    else:
        lam = (p2[1] - p1[1]) * pow(p2[0] - p1[0], -1, SM2_P) % SM2_P
    x = (lam * lam - p1[0] - p2[0]) % SM2_P
    return (x, (lam * (p1[0] - x) - p1[1]) % SM2_P)


def ec_mul(k: int, point=(SM2_GX, SM2_GY)):
    acc = None
    while k:
        if k & 1:
            acc = ec_add(acc, point)
        point = ec_add(point, point)
        k >>= 1
    return acc


def public_point(priv: bytes) -> bytes:
    x, y = ec_mul(int.from_bytes(priv, "big"))
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def on_curve(pub: bytes) -> bool:
    if len(pub) != 65 or pub[0] != 4:
        return False
    x, y = int.from_bytes(pub[1:33], "big"), int.from_bytes(pub[33:], "big")
    return x < SM2_P and y < SM2_P and (y * y - (x * x * x + SM2_A * x + SM2_B)) % SM2_P == 0


REF = SimpleNamespace(
    B45_ALPHABET=B45_ALPHABET,
    PROVINCES=PROVINCES,
    ASCII_WS=ASCII_WS,
    OUTCOMES=OUTCOMES,
    PAYLOAD_LEN=PAYLOAD_LEN,
    SIGNED_LEN=SIGNED_LEN,
    DEFAULT_ID=DEFAULT_ID,
    N=SM2_N,
    P=SM2_P,
    b45encode=b45encode,
    b45decode=b45decode,
    iso_ms=iso_ms,
    ms_iso=ms_iso,
    build_body=build_body,
    parse_payload=parse_payload,
    code_of=code_of,
    payload_of=payload_of,
    model_outcome=model_outcome,
    trust_list_json=trust_list_json,
    raw_to_der=raw_to_der,
    der_to_raw=der_to_raw,
    public_key_pem=public_key_pem,
    private_key_der=private_key_der,
    sm3=sm3,
    ec_add=ec_add,
    ec_mul=ec_mul,
    public_point=public_point,
    on_curve=on_curve,
)


@pytest.fixture(scope="session")
def ref() -> SimpleNamespace:
    return REF


# --------------------------------------------------------------------------
# A test issuer: key generated in-test, with its own trust list
# --------------------------------------------------------------------------
ISSUER_NOT_BEFORE = "2026-01-01T00:00:00Z"
ISSUER_NOT_AFTER = "2027-07-01T00:00:00Z"


@pytest.fixture(scope="session")
def issuer() -> SimpleNamespace:
    """A fresh issuer key valid 2026-01-01 to 2027-07-01, its trust list, and a
    ``make`` function that signs arbitrary section-2 fields (rules not enforced)
    with that key, returning the code text."""
    import yibao_core

    priv = yibao_core.sm2_generate_private_key()
    pub = yibao_core.sm2_public_key(priv)
    kid = sm3(pub)[:4].hex().upper()
    text = trust_list_json(
        [{"public_key": pub, "not_before": ISSUER_NOT_BEFORE, "not_after": ISSUER_NOT_AFTER}]
    )
    tl = yibao_core.TrustList.from_json(text)

    def make(**fields) -> str:
        fields.setdefault("key_id", kid)
        body = build_body(**fields)
        return code_of(body + yibao_core.sm2_sign(priv, body))

    return SimpleNamespace(
        private_key=priv,
        public_key=pub,
        key_id=kid,
        trust_list_json=text,
        trust_list=tl,
        not_before_ms=iso_ms(ISSUER_NOT_BEFORE),
        not_after_ms=iso_ms(ISSUER_NOT_AFTER),
        keys=[
            {
                "key_id": kid,
                "not_before_ms": iso_ms(ISSUER_NOT_BEFORE),
                "not_after_ms": iso_ms(ISSUER_NOT_AFTER),
            }
        ],
        make=make,
    )
