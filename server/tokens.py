"""The ec_token (电子凭证令牌) a VALID verification returns: the credential,
the institution it is bound to and its expiry, with an HMAC-SHA256 under a
key every node shares through the national store, so any node accepts a
token any node issued without a lookup.

Layout before base64url (big-endian): version 1 (1 byte) ‖ credential_id (16)
‖ nonce (8) ‖ institution_code (12 ASCII) ‖ insured_region (6 ASCII) ‖
channel (1) ‖ family (1) ‖ expires_at_ms (8), then "." and the first 16
bytes of the MAC, base64url: 97 characters in all.
"""

from __future__ import annotations

import binascii
import hmac
import struct
from dataclasses import dataclass

_LAYOUT = struct.Struct(">B16s8s12s6sBBQ")
_VERSION = 1
_MAC_BYTES = 16


@dataclass(frozen=True)
class Token:
    credential_id: str
    nonce: str
    institution_code: str
    insured_region: str
    channel: int
    family: bool
    expires_at_ms: int


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(raw: bytes) -> str:
    # base64.urlsafe_b64encode without its two layers of Python calls: this
    # runs twice for every VALID code.
    return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _unb64(text: str) -> bytes:
    # base64.urlsafe_b64decode's own steps, without its Python layers: this
    # runs twice for every Settle. Non-ASCII text raises UnicodeEncodeError,
    # a ValueError like binascii.Error.
    return binascii.a2b_base64((text + "=" * (-len(text) % 4)).encode("ascii").translate(_FROM_URLSAFE))


def mint(key: bytes, t: Token) -> str:
    return mint_fields(
        key, t.credential_id, t.nonce, t.institution_code, t.insured_region, t.channel, t.family, t.expires_at_ms
    )


def mint_fields(
    key: bytes,
    credential_id: str,
    nonce: str,
    institution_code: str,
    insured_region: str,
    channel: int,
    family: bool,
    expires_at_ms: int,
) -> str:
    """mint() from the fields themselves, for the node's per-code path
    (no Token object per code)."""
    body = _LAYOUT.pack(
        _VERSION,
        bytes.fromhex(credential_id),
        bytes.fromhex(nonce),
        institution_code.encode(),
        insured_region.encode(),
        channel,
        int(family),
        expires_at_ms,
    )
    # hmac.digest: OpenSSL's one-shot HMAC, the same MAC as hmac.new(...).digest().
    mac = hmac.digest(key, body, "sha256")[:_MAC_BYTES]
    return f"{_b64(body)}.{_b64(mac)}"


def parse(key: bytes, text: str) -> Token | None:
    """The token's content if it is genuine (expiry is the caller's check), else None."""
    try:
        body_text, _, mac_text = text.partition(".")
        body, mac = _unb64(body_text), _unb64(mac_text)
        if len(body) != _LAYOUT.size or not hmac.compare_digest(mac, hmac.digest(key, body, "sha256")[:_MAC_BYTES]):
            return None
        version, cid, nonce, inst, region, channel, family, expires = _LAYOUT.unpack(body)
        if version != _VERSION:
            return None
        return Token(cid.hex().upper(), nonce.hex().upper(), inst.decode(), region.decode(), channel, bool(family), expires)
    except (ValueError, UnicodeDecodeError):
        return None
