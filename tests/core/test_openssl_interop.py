"""Interoperability with the OpenSSL 3 command line tool, both ways (credential-v1
section 3: "a code signed by any correct SM2 implementation verifies here, and
a code issued here verifies there"). The SM2 ID is always given explicitly."""

from __future__ import annotations

import os
import random
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

import yibao_core

DISTID = "distid:1234567812345678"
N_MESSAGES = 200
NOW = 1790000000000  # 2026-09-21, inside the key window below
NOT_BEFORE = "2026-01-01T00:00:00Z"
NOT_AFTER = "2027-07-01T00:00:00Z"
WORKERS = max(2, min(8, os.cpu_count() or 2))


def _run(openssl: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([openssl, *args], capture_output=True, text=True, check=False, timeout=60)


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"openssl failed: {proc.args}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _hex_block(text: str, start: str, stop: str) -> bytes:
    m = re.search(rf"^{start}:\s*\n(.*?)^{stop}", text, re.S | re.M)
    assert m, f"cannot find {start}: in openssl output:\n{text}"
    return bytes.fromhex(re.sub(r"[\s:]", "", m.group(1)))


def _messages(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    lengths = [0, 1, 63, 64, 127] + [rng.randrange(0, 300) for _ in range(N_MESSAGES - 5)]
    return [rng.randbytes(n) for n in lengths]


class Ossl:
    """The openssl CLI with one SM2 key, working in a temp dir."""

    def __init__(self, exe: str, workdir: Path):
        self.exe = exe
        self.dir = workdir
        self.key_pem = workdir / "key.pem"
        self.pub_pem = workdir / "pub.pem"
        _ok(_run(exe, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2", "-out", str(self.key_pem)))
        text = _ok(_run(exe, "pkey", "-in", str(self.key_pem), "-text", "-noout"))
        assert re.search(r"ASN1 OID: SM2", text), text
        priv = _hex_block(text, "priv", "pub")
        pub = _hex_block(text, "pub", "ASN1 OID")
        priv = priv.lstrip(b"\0").rjust(32, b"\0")
        assert len(priv) == 32 and len(pub) == 65 and pub[0] == 4, (priv.hex(), pub.hex())
        self.priv, self.pub = priv, pub
        _ok(_run(exe, "pkey", "-in", str(self.key_pem), "-pubout", "-out", str(self.pub_pem)))

    def _path(self, tag: str, i: int, ext: str) -> Path:
        return self.dir / f"{tag}-{i}.{ext}"

    def sign(self, tag: str, i: int, msg: bytes, distid: str = DISTID) -> bytes:
        """OpenSSL's DER signature of msg."""
        m, s = self._path(tag, i, "msg"), self._path(tag, i, "der")
        m.write_bytes(msg)
        _ok(_run(self.exe, "dgst", "-sm3", "-sign", str(self.key_pem), "-sigopt", distid, "-out", str(s), str(m)))
        return s.read_bytes()

    def verify(self, tag: str, i: int, msg: bytes, der: bytes, pub_pem: Path | None = None, distid: str = DISTID) -> subprocess.CompletedProcess:
        m, s = self._path(tag, i, "msg"), self._path(tag, i, "der")
        m.write_bytes(msg)
        s.write_bytes(der)
        return _run(
            self.exe, "dgst", "-sm3", "-verify", str(pub_pem or self.pub_pem),
            "-sigopt", distid, "-signature", str(s), str(m),
        )  # fmt: skip


def _verified(proc: subprocess.CompletedProcess) -> bool:
    if proc.returncode == 0 and "Verified OK" in proc.stdout:
        return True
    assert proc.returncode == 1 and "Verification failure" in proc.stdout, (proc.stdout, proc.stderr)
    return False


@pytest.fixture(scope="module")
def ossl(openssl, tmp_path_factory) -> Ossl:
    return Ossl(openssl, tmp_path_factory.mktemp("openssl"))


# --------------------------------------------------------------------------
# (a) keys
# --------------------------------------------------------------------------
def test_openssl_key_matches_core(ossl, ref):
    assert yibao_core.sm2_public_key(ossl.priv) == ossl.pub
    assert ref.on_curve(ossl.pub)
    assert yibao_core.key_id(ossl.pub) == ref.sm3(ossl.pub)[:4].hex().upper()


def test_public_key_pem_matches_openssl(ossl, ref):
    """Our SPKI builder gives the same PEM OpenSSL writes (used for the trust-list keys below)."""
    assert ref.public_key_pem(ossl.pub).strip() == ossl.pub_pem.read_text().strip()


# --------------------------------------------------------------------------
# (b) OpenSSL signs, the core verifies
# --------------------------------------------------------------------------
def test_openssl_signs_core_verifies(ossl, ref):
    msgs = _messages(1)
    with ThreadPoolExecutor(WORKERS) as pool:
        ders = list(pool.map(lambda im: ossl.sign("b", im[0], im[1]), enumerate(msgs)))
    rng = random.Random(11)
    for i, (msg, der) in enumerate(zip(msgs, ders)):
        raw = ref.der_to_raw(der)
        assert ref.raw_to_der(raw) == der, "OpenSSL writes minimal DER; our converter must round-trip it"
        assert yibao_core.sm2_verify(ossl.pub, msg, raw) is True, f"message {i} ({len(msg)} bytes)"
        bad_msg = bytearray(msg or b"\0")
        bit = rng.randrange(8 * len(bad_msg))
        bad_msg[bit // 8] ^= 1 << (bit % 8)
        if not msg:
            bad_msg = b"\0"  # empty message vs one zero byte
        assert yibao_core.sm2_verify(ossl.pub, bytes(bad_msg), raw) is False, f"message {i} with bit {bit} flipped"
        bad_sig = bytearray(raw)
        bit = rng.randrange(512)
        bad_sig[bit // 8] ^= 1 << (bit % 8)
        assert yibao_core.sm2_verify(ossl.pub, msg, bytes(bad_sig)) is False, f"signature {i} bit {bit}"


def test_openssl_other_distid_not_accepted(ossl, ref):
    """The ID is part of the signed hash: OpenSSL's signature under another ID fails here."""
    msg = b"credential-v1 distid"
    raw = ref.der_to_raw(ossl.sign("distid", 0, msg, distid="distid:ALICE123@YAHOO.COM"))
    assert yibao_core.sm2_verify(ossl.pub, msg, raw) is False
    raw = ref.der_to_raw(ossl.sign("distid", 1, msg))
    assert yibao_core.sm2_verify(ossl.pub, msg, raw) is True


# --------------------------------------------------------------------------
# (c) the core signs, OpenSSL verifies
# --------------------------------------------------------------------------
def test_core_signs_openssl_verifies(ossl, ref):
    msgs = _messages(2)
    sigs = [yibao_core.sm2_sign(ossl.priv, m) for m in msgs]
    with ThreadPoolExecutor(WORKERS) as pool:
        procs = list(pool.map(lambda a: ossl.verify("c", a[0], a[1][0], ref.raw_to_der(a[1][1])), enumerate(zip(msgs, sigs))))
    failed = [i for i, p in enumerate(procs) if not _verified(p)]
    assert failed == [], f"OpenSSL refused core signatures for messages {failed}"


def test_signing_key_signs_openssl_verifies(ossl, ref):
    """The prepared signer (receipts): OpenSSL's key gives OpenSSL's public
    key, its signatures are sm2_sign's bytes, and OpenSSL verifies them all."""
    key = yibao_core.SigningKey(ossl.priv)
    assert key.public_key == ossl.pub
    msgs = _messages(3)
    sigs = [key.sign(m) for m in msgs]
    assert sigs == [yibao_core.sm2_sign(ossl.priv, m) for m in msgs]
    with ThreadPoolExecutor(WORKERS) as pool:
        procs = list(pool.map(lambda a: ossl.verify("sk", a[0], a[1][0], ref.raw_to_der(a[1][1])), enumerate(zip(msgs, sigs))))
    failed = [i for i, p in enumerate(procs) if not _verified(p)]
    assert failed == [], f"OpenSSL refused SigningKey signatures for messages {failed}"
    assert not _verified(ossl.verify("sk-neg", 0, msgs[5] + b"!", ref.raw_to_der(sigs[5])))


def test_openssl_refuses_a_bad_core_signature(ossl, ref):
    """Negative control for the harness: OpenSSL must say no to a changed
    message, and to the right signature under another ID."""
    msg = b"negative control"
    sig = yibao_core.sm2_sign(ossl.priv, msg)
    assert _verified(ossl.verify("neg", 0, msg, ref.raw_to_der(sig)))
    assert not _verified(ossl.verify("neg", 1, msg + b"!", ref.raw_to_der(sig)))
    assert not _verified(ossl.verify("neg", 2, msg, ref.raw_to_der(sig), distid="distid:ALICE123@YAHOO.COM"))


def test_openssl_verifies_core_signatures_of_the_vector_key_format(ossl, ref, tmp_path):
    """A PEM built from a raw 65-byte key (as in a trust list) works with OpenSSL."""
    priv = yibao_core.sm2_generate_private_key()
    pub = yibao_core.sm2_public_key(priv)
    pem = tmp_path / "p.pem"
    pem.write_text(ref.public_key_pem(pub))
    msg = b"raw key"
    assert _verified(ossl.verify("raw", 0, msg, ref.raw_to_der(yibao_core.sm2_sign(priv, msg)), pub_pem=pem))


# --------------------------------------------------------------------------
# (d) whole codes, both ways
# --------------------------------------------------------------------------
FIELD_SETS = [
    dict(credential_id="3A7C0F19B2D44E8A9C115E6B0D2F4A71", insured_region="440300", channel=2, ttl_s=60),
    dict(credential_id="0A0B0C0D0E0F10111213141516171819", insured_region="110105", channel=1, ttl_s=60,
         presenter_id="11111111222222223333333344444444"),
    dict(credential_id="FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", insured_region="650102", channel=3, ttl_s=300),
    dict(credential_id="00000000000000000000000000000001", insured_region="310115", channel=4, ttl_s=1),
    dict(credential_id="80000000000000000000000000000000", insured_region="540102", channel=5, ttl_s=120),
]  # fmt: skip


@pytest.fixture(scope="module")
def ossl_trust_list(ossl, ref):
    text = ref.trust_list_json([{"public_key": ossl.pub, "not_before": NOT_BEFORE, "not_after": NOT_AFTER}])
    return yibao_core.TrustList.from_json(text)


@pytest.mark.parametrize("idx", range(len(FIELD_SETS)))
def test_openssl_signed_code_is_valid(ossl, ossl_trust_list, ref, idx):
    fields = FIELD_SETS[idx]
    kid = ref.sm3(ossl.pub)[:4]
    nonce = bytes(random.Random(idx).randbytes(8))
    body = ref.build_body(key_id=kid, issued_at_ms=NOW, nonce=nonce, **fields)
    raw = ref.der_to_raw(ossl.sign("code", idx, body))
    code = ref.code_of(body + raw)
    assert len(code) == 195

    res = yibao_core.check(code, ossl_trust_list, NOW + 1000)
    assert res.outcome == "VALID", res.detail
    expected = {
        "credential_id": fields["credential_id"],
        "presenter_id": fields.get("presenter_id", ""),
        "insured_region": fields["insured_region"],
        "province": fields["insured_region"][:2],
        "channel": fields["channel"],
        "issued_at_ms": NOW,
        "ttl_s": fields["ttl_s"],
        "expires_at_ms": NOW + 1000 * fields["ttl_s"],
        "key_id": kid.hex().upper(),
        "family": "presenter_id" in fields,
    }
    assert {k: getattr(res, k) for k in expected} == expected
    assert res.credential_id == fields["credential_id"]
    assert res.nonce.upper() == nonce.hex().upper()
    # The same bytes are refused once the clock has run out, or once a signed byte changes.
    expired = NOW + 1000 * fields["ttl_s"] + 5000
    assert yibao_core.check(code, ossl_trust_list, expired).outcome == "EXPIRED"
    tampered = bytearray(body + raw)
    tampered[55] ^= 0x80  # first nonce byte
    assert yibao_core.check(ref.code_of(bytes(tampered)), ossl_trust_list, NOW).outcome == "BAD_SIGNATURE"


@pytest.mark.parametrize("idx", range(len(FIELD_SETS)))
def test_core_issued_code_verifies_in_openssl(ossl, ossl_trust_list, ref, idx):
    fields = FIELD_SETS[idx]
    nonce = bytes(random.Random(100 + idx).randbytes(8))
    code = yibao_core.issue(ossl.priv, issued_at_ms=NOW, nonce=nonce, **fields)
    assert code.startswith("YB1:") and len(code) == 195, code
    payload = ref.b45decode(code[4:])
    assert payload is not None and len(payload) == 127
    p = ref.parse_payload(payload)
    # The layout of section 2, read back independently.
    assert p["version"] == 1
    assert p["flags"] == (1 if "presenter_id" in fields else 0)
    assert p["key_id"] == ref.sm3(ossl.pub)[:4].hex().upper()
    assert p["credential_id"] == fields["credential_id"]
    assert p["presenter_id"] == fields.get("presenter_id", "0" * 32)
    assert p["insured_region"] == fields["insured_region"]
    assert p["channel"] == fields["channel"]
    assert p["issued_at_ms"] == NOW
    assert p["ttl_s"] == fields["ttl_s"]
    assert p["nonce"] == nonce.hex().upper()
    # OpenSSL accepts the signature over bytes 0..62, and refuses it over anything else.
    der = ref.raw_to_der(payload[63:])
    assert _verified(ossl.verify("issued", idx, payload[:63], der)), f"OpenSSL refused {code}"
    assert not _verified(ossl.verify("issued-x", idx, payload[:62], der))
    assert not _verified(ossl.verify("issued-y", idx, payload, der))
    assert yibao_core.check(code, ossl_trust_list, NOW).outcome == "VALID"


def test_core_issued_codes_in_bulk_verify_in_openssl(ossl, ref):
    """40 more issued codes (random nonces drawn by the issuer), checked by OpenSSL in parallel."""
    codes = [
        yibao_core.issue(ossl.priv, credential_id=b"\x01" + os.urandom(15),
                         insured_region="440300", channel=2, issued_at_ms=NOW + i)
        for i in range(40)
    ]  # fmt: skip
    payloads = [ref.b45decode(c[4:]) for c in codes]
    assert len({p[55:63] for p in payloads}) == 40, "nonces must differ"
    with ThreadPoolExecutor(WORKERS) as pool:
        procs = list(pool.map(lambda a: ossl.verify("bulk", a[0], a[1][:63], ref.raw_to_der(a[1][63:])), enumerate(payloads)))
    assert [i for i, p in enumerate(procs) if not _verified(p)] == []


def test_vector_signatures_verify_in_openssl(ossl, cases, trust_list_data, ref, tmp_path):
    """Sanity for the harness: the published vectors (OpenSSL-made) verify with
    the trust-list key turned into PEM by our helper."""
    pem = tmp_path / "k2026.pem"
    pem.write_text(ref.public_key_pem(bytes.fromhex(trust_list_data["keys"][0]["public_key"])))
    by_name = {c["name"]: c for c in cases}
    p = ref.payload_of(by_name["valid-wechat-shenzhen"]["code"])
    assert _verified(ossl.verify("vec", 0, p[:63], ref.raw_to_der(p[63:]), pub_pem=pem))
    p = ref.payload_of(by_name["bad-signature-bit-flip"]["code"])
    assert not _verified(ossl.verify("vec", 1, p[:63], ref.raw_to_der(p[63:]), pub_pem=pem))
