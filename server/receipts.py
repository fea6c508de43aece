"""Signed receipts of settlements and refunds (结算凭据 / 退费凭据), and the
digest of a bill's items.

A receipt is a byte string in the fixed layout below, signed by the node
that owns the account with SM2 (SM3, default ID "1234567812345678"); the
signature is raw r‖s, 64 bytes. The node prepares its key once
(yibao_core.SigningKey, see node_key.signing_key) and signs each receipt
with it. Signing is deterministic (RFC 6979 nonces)
and every field comes from the stored record, so the receipt and signature
of a settlement are the same bytes every time they are made: a replayed
Settle, and GetSettlement, return exactly what the first Settle returned (as
long as the node key is the same).

All integers are unsigned big-endian; "ASCII n" is exactly n ASCII bytes;
offsets are in bytes.

Settlement receipt (163 + L bytes)::

    off  size  field
      0     4  magic, ASCII "YBR1"
      4     1  type, 0x01 = settlement
      5     2  settled_region, ASCII 2 digits (the province of the account)
      7    32  settlement_id, ASCII 32 upper-case hex (begins with settled_region)
     39    12  institution_code, ASCII ("H" or "P" and 11 digits)
     51    32  credential_id, ASCII 32 upper-case hex
     83     6  insured_region, ASCII 6 digits
     89     8  total_fen            (uint64)
     97     8  account_pay_fen      (uint64)
    105     8  cash_pay_fen         (uint64) = total_fen - account_pay_fen
    113     8  balance_after_fen    (uint64) the account's balance after paying
    121     8  settled_at_ms        (uint64) milliseconds since 1970-01-01 UTC
    129    32  items_digest         (raw 32 bytes; see below)
    161     2  L = length of order_id in bytes (uint16)
    163     L  order_id, UTF-8

Refund receipt (117 + L bytes)::

    off  size  field
      0     4  magic, ASCII "YBR1"
      4     1  type, 0x02 = refund
      5     2  settled_region, ASCII 2 digits
      7    32  settlement_id, ASCII 32 upper-case hex (the settlement refunded)
     39    12  institution_code, ASCII
     51    32  credential_id, ASCII 32 upper-case hex
     83     8  amount_fen           (uint64) returned to the account
     91     8  balance_after_fen    (uint64) the account's balance after the refund
     99     8  remaining_fen        (uint64) left to refund of the settlement after it
    107     8  refunded_at_ms       (uint64) milliseconds since 1970-01-01 UTC
    115     2  L = length of refund_id in bytes (uint16)
    117     L  refund_id, UTF-8

Nothing follows the last field. To check a receipt with the OpenSSL 3 CLI,
write the node's public key (Admin.GetNodeKey) as a SubjectPublicKeyInfo PEM
(id-ecPublicKey with the curve OID 1.2.156.10197.1.301), the signature as a
DER SEQUENCE of the two INTEGERs r and s, and run::

    openssl dgst -sm3 -verify pub.pem -sigopt distid:1234567812345678 \\
        -signature sig.der receipt.bin          # prints "Verified OK"

Items digest (``items_digest``): SM3 over, all integers big-endian::

    ASCII "YBI1" ‖ uint32 number of items ‖ for each item, in order:
      uint32 len ‖ item_code UTF-8 ‖ uint32 len ‖ name UTF-8 ‖
      uint64 quantity_milli ‖ uint32 len ‖ unit UTF-8 ‖
      uint64 unit_price_fen ‖ uint64 amount_fen

(no items: SM3 of "YBI1" ‖ 00000000). It is written as 64 lower-case hex
digits in the ledger and as its 32 raw bytes in the receipt.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import yibao_core

if TYPE_CHECKING:
    from server.ledger import Refund, Settlement

MAGIC = b"YBR1"
SETTLEMENT = 0x01
REFUND = 0x02

_SETTLEMENT_HEAD = struct.Struct(">4sB2s32s12s32s6sQQQQQ32sH")
_REFUND_HEAD = struct.Struct(">4sB2s32s12s32sQQQQH")
assert _SETTLEMENT_HEAD.size == 163 and _REFUND_HEAD.size == 117


def _ascii(value: str, size: int, name: str) -> bytes:
    raw = value.encode("ascii")
    if len(raw) != size:
        raise ValueError(f"{name}: {value!r} is not {size} ASCII characters")
    return raw


def _var(value: str, name: str) -> bytes:
    raw = value.encode("utf-8")
    if not 0 < len(raw) <= 0xFFFF:
        raise ValueError(f"{name}: 1 to 65535 bytes of UTF-8")
    return raw


def items_digest(items: Iterable[Any]) -> str:
    """SM3 of the canonical encoding of the items (ledger.Item, or anything
    with the same attributes, e.g. a yibao.v1.SettleItem), 64 lower-case hex."""
    out = bytearray()
    n = 0
    for it in items:
        for text in (it.item_code, it.name):
            raw = str(text).encode("utf-8")
            out += struct.pack(">I", len(raw)) + raw
        out += struct.pack(">Q", int(it.quantity_milli))
        raw = str(it.unit).encode("utf-8")
        out += struct.pack(">I", len(raw)) + raw
        out += struct.pack(">QQ", int(it.unit_price_fen), int(it.amount_fen))
        n += 1
    return yibao_core.sm3(b"YBI1" + struct.pack(">I", n) + bytes(out)).hex()


def settlement_receipt(settlement: Settlement) -> bytes:
    """The receipt of a settlement record (ledger.Settlement), in the layout above."""
    s = settlement
    order = _var(s.order_id, "order_id")
    head = _SETTLEMENT_HEAD.pack(
        MAGIC,
        SETTLEMENT,
        _ascii(s.settled_region, 2, "settled_region"),
        _ascii(s.settlement_id, 32, "settlement_id"),
        _ascii(s.institution_code, 12, "institution_code"),
        _ascii(s.credential_id, 32, "credential_id"),
        _ascii(s.insured_region, 6, "insured_region"),
        s.total_fen,
        s.account_pay_fen,
        s.cash_pay_fen,
        s.balance_after_fen,
        s.settled_at_ms,
        bytes.fromhex(s.items_digest),
        len(order),
    )
    return head + order


def refund_receipt(refund: Refund) -> bytes:
    """The receipt of a refund record (ledger.Refund), in the layout above."""
    f = refund
    rid = _var(f.refund_id, "refund_id")
    head = _REFUND_HEAD.pack(
        MAGIC,
        REFUND,
        _ascii(f.settled_region, 2, "settled_region"),
        _ascii(f.settlement_id, 32, "settlement_id"),
        _ascii(f.institution_code, 12, "institution_code"),
        _ascii(f.credential_id, 32, "credential_id"),
        f.amount_fen,
        f.balance_after_fen,
        f.remaining_fen,
        f.refunded_at_ms,
        len(rid),
    )
    return head + rid


#: The node's key: prepared (what the node passes), or the 32 raw bytes,
#: parsed for that one signature. Both give the same signature.
NodeKey = yibao_core.SigningKey | bytes


def sign(node_key: NodeKey, receipt: bytes) -> bytes:
    """SM2 signature (SM3, default ID), raw r‖s, 64 bytes; deterministic."""
    if isinstance(node_key, yibao_core.SigningKey):
        return node_key.sign(receipt)
    return yibao_core.sm2_sign(node_key, receipt)


def verify(node_public_key: bytes, receipt: bytes, signature: bytes) -> bool:
    return yibao_core.sm2_verify(node_public_key, receipt, signature)


def signed_settlement(node_key: NodeKey, settlement: Settlement) -> tuple[bytes, bytes]:
    """(receipt, signature) of a settlement."""
    receipt = settlement_receipt(settlement)
    return receipt, sign(node_key, receipt)


def signed_refund(node_key: NodeKey, refund: Refund) -> tuple[bytes, bytes]:
    """(receipt, signature) of a refund."""
    receipt = refund_receipt(refund)
    return receipt, sign(node_key, receipt)


def parse(receipt: bytes) -> dict[str, object]:
    """The fields of a receipt (either type) as a dict; ValueError if it is
    not one in the layout above."""
    if len(receipt) < 5 or receipt[:4] != MAGIC:
        raise ValueError("receipt: does not begin with YBR1")
    kind = receipt[4]
    head: struct.Struct
    names: tuple[str, ...]
    if kind == SETTLEMENT:
        head, names = (
            _SETTLEMENT_HEAD,
            (
                "magic",
                "type",
                "settled_region",
                "settlement_id",
                "institution_code",
                "credential_id",
                "insured_region",
                "total_fen",
                "account_pay_fen",
                "cash_pay_fen",
                "balance_after_fen",
                "settled_at_ms",
                "items_digest",
                "length",
            ),
        )
        var = "order_id"
    elif kind == REFUND:
        head, names = (
            _REFUND_HEAD,
            (
                "magic",
                "type",
                "settled_region",
                "settlement_id",
                "institution_code",
                "credential_id",
                "amount_fen",
                "balance_after_fen",
                "remaining_fen",
                "refunded_at_ms",
                "length",
            ),
        )
        var = "refund_id"
    else:
        raise ValueError(f"receipt: unknown type {kind}")
    if len(receipt) < head.size:
        raise ValueError("receipt: too short")
    fields = dict(zip(names, head.unpack_from(receipt), strict=True))
    n = fields.pop("length")
    if len(receipt) != head.size + n:  # type: ignore[operator]
        raise ValueError("receipt: length does not match its variable field")
    out: dict[str, object] = {}
    for k, v in fields.items():
        if k == "items_digest":
            out[k] = v.hex()  # type: ignore[union-attr]
        elif isinstance(v, bytes):
            out[k] = v.decode("ascii")
        else:
            out[k] = v
    out[var] = receipt[head.size :].decode("utf-8")
    out["type"] = "settlement" if kind == SETTLEMENT else "refund"
    return out
