"""yibao_core.SnapshotBuilder: the revocation snapshot's filter, built from
ids given in parts, as a node reads the national store's buckets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import yibao_core


def records(ids: list[bytes], code: bytes = b"L") -> bytes:
    return b"".join(i + code for i in ids)


def test_every_id_added_in_parts_is_held(tmp_path: Path) -> None:
    ids = [os.urandom(16) for _ in range(30_000)]
    builder = yibao_core.SnapshotBuilder()
    for start in range(0, len(ids), 7_000):
        builder.add(records(ids[start : start + 7_000]))
    builder.add(b"".join(ids[:100]), record_size=16)  # repeats count once in the filter
    assert len(builder) == 30_100
    assert builder.write(tmp_path / "s.fuse") == 30_000
    assert len(builder) == 0, "written: the builder starts empty again"

    mirror = yibao_core.RevocationSet(tmp_path / "s.fuse")
    assert mirror.snapshot_ids == 30_000
    assert all(mirror.reason(i) == "UNCONFIRMED" for i in ids), "never a missed id"
    others = [os.urandom(16) for _ in range(20_000)]
    maybes = sum(mirror.reason(i) == "UNCONFIRMED" for i in others)
    assert maybes <= 5, f"{maybes} of 20,000 unknown ids said maybe (expected about 0.3)"


def test_an_empty_builder_writes_a_filter_of_nothing(tmp_path: Path) -> None:
    assert yibao_core.SnapshotBuilder().write(tmp_path / "empty.fuse") == 0
    mirror = yibao_core.RevocationSet(tmp_path / "empty.fuse")
    assert mirror.reason(os.urandom(16)) is None


@pytest.mark.parametrize(
    ("data", "size", "message"),
    [
        (b"\0" * 18, 17, "records: 18 bytes is not a whole number of 17-byte records"),
        (b"\0" * 17, 16, "records: 17 bytes is not a whole number of 16-byte records"),
        (b"\0" * 32, 32, "record_size: 32 is not 16 or 17"),
    ],
)
def test_partial_records_are_refused_and_nothing_is_added(data: bytes, size: int, message: str) -> None:
    builder = yibao_core.SnapshotBuilder()
    builder.add(b"\1" * 17)
    with pytest.raises(ValueError, match=message):
        builder.add(data, record_size=size)
    assert len(builder) == 1


def test_an_unwritable_path_names_the_path(tmp_path: Path) -> None:
    builder = yibao_core.SnapshotBuilder()
    builder.add(b"\1" * 17)
    target = tmp_path / "no-such-dir" / "s.fuse"
    with pytest.raises(OSError, match="no-such-dir"):
        builder.write(target)
    assert not target.parent.exists()
