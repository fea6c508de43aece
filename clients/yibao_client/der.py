"""The encodings OpenSSL wants to check a receipt signature, built by hand.

A node signs each settlement and refund receipt with SM2 (SM3 digest,
default ID ``1234567812345678``) and sends the signature as 64 raw bytes
(r || s), and its public key (Admin.GetNodeKey) as 65 raw bytes
(04 || X || Y). The OpenSSL 3 command line wants both in DER:

- the public key as a SubjectPublicKeyInfo (RFC 5480) with the algorithm
  id-ecPublicKey (1.2.840.10045.2.1) and the named curve SM2
  (1.2.156.10197.1.301), usually in PEM (:func:`public_key_pem`);
- the signature as ``SEQUENCE { INTEGER r, INTEGER s }`` (:func:`signature_der`).

Then::

    openssl dgst -sm3 -verify node.pem -sigopt distid:1234567812345678 \\
        -signature receipt.sig receipt.bin        # prints "Verified OK"

No ASN.1 library is needed for these two fixed shapes.
"""

from __future__ import annotations

import base64
import shlex

__all__ = [
    "OID_EC_PUBLIC_KEY",
    "OID_SM2",
    "SM2_DEFAULT_ID",
    "oid_der",
    "openssl_verify_command",
    "public_key_der",
    "public_key_pem",
    "signature_der",
]

#: The signer ID every yibao-verify signature uses (GB/T 32918 default).
SM2_DEFAULT_ID = "1234567812345678"
#: id-ecPublicKey (RFC 5480).
OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
#: The SM2 curve, sm2p256v1 (GM/T 0006).
OID_SM2 = "1.2.156.10197.1.301"

_INTEGER, _BIT_STRING, _OID, _SEQUENCE = 0x02, 0x03, 0x06, 0x30


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _length(len(content)) + content


def oid_der(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER, tag and length included: ``"1.2.840.10045.2.1"``
    -> ``06 07 2a 86 48 ce 3d 02 01``."""
    arcs = [int(a, 10) for a in dotted.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39) or min(arcs) < 0:
        raise ValueError(f"not an object identifier: {dotted!r}")
    body = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return _tlv(_OID, bytes(body))


def _unsigned_integer(value: bytes) -> bytes:
    """A DER INTEGER holding the unsigned big-endian number ``value``:
    leading zero bytes dropped, one 00 added when the top bit is set."""
    v = value.lstrip(b"\x00") or b"\x00"
    if v[0] & 0x80:
        v = b"\x00" + v
    return _tlv(_INTEGER, v)


def signature_der(raw: bytes) -> bytes:
    """A raw 64-byte SM2 signature (r || s, as ``receipt_signature``) as the
    DER ``SEQUENCE { INTEGER r, INTEGER s }`` that ``openssl dgst -signature`` reads."""
    raw = bytes(raw)
    if len(raw) != 64:
        raise ValueError(f"an SM2 signature is 64 bytes (r || s), not {len(raw)}")
    return _tlv(_SEQUENCE, _unsigned_integer(raw[:32]) + _unsigned_integer(raw[32:]))


def public_key_der(public_key: bytes) -> bytes:
    """A 65-byte uncompressed SM2 public key (04 || X || Y, as
    ``GetNodeKeyResponse.public_key``) as a DER SubjectPublicKeyInfo."""
    key = bytes(public_key)
    if len(key) != 65 or key[0] != 0x04:
        raise ValueError(
            f"expected an uncompressed SM2 public key, 65 bytes starting 04; got {len(key)} bytes"
        )
    algorithm = _tlv(_SEQUENCE, oid_der(OID_EC_PUBLIC_KEY) + oid_der(OID_SM2))
    return _tlv(_SEQUENCE, algorithm + _tlv(_BIT_STRING, b"\x00" + key))


def public_key_pem(public_key: bytes) -> str:
    """:func:`public_key_der` as PEM text (``-----BEGIN PUBLIC KEY-----``, 64-column base64)."""
    b64 = base64.b64encode(public_key_der(public_key)).decode("ascii")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n"


def openssl_verify_command(public_key_pem_path: str, signature_der_path: str, receipt_path: str) -> str:
    """The shell command that checks a receipt with OpenSSL 3 (prints "Verified OK")."""
    q = shlex.quote
    return (
        f"openssl dgst -sm3 -verify {q(public_key_pem_path)} -sigopt distid:{SM2_DEFAULT_ID} "
        f"-signature {q(signature_der_path)} {q(receipt_path)}"
    )
