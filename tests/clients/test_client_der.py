"""The hand-built DER and PEM (yibao_client.der), checked byte by byte and
by the OpenSSL command line: a key made and a message signed with the
verification core, written with these builders, verifies with
`openssl dgst -sm3 -verify`."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest
from yibao_client import der

openssl = shutil.which("openssl")
assert openssl, "openssl is missing: run scripts/setup"


def test_object_identifiers() -> None:
    assert der.oid_der(der.OID_EC_PUBLIC_KEY).hex() == "06072a8648ce3d0201"
    assert der.oid_der(der.OID_SM2).hex() == "06082a811ccf5501822d"
    assert der.oid_der("2.999.3").hex() == "0603883703"  # X.690 example: first arc 2, big second arc
    for bad in ("1", "3.1", "1.40", "a.b"):
        with pytest.raises(ValueError):
            der.oid_der(bad)


def test_public_key_info_layout() -> None:
    key = b"\x04" + bytes(range(64))
    d = der.public_key_der(key)
    assert d.hex() == "3059301306072a8648ce3d020106082a811ccf5501822d034200" + key.hex()
    pem = der.public_key_pem(key)
    lines = pem.splitlines()
    assert lines[0] == "-----BEGIN PUBLIC KEY-----" and lines[-1] == "-----END PUBLIC KEY-----"
    assert all(len(line) <= 64 for line in lines[1:-1])
    assert base64.b64decode("".join(lines[1:-1])) == d
    for bad in (key[1:], b"\x02" + key[1:], key + b"\x00"):
        with pytest.raises(ValueError, match="65 bytes"):
            der.public_key_der(bad)


def test_signature_integers_are_minimal() -> None:
    r_high = bytes([0x80]) + bytes(31)  # top bit set: a 00 byte goes first
    s_small = bytes(31) + b"\x05"  # leading zeros dropped
    assert der.signature_der(r_high + s_small).hex() == "3026" + "022100" + r_high.hex() + "020105"
    assert der.signature_der(bytes(64)).hex() == "3006020100020100"
    r = bytes([0x7F]) + bytes(range(31))
    assert der.signature_der(r + r).hex() == "3044" + ("0220" + r.hex()) * 2
    with pytest.raises(ValueError, match="64 bytes"):
        der.signature_der(bytes(63))


def test_openssl_command_quotes_paths() -> None:
    cmd = der.openssl_verify_command("node 44.pem", "sig.der", "r.bin")
    assert cmd == (
        "openssl dgst -sm3 -verify 'node 44.pem' -sigopt distid:1234567812345678 -signature sig.der r.bin"
    )


def test_openssl_verifies_what_the_builders_write(tmp_path: Path) -> None:
    import yibao_core

    seen_high_r = seen_low_r = False
    for i in range(64):
        key = yibao_core.sm2_generate_private_key()
        public = yibao_core.sm2_public_key(key)
        message = b"YBR1\x01 receipt number %d" % i
        raw = yibao_core.sm2_sign(key, message)
        high = bool(raw[0] & 0x80)
        if (high and seen_high_r) or (not high and seen_low_r):
            continue  # one of each kind is enough: r with and without a 00 byte in front
        seen_high_r |= high
        seen_low_r |= not high
        pem, sig, msg = tmp_path / "node.pem", tmp_path / "sig.der", tmp_path / "receipt.bin"
        pem.write_text(der.public_key_pem(public))
        sig.write_bytes(der.signature_der(raw))
        msg.write_bytes(message)
        ok = _openssl(
            "dgst", "-sm3", "-verify", pem, "-sigopt", "distid:1234567812345678", "-signature", sig, msg
        )
        assert ok.returncode == 0 and ok.stdout.strip() == "Verified OK", ok.stdout + ok.stderr
        # and openssl reads the key as an SM2 key
        text = _openssl("pkey", "-pubin", "-in", pem, "-text", "-noout").stdout
        assert "ASN1 OID: SM2" in text
        # a changed receipt does not verify
        msg.write_bytes(message + b"!")
        bad = _openssl(
            "dgst", "-sm3", "-verify", pem, "-sigopt", "distid:1234567812345678", "-signature", sig, msg
        )
        assert bad.returncode != 0 and "Verification failure" in bad.stdout
        if seen_high_r and seen_low_r:
            break
    assert seen_high_r and seen_low_r


def test_openssl_agrees_on_the_der_of_its_own_key(tmp_path: Path) -> None:
    """OpenSSL's own SM2 key, re-encoded by the builder from its raw point, is the same DER."""
    key = tmp_path / "k.pem"
    made = _openssl("genpkey", "-algorithm", "SM2", "-out", key)
    assert made.returncode == 0, "this openssl cannot make SM2 keys (OpenSSL 3 is required)"
    spki = _openssl_bytes("pkey", "-in", key, "-pubout", "-outform", "DER")
    assert spki[-65] == 0x04
    assert der.public_key_der(spki[-65:]) == spki


def _openssl(*args: object) -> subprocess.CompletedProcess[str]:
    assert openssl is not None
    return subprocess.run([openssl, *map(str, args)], capture_output=True, text=True, timeout=30, check=False)


def _openssl_bytes(*args: object) -> bytes:
    assert openssl is not None
    return subprocess.run([openssl, *map(str, args)], capture_output=True, timeout=30, check=True).stdout
