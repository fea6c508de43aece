"""Interoperability with the two SM2 libraries on PyPI that benchmarks/core.py
measures beside the core: tongsuopy (Tongsuo, an OpenSSL 3 fork, through
cffi) and gmssl-pyx (GmSSL 3, a C extension). Both are in the `test` extra,
so these tests always run. Both ways: codes issued by the core verify in
each library (over the 63 signed bytes, SM3, ID 1234567812345678) and the
same corruptions are refused by all three; signatures made by each library
make codes the core finds VALID. This also shows that the benchmark's peers
verify the same work as the core."""

from __future__ import annotations

import random

import gmssl_pyx
import pytest
from tongsuopy.crypto import hashes
from tongsuopy.crypto.asymciphers import ec
from tongsuopy.crypto.exceptions import InvalidSignature

import yibao_core

DISTID = b"1234567812345678"
ISSUED = 1790000000000  # 2026-09-21, inside the test issuer's key window
NOW = ISSUED + 1000


def _tongsuo_accepts(public: bytes, message: bytes, der: bytes) -> bool:
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SM2(), public)
    try:
        key.verify(der, message, ec.ECDSA(hashes.SM3()))  # Tongsuo's default ID: 1234567812345678
    except InvalidSignature:
        return False
    return True


def _pyx_accepts(public: bytes, message: bytes, der: bytes) -> bool:
    return gmssl_pyx.sm2_verify(public[1:], message, der, signer_id=DISTID)


PEERS = {"tongsuopy": _tongsuo_accepts, "gmssl-pyx": _pyx_accepts}


def _codes(issuer, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        yibao_core.issue(
            issuer.private_key,
            credential_id=(b"\x01" + rng.randbytes(15)).hex(),
            insured_region="440300",
            channel=rng.randint(1, 5),
            issued_at_ms=ISSUED,
            nonce=rng.randbytes(8),
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize("peer", PEERS)
def test_peer_verifies_core_issued_codes(issuer, ref, peer):
    accepts = PEERS[peer]
    for code in _codes(issuer, 20, seed=1):
        p = ref.payload_of(code)
        assert yibao_core.check(code, issuer.trust_list, NOW).outcome == "VALID"
        assert accepts(issuer.public_key, p[: ref.SIGNED_LEN], ref.raw_to_der(p[ref.SIGNED_LEN :])), code


@pytest.mark.parametrize("peer", PEERS)
def test_peer_and_core_refuse_the_same_corruptions(issuer, ref, peer):
    """Bit flips in r or s, r or s at 0, n or n+1 (sent to the peer as DER
    integers), r + s = n, the signature of other bytes: BAD_SIGNATURE here,
    refused there."""
    accepts = PEERS[peer]
    rng = random.Random(2)
    for i, code in enumerate(_codes(issuer, 24, seed=3)):
        p = ref.payload_of(code)
        signed = p[: ref.SIGNED_LEN]
        r, s = int.from_bytes(p[63:95], "big"), int.from_bytes(p[95:], "big")
        match i % 8:
            case 0:
                r ^= 1 << rng.randrange(256)
            case 1:
                s ^= 1 << rng.randrange(256)
            case 2:
                r = 0
            case 3:
                s = ref.N
            case 4:
                r = ref.N + 1
            case 5:
                s = ref.N - r
            case 6:
                other = yibao_core.sm2_sign(issuer.private_key, signed[:-1] + bytes((signed[-1] ^ 1,)))
                r, s = int.from_bytes(other[:32], "big"), int.from_bytes(other[32:], "big")
            case _:
                r, s = s, r
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        outcome = yibao_core.check(ref.code_of(signed + sig), issuer.trust_list, NOW).outcome
        assert outcome == "BAD_SIGNATURE", (i, sig.hex())
        assert not accepts(issuer.public_key, signed, ref.raw_to_der(sig)), (i, sig.hex())


def _tongsuo_sign(private: bytes, message: bytes) -> bytes:
    key = ec.derive_private_key(int.from_bytes(private, "big"), ec.SM2())
    return key.sign(message, ec.ECDSA(hashes.SM3()))


def _pyx_sign(private: bytes, message: bytes, signer_id: bytes = DISTID) -> bytes:
    public = yibao_core.sm2_public_key(private)
    return gmssl_pyx.sm2_sign(private, public[1:], message, signer_id=signer_id)


SIGNERS = {"tongsuopy": _tongsuo_sign, "gmssl-pyx": _pyx_sign}


@pytest.mark.parametrize("peer", SIGNERS)
def test_core_accepts_peer_signed_codes(issuer, ref, peer):
    """Codes whose signature the peer made with the issuer's key are VALID;
    with one signed byte changed after signing, BAD_SIGNATURE."""
    rng = random.Random(4)
    for _ in range(20):
        body = ref.build_body(
            key_id=issuer.key_id,
            credential_id=(b"\x01" + rng.randbytes(15)).hex(),
            channel=rng.randint(1, 5),
            issued_at_ms=ISSUED,
            nonce=rng.randbytes(8),
        )
        raw = ref.der_to_raw(SIGNERS[peer](issuer.private_key, body))
        assert yibao_core.sm2_verify(issuer.public_key, body, raw)
        assert yibao_core.check(ref.code_of(body + raw), issuer.trust_list, NOW).outcome == "VALID"
        changed = body[:-1] + bytes((body[-1] ^ 0x80,))  # the nonce's last byte
        assert yibao_core.check(ref.code_of(changed + raw), issuer.trust_list, NOW).outcome == "BAD_SIGNATURE"


def test_core_accepts_keys_the_peers_generate(ref):
    """Key pairs generated by each library, in a trust list of their own."""
    t_key = ec.generate_private_key(ec.SM2())
    t_priv = t_key.private_numbers().private_value.to_bytes(32, "big")
    x_pub, x_priv = gmssl_pyx.sm2_key_generate()
    for priv, pub, sign in ((t_priv, None, _tongsuo_sign), (x_priv, b"\x04" + x_pub, _pyx_sign)):
        public = yibao_core.sm2_public_key(priv)
        assert pub is None or pub == public
        trust = yibao_core.TrustList.from_json(
            ref.trust_list_json([{"public_key": public, "not_before": ISSUED - 1000, "not_after": ISSUED + 86_400_000}])
        )
        body = ref.build_body(key_id=yibao_core.key_id(public), credential_id="01" * 16, issued_at_ms=ISSUED)
        code = ref.code_of(body + ref.der_to_raw(sign(priv, body)))
        assert yibao_core.check(code, trust, NOW).outcome == "VALID"


def test_another_id_is_refused(issuer, ref):
    """Negative control: GmSSL's signature under another ID is BAD_SIGNATURE
    here (so the agreement above is on the ID 1234567812345678)."""
    body = ref.build_body(key_id=issuer.key_id, credential_id="02" * 16, issued_at_ms=ISSUED)
    der = _pyx_sign(issuer.private_key, body, signer_id=b"1234567812345679")
    assert gmssl_pyx.sm2_verify(issuer.public_key[1:], body, der, signer_id=b"1234567812345679")
    assert not _pyx_accepts(issuer.public_key, body, der)
    assert yibao_core.check(ref.code_of(body + ref.der_to_raw(der)), issuer.trust_list, NOW).outcome == "BAD_SIGNATURE"
