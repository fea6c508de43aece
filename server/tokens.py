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

import base64
import hashlib
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


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint(key: bytes, t: Token) -> str:
    body = _LAYOUT.pack(
        _VERSION,
        bytes.fromhex(t.credential_id),
        bytes.fromhex(t.nonce),
        t.institution_code.encode(),
        t.insured_region.encode(),
        t.channel,
        int(t.family),
        t.expires_at_ms,
    )
    mac = hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]
    return f"{_b64(body)}.{_b64(mac)}"


def parse(key: bytes, text: str) -> Token | None:
    """The token's content if it is genuine (expiry is the caller's check), else None."""
    try:
        body_text, _, mac_text = text.partition(".")
        body, mac = _unb64(body_text), _unb64(mac_text)
        if len(body) != _LAYOUT.size or not hmac.compare_digest(
            mac, hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]
        ):
            return None
        version, cid, nonce, inst, region, channel, family, expires = _LAYOUT.unpack(body)
        if version != _VERSION:
            return None
        return Token(cid.hex().upper(), nonce.hex().upper(), inst.decode(), region.decode(), channel, bool(family), expires)
    except (ValueError, UnicodeDecodeError):
        return None
