"""Private processes on this machine for the demo and the tests: a
redis-server and a node, each on a free loopback port, stopped on exit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import hiredis
from redis.crc import key_slot
from grpc_health.v1 import health_pb2, health_pb2_grpc

import yibao_core

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(what: str, ready: object, proc: subprocess.Popen[bytes], timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        if ready():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {timeout_s:g} s:\n{log.read_text(errors='replace')[-3000:]}")


@dataclass
class Redis:
    """redis-server on a free port, no persistence unless asked."""

    workdir: Path
    port: int = field(default_factory=free_port)
    appendfsync: str | None = None
    extra: Sequence[str] = ()
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is not installed: run scripts/setup")
        self.workdir.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes", "--appendfsync", self.appendfsync] if self.appendfsync else ["--appendonly", "no"]
        log = self.workdir / "redis.log"
        self.proc = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir", str(self.workdir),
             "--logfile", str(log), *persistence, *self.extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        log.touch()
        _wait("redis-server", self._pings, self.proc, 10, log)
        return self

    def _pings(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def command(self, *args: str) -> Any:
        """One command on a connection of its own; its reply as hiredis
        parses it (bytes, ints, lists)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(hiredis.pack_command(args))
            reader = hiredis.Reader()
            while (reply := reader.gets()) is False:
                data = s.recv(65536)
                if not data:
                    raise ConnectionError(f"redis-server on port {self.port} closed the connection")
                reader.feed(data)
        if isinstance(reply, hiredis.ReplyError):
            raise RuntimeError(f"redis-server on port {self.port}: {' '.join(args)}: {reply}")
        return reply

    def pause(self) -> None:
        """SIGSTOP: the process stops answering anyone, its primary included."""
        if self.proc:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc:
            self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        port = free_port()
        if port >= 55536:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster member")


@dataclass
class Cluster:
    """A Redis Cluster on loopback: `primaries` primaries, each with
    `replicas` replicas, AOF with `appendfsync` on every member (what a
    node's --min-replicas relies on). Members are `Redis` objects."""

    workdir: Path
    primaries: int = 3
    replicas: int = 1
    appendfsync: str = "always"
    members: list[Redis] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.members[0].port}"

    def start(self, timeout_s: float = 30) -> Cluster:
        for i in range(self.primaries * (1 + self.replicas)):
            member = Redis(
                self.workdir / f"m{i}",
                port=cluster_port(),
                appendfsync=self.appendfsync,
                extra=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"),
            )
            self.members.append(member.start())
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{m.port}" for m in self.members),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while not all(self._ready(m) for m in self.members):
            if time.monotonic() > deadline:
                raise RuntimeError(f"Redis Cluster in {self.workdir} not ready after {timeout_s:g} s")
            time.sleep(0.1)
        return self

    def _ready(self, member: Redis) -> bool:
        info = member.command("CLUSTER", "INFO").decode()
        if "cluster_state:ok" not in info:
            return False
        replication = member.command("INFO", "replication").decode()
        return "role:master" in replication or "master_link_status:up" in replication

    def primary_of(self, key: str) -> Redis:
        """The member that serves `key`'s slot now."""
        slot = key_slot(key.encode())
        for m in self.members:
            if m.proc is None or m.proc.poll() is not None:
                continue
            try:
                for first, last, owner, *_ in m.command("CLUSTER", "SLOTS"):
                    if first <= slot <= last:
                        return self.member(int(owner[1]))
            except OSError:
                continue
        raise RuntimeError(f"no live member knows who serves slot {slot}")

    def replicas_of(self, primary: Redis) -> list[Redis]:
        ports = [int(r[1]) for r in primary.command("ROLE")[2]]
        return [self.member(p) for p in ports]

    def member(self, port: int) -> Redis:
        return next(m for m in self.members if m.port == port)

    def stop(self) -> None:
        for m in self.members:
            m.stop()


@dataclass
class Issuer:
    """A demo issuer key and the trust list that names it."""

    private_key: bytes
    trust_list_path: Path

    @classmethod
    def create(cls, workdir: Path) -> Issuer:
        key = yibao_core.sm2_generate_private_key()
        public = yibao_core.sm2_public_key(key)
        doc = {
            "version": 1,
            "keys": [
                {
                    "key_id": yibao_core.key_id(public),
                    "public_key": public.hex(),
                    "not_before": "2020-01-01T00:00:00Z",
                    "not_after": "2100-01-01T00:00:00Z",
                    "issuer": "yibao-verify demo issuer",
                }
            ],
        }
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / "trust-list.json"
        path.write_text(json.dumps(doc, indent=1))
        return cls(key, path)

    def issue(self, credential_id: str, insured_region: str, channel: int, *, issued_at_ms: int | None = None,
              ttl_s: int = 60, presenter_id: str | None = None) -> str:
        return yibao_core.issue(
            self.private_key,
            credential_id=credential_id,
            insured_region=insured_region,
            channel=channel,
            issued_at_ms=int(time.time() * 1000) if issued_at_ms is None else issued_at_ms,
            ttl_s=ttl_s,
            presenter_id=presenter_id,
        )


@dataclass
class Node:
    """`python -m server` on free ports: plaintext (--insecure) unless
    `credentials` (for the readiness check) and TLS options in `extra` are given."""

    workdir: Path
    redis_url: str
    trust_list: Path | None = None
    region: str = "44"
    extra: Sequence[str] = ()
    credentials: grpc.ChannelCredentials | None = None
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def log(self) -> Path:
        return self.workdir / f"node-{self.port}.log"

    def start(self, timeout_s: float = 30) -> Node:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable, "-m", "server",
            *([] if self.credentials else ["--insecure"]),
            "--listen", self.target,
            "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
            "--redis-url", self.redis_url,
            "--region", self.region,
            *(["--trust-list", str(self.trust_list)] if self.trust_list else []),
            *([] if "--node-key" in self.extra else ["--node-key", str(self.workdir / "node.key")]),
            *self.extra,
        ]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(args, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
        _wait("node", self._serving, self.proc, timeout_s, self.log)
        return self

    def _serving(self) -> bool:
        try:
            with self.channel() as ch:
                reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=0.5)
                return reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False

    def channel(self) -> grpc.Channel:
        if self.credentials is None:
            return grpc.insecure_channel(self.target)
        return grpc.secure_channel(self.target, self.credentials)

    def stop(self, timeout_s: float = 20) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)
