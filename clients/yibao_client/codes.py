"""Reading scanned codes from a file, one per line.

A code may hold spaces (space is a Base45 digit, credential-v1 section 1),
so a line is never split or trimmed on white space: only its line ending is
removed (``\\n`` or ``\\r\\n``). Nothing else counts as a line break: not
``\\v``, ``\\f``, ``\\x1c``-``\\x1e``, ``\\x85``, U+2028 or U+2029, which
:meth:`str.splitlines` would split on. Lines that are empty or hold only
white space are skipped (they are not codes), but line numbers still count
them, so a number always points at the line in the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

__all__ = ["code_of_line", "iter_code_lines", "split_code_lines"]


def _decode(raw: bytes) -> str:
    # A code is ASCII; anything else is sent as it is (the node answers
    # MALFORMED) with undecodable bytes replaced, since a gRPC string must be UTF-8.
    return raw.decode("utf-8", errors="replace")


def _strip_ending(raw: bytes) -> bytes:
    if raw.endswith(b"\n"):
        raw = raw[:-1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
    return raw


def code_of_line(raw: bytes) -> str | None:
    """The code on one line (its ``\\n`` or ``\\r\\n`` removed, nothing
    else), or None for a blank line."""
    line = _strip_ending(raw)
    return _decode(line) if line.strip() else None


def iter_code_lines(lines: BinaryIO | Iterable[bytes]) -> Iterator[tuple[int, str]]:
    """``(line number from 1, code)`` for each non-blank line of a binary file
    (or any iterable of byte lines ending in ``\\n``)."""
    for number, raw in enumerate(lines, start=1):
        code = code_of_line(raw)
        if code is not None:
            yield number, code


def split_code_lines(text: str) -> list[tuple[int, str]]:
    """The same as :func:`iter_code_lines`, for text already in memory."""
    data = text.encode("utf-8", errors="surrogateescape")
    return list(iter_code_lines(_byte_lines(data)))


def _byte_lines(data: bytes) -> Iterator[bytes]:
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        if end < 0:
            yield data[start:]
            return
        yield data[start : end + 1]
        start = end + 1
