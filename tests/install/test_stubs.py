"""The gRPC stubs are committed (so `pip install .` and `pip install ./clients`
work from a fresh clone) in one tree, core_rs/python/yibao: these tests fail
when a .proto changed and scripts/gen-protos was not run, or when a stub was
edited by hand, or when the client's package stops sharing the node's tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STUBS = REPO / "core_rs" / "python" / "yibao"


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and "__pycache__" not in p.parts}  # fmt: skip


def test_committed_stubs_are_what_gen_protos_writes(tmp_path: Path) -> None:
    run = subprocess.run([REPO / "scripts" / "gen-protos", str(tmp_path)], capture_output=True, text=True,
                         env={**os.environ, "PYTHON": sys.executable}, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    fresh, committed = _files(tmp_path / "yibao"), _files(STUBS)
    assert fresh.keys() == committed.keys(), "run scripts/gen-protos and commit core_rs/python/yibao"
    stale = sorted(name for name in fresh if fresh[name] != committed[name])
    assert not stale, f"stale stubs {stale}: run scripts/gen-protos and commit core_rs/python/yibao"


def test_the_client_package_ships_the_same_tree() -> None:
    link = REPO / "clients" / "yibao"
    assert link.is_symlink(), "clients/yibao must link to core_rs/python/yibao, not hold a copy that can drift"
    assert link.resolve() == STUBS.resolve()
