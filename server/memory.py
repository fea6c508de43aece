"""Giving freed memory back to the system.

A snapshot switch frees a whole mirror (its delta: tens of MiB after a bulk
load), much of it allocated on the threads that built the new one. glibc
keeps what an arena freed for that arena's next use, and raises its
threshold for serving a large allocation by mmap each time one such block
is freed, so the growing tables of a delta landed in the arenas and a node
that took a bulk load stayed tens of MiB a worker larger than one started
after it, with nothing in use. A fixed threshold keeps every large block a
mapping of its own, unmapped when freed; malloc_trim(0) hands back the free
pages the arenas keep. Elsewhere than glibc both do nothing."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)


# mallopt's M_MMAP_THRESHOLD, and glibc's default for it: setting it, even
# to the default, turns off its adjustment.
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 128 * 1024


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    except (OSError, AttributeError, TypeError):  # not glibc
        return None
    return libc


_LIBC = _glibc()


def keep_large_blocks_apart() -> None:
    """Serve every allocation over 128 KiB by a mapping of its own, for good:
    call once at the start of a serving process."""
    if _LIBC is not None and _LIBC.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES) != 1:
        log.warning("mallopt(M_MMAP_THRESHOLD) refused: freed mirrors may stay resident")


def give_back() -> None:
    """Return free heap pages to the system (glibc; a no-op elsewhere). It
    walks every arena: call it off the event loop, after freeing much."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
