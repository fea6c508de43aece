"""The installable node: the wheel that `pip install .` builds holds the
core, the server and the gRPC stubs, and its `yibao-node` console script
runs a node from outside the checkout, against a real redis-server, over
real gRPC."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.local import Redis, free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # What `pip install .` builds; maturin (the build backend, in the test
    # extra) from this environment rather than a fresh download, and the Rust
    # build in CARGO_TARGET_DIR when it is set.
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                          "--wheel-dir", str(out), str(REPO)], capture_output=True, text=True, timeout=900)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    (built,) = out.glob("yibao_verify-*.whl")
    return built


def test_the_wheel_holds_the_core_the_server_the_stubs_and_the_command(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"server/cli.py", "server/app.py", "yibao/v1/verifier_pb2.py", "yibao/v1/settlement_pb2_grpc.py",
            "yibao/v1/admin_pb2.py", "yibao_core/__init__.py", "yibao_core/py.typed"} <= names  # fmt: skip
    assert any(n.startswith("yibao_core/_yibao_core") and n.endswith(".so") for n in names)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode().replace(" ", "")
    assert "yibao-node=server.cli:main" in scripts


def test_yibao_node_from_the_wheel_serves(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    # The wheel itself, and its dependencies from the test environment (they
    # are PyPI's; the point here is what the wheel brings).
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True, timeout=300)
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    (Path(site) / "deps-from-test-env.pth").write_text(sysconfig.get_path("purelib") + "\n")

    away = tmp_path / "elsewhere"  # not the checkout: nothing importable from there
    away.mkdir()
    origin = subprocess.run(
        [py, "-c", "import server, yibao.v1.verifier_pb2 as v, yibao_core; print(server.__file__, v.__file__, yibao_core.__file__)"],
        cwd=away, check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    assert all(path.startswith(str(env_dir)) for path in origin), origin

    node_cmd = env_dir / "bin" / "yibao-node"
    helped = subprocess.run([node_cmd, "--help"], cwd=away, capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "--min-replicas" in helped.stdout and "yibao-node" in helped.stdout

    redis = Redis(tmp_path / "redis").start()
    port = free_port()
    with (tmp_path / "node.log").open("wb") as log:
        proc = subprocess.Popen(
            [node_cmd, "--insecure", "--listen", f"127.0.0.1:{port}", "--metrics-listen", f"127.0.0.1:{free_port()}",
             "--redis-url", redis.url, "--node-key", str(tmp_path / "node.key")],
            cwd=away, stdout=log, stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )  # fmt: skip
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            grpc.channel_ready_future(ch).result(timeout=30)
            health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            from yibao.v1 import verifier_pb2, verifier_pb2_grpc

            answer = verifier_pb2_grpc.VerifierStub(ch).Verify(
                verifier_pb2.VerifyRequest(code="not a code", institution_code="H44030500001", request_id="r1"),
                timeout=10,
            )
            assert answer.outcome == verifier_pb2.OUTCOME_MALFORMED
    finally:
        proc.terminate()
        assert proc.wait(30) == 0, (tmp_path / "node.log").read_text()[-2000:]
        redis.stop()
