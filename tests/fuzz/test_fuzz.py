"""The fuzz jobs CI runs, each bounded in time: libFuzzer on the core's
targets (core_rs/fuzz: a code through every check, Base45, the trust list),
built on the stable toolchain with sanitizer coverage, and atheris on the
node's request checks (tests/fuzz/fuzz_requests.py). A crash fails the test
and names the input libFuzzer saved; put that file in
core_rs/fuzz/regressions/<target>/ (or tests/fuzz/regressions/requests/)
and every later run replays it first."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FUZZ = REPO / "core_rs" / "fuzz"
TARGET = "x86_64-unknown-linux-gnu"
# What cargo-fuzz passes, without the nightly-only -Zsanitizer: coverage
# counters, the PC table and comparison tracing for libFuzzer. With --target,
# they reach the fuzzed code and not the build scripts.
RUSTFLAGS = " ".join([
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "--cfg fuzzing",
])  # fmt: skip
SECONDS = int(os.environ.get("YIBAO_FUZZ_SECONDS", "15"))


def _run(cmd: list[str], tmp: Path, name: str, regressions: Path, seeds: Path, **kw: object) -> None:
    corpus = tmp / f"corpus-{name}"
    corpus.mkdir()
    artifacts = tmp / f"crashes-{name}"
    artifacts.mkdir()
    if regressions.is_dir() and any(regressions.iterdir()):
        replay = subprocess.run([*cmd, *map(str, sorted(regressions.iterdir()))], capture_output=True, text=True,
                                timeout=300, **kw)  # type: ignore[call-overload]  # fmt: skip
        assert replay.returncode == 0, f"{name}: a saved crash is back:\n{replay.stderr[-3000:]}"
    run = subprocess.run(
        [*cmd, f"-max_total_time={SECONDS}", "-rss_limit_mb=2048", "-timeout=10", f"-artifact_prefix={artifacts}/",
         str(corpus), str(seeds)],
        capture_output=True, text=True, timeout=SECONDS + 300, **kw,  # type: ignore[call-overload]
    )  # fmt: skip
    crashes = sorted(artifacts.iterdir())
    assert run.returncode == 0 and not crashes, f"{name} crashed on {crashes}:\n{run.stderr[-4000:]}"
    assert "Done " in run.stderr, run.stderr[-2000:]


@pytest.fixture(scope="module")
def core_targets() -> Path:
    cargo = shutil.which("cargo")
    assert cargo, "cargo is needed (the Rust toolchain): see README"
    build = subprocess.run(
        [cargo, "build", "--release", "--locked", "--bins", "--target", TARGET],
        cwd=FUZZ, env={**os.environ, "RUSTFLAGS": RUSTFLAGS}, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-4000:]
    return FUZZ / "target" / TARGET / "release"


@pytest.mark.parametrize("target", ["check", "base45", "trust_list"])
def test_core_fuzz_target(core_targets: Path, target: str, tmp_path: Path) -> None:
    _run([str(core_targets / target)], tmp_path, target, FUZZ / "regressions" / target, FUZZ / "corpus" / target)


def test_request_checks_fuzz(tmp_path: Path) -> None:
    here = Path(__file__).resolve().parent
    _run([sys.executable, str(here / "fuzz_requests.py")], tmp_path, "requests", here / "regressions" / "requests",
         here / "corpus" / "requests", cwd=REPO)  # fmt: skip
