"""The node's own SM2 key, which signs settlement and refund receipts.

Made on first start and kept in a file afterwards: 64 hexadecimal digits (the
32-byte private key, big-endian) and a newline, mode 0600, in a directory
created (mode 0700) if missing. Several worker processes may start at once:
the file is written under a temporary name and linked into place, which
fails if another process got there first; that one's key is then read, so
all of them sign with the same key. An existing file is never overwritten.

Every worker and every node serving the same province must use the same
file: GetNodeKey gives one key per province.

The node reads the key once at start (signing_key) and signs every receipt
with the prepared key.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import yibao_core

_KEY_TEXT = re.compile(rb"\s*([0-9A-Fa-f]{64})\s*")


def _read(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(f"{path}: the node key is readable by others (mode {oct(mode & 0o777)}); chmod 600 it")
    m = _KEY_TEXT.fullmatch(path.read_bytes())
    if not m:
        raise ValueError(f"{path}: not a node key (64 hexadecimal digits)")
    key = bytes.fromhex(m.group(1).decode())
    try:
        yibao_core.sm2_public_key(key)
    except ValueError as e:
        raise ValueError(f"{path}: not a valid SM2 private key: {e}") from e
    return key


def load_or_create(path: str | os.PathLike[str]) -> tuple[bytes, bytes]:
    """(private key 32 bytes, public key 65 bytes uncompressed) from the file,
    made first if it does not exist."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = yibao_core.sm2_generate_private_key()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(key.hex().encode() + b"\n")
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)  # fails if another process linked its key first
            except FileExistsError:
                pass
            else:
                dir_fd = os.open(path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        finally:
            tmp.unlink(missing_ok=True)
    private = _read(path)
    return private, yibao_core.sm2_public_key(private)


def signing_key(path: str | os.PathLike[str]) -> yibao_core.SigningKey:
    """The key of load_or_create prepared for signing receipts; its
    public_key is the node's public key."""
    private, public = load_or_create(path)
    key = yibao_core.SigningKey(private)
    assert key.public_key == public
    return key


def key_id(public_key: bytes) -> str:
    """First 4 bytes of SM3(public key), 8 upper-case hex (GetNodeKeyResponse.key_id)."""
    return yibao_core.key_id(public_key)
