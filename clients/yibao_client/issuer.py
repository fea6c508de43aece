"""A demo issuer: keys, trust lists, signed codes and their QR images.

This is what ``yibao keygen`` and ``yibao issue`` run. It works offline and
needs the ``issuer`` extra (``pip install 'yibao-client[issuer]'``): the
verification core ``yibao_core`` for SM2/SM3, and ``segno`` for QR images.

A key file holds the 32-byte SM2 private key as 64 hexadecimal digits and a
newline, readable by its owner only (mode 0600). It is a demo format for
tests and local nodes: a real issuing platform keeps its key in an HSM.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import segno

__all__ = [
    "IssuerUnavailable",
    "generate_private_key",
    "issue_code",
    "key_id_of",
    "parse_time",
    "public_key_of",
    "qr_code",
    "read_key_file",
    "trust_list_json",
    "write_key_file",
    "write_png",
]


class IssuerUnavailable(RuntimeError):
    """A package of the ``issuer`` extra is not installed."""


def _core() -> ModuleType:
    try:
        import yibao_core
    except ImportError as e:
        raise IssuerUnavailable(
            "the demo issuer needs the verification core `yibao_core`: pip install 'yibao-client[issuer]'"
        ) from e
    return yibao_core


def generate_private_key() -> bytes:
    """A fresh SM2 private key (32 bytes) from the OS random source."""
    key: bytes = _core().sm2_generate_private_key()
    return key


def public_key_of(private_key: bytes) -> bytes:
    """The 65-byte uncompressed public key (04||X||Y)."""
    pub: bytes = _core().sm2_public_key(private_key)
    return pub


def key_id_of(public_key: bytes) -> str:
    """credential-v1 key id: the first 4 bytes of SM3(public key), 8 upper-case hex digits."""
    kid: str = _core().key_id(public_key)
    return kid


def write_key_file(path: str | os.PathLike[str], private_key: bytes, *, force: bool = False) -> None:
    """Write the key as hex, mode 0600. Refuses to replace a file unless ``force``."""
    if len(private_key) != 32:
        raise ValueError("an SM2 private key is 32 bytes")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)  # also when an existing file is replaced
        os.write(fd, private_key.hex().encode("ascii") + b"\n")
    finally:
        os.close(fd)


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """Read a key written by :func:`write_key_file`; ValueError if it is not one."""
    with open(path, "rb") as f:
        text = f.read(1024).strip()
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != 32:
        raise ValueError(
            f"{os.fspath(path)!r} is not an issuer key file (64 hex digits, as `yibao keygen` writes)"
        )
    public_key_of(key)  # ValueError for 0 or >= n
    return key


def parse_time(text: str) -> dt.datetime:
    """``2026-01-01``, ``2026-01-01T08:00:00+08:00`` or ``...Z`` -> an aware datetime
    (a date or a time without zone is UTC)."""
    try:
        t = dt.datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO 8601 date or time: {text!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _iso_z(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def trust_list_json(
    keys: list[dict[str, Any]] | None = None,
    *,
    public_key: bytes | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    issuer: str = "demo issuer (yibao keygen)",
) -> str:
    """A trust list (credential-v1 section 6) as JSON text.

    Either pass ``keys`` (dicts with ``public_key`` bytes, ``not_before``,
    ``not_after`` datetimes, ``issuer``), or one key's fields as keywords.
    """
    if keys is None:
        if public_key is None or not_before is None or not_after is None:
            raise TypeError("trust_list_json needs keys=[...] or public_key, not_before, not_after")
        keys = [
            {"public_key": public_key, "not_before": not_before, "not_after": not_after, "issuer": issuer}
        ]
    entries = []
    for k in keys:
        nb, na = k["not_before"], k["not_after"]
        if not nb < na:
            raise ValueError("not_before must be earlier than not_after")
        entries.append(
            {
                "key_id": key_id_of(k["public_key"]),
                "public_key": k["public_key"].hex(),
                "not_before": _iso_z(nb),
                "not_after": _iso_z(na),
                "issuer": k.get("issuer", issuer),
            }
        )
    return json.dumps({"version": 1, "keys": entries}, indent=2, ensure_ascii=False) + "\n"


def issue_code(
    private_key: bytes,
    *,
    credential_id: str,
    insured_region: str,
    channel: int,
    issued_at_ms: int | None = None,
    ttl_s: int = 60,
    presenter_id: str | None = None,
    nonce: bytes | None = None,
) -> str:
    """A signed code ``YB1:...`` (195 characters). ``issued_at_ms`` defaults
    to now; the nonce is random unless given. ValueError names a bad field."""
    if issued_at_ms is None:
        issued_at_ms = time.time_ns() // 1_000_000
    code: str = _core().issue(
        private_key,
        credential_id=credential_id,
        insured_region=insured_region,
        channel=channel,
        issued_at_ms=issued_at_ms,
        ttl_s=ttl_s,
        nonce=nonce,
        presenter_id=presenter_id,
    )
    return code


def qr_code(code: str) -> segno.QRCode:
    """The QR symbol of a code, in alphanumeric mode (Base45 is made for it),
    error correction level M or better."""
    try:
        import segno
    except ImportError as e:
        raise IssuerUnavailable("QR images need `segno`: pip install 'yibao-client[issuer]'") from e
    return segno.make_qr(code, mode="alphanumeric", error="m", boost_error=True)


def write_png(code: str, path: str | os.PathLike[str], *, scale: int = 4, border: int = 4) -> None:
    """Write the code's QR symbol as a black-on-white PNG (``scale`` pixels
    per module, ``border`` modules of quiet zone)."""
    qr_code(code).save(os.fspath(path), kind="png", scale=scale, border=border)
