"""Helpers for the black-box tests of a running node (tests/node).

Everything here talks to real processes: a real ``redis-server``, real
``python -m server`` nodes started as subprocesses, real gRPC and HTTP. There
are no mocks. Every wait is bounded in time and in number of tries.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import grpc

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
SKEW_MS = 5000
DEFAULT_INSTITUTION = "H44030000001"


def spec_dir() -> Path:
    env = os.environ.get("YIBAO_SPEC_DIR")
    if env:
        return Path(env).resolve()
    return REPO.parent / "shared" / "spec"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def new_id() -> str:
    """A fresh credential id, 32 upper-case hex digits."""
    return os.urandom(16).hex().upper()


def new_rid(prefix: str = "r") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


# --------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------
_used_ports: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (and that
    this session has not handed out before)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in _used_ports:
            _used_ports.add(port)
            return port
    raise RuntimeError("no free port found in 200 tries")


def wait_port_closed(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.2)
            if s.connect_ex((HOST, port)) != 0:
                return True
        time.sleep(0.05)
    return False


# --------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------
def redis_ping(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A private ``redis-server`` on 127.0.0.1 without persistence."""

    def __init__(self, workdir: Path, port: int | None = None, databases: int = 4096):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.databases = databases
        self.proc: subprocess.Popen | None = None
        self._log = None
        self._next_db = 1
        self._db_lock = threading.Lock()

    def url(self, db: int = 0) -> str:
        return f"redis://{HOST}:{self.port}/{db}"

    def next_db(self) -> int:
        """A database number no test used before (isolation between tests)."""
        with self._db_lock:
            db = self._next_db
            self._next_db += 1
        if db >= self.databases:
            raise RuntimeError("out of Redis databases")
        return db

    def start(self, timeout: float = 15.0) -> None:
        exe = os.environ.get("REDIS_SERVER", "redis-server")
        self._log = open(self.workdir / "redis.stdout", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                exe,
                "--port", str(self.port),
                "--bind", HOST,
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
                "--databases", str(self.databases),
                "--daemonize", "no",
                "--logfile", str(self.workdir / "redis.log"),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {self.log_tail()}")
            if redis_ping(self.port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING in {timeout}s")

    def kill9(self) -> None:
        """Kill -9 (a crash): no shutdown, connections drop."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._close_log()
        wait_port_closed(self.port, 5)

    def restart(self, timeout: float = 15.0) -> None:
        """Start again on the same port (empty: nothing is persisted)."""
        if self.proc and self.proc.poll() is None:
            raise RuntimeError("redis-server is still running")
        self.start(timeout)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, n: int = 20) -> str:
        p = self.workdir / "redis.log"
        return "\n".join(p.read_text(errors="replace").splitlines()[-n:]) if p.exists() else ""


# --------------------------------------------------------------------------
# A TCP proxy, to cut one node off Redis while the others keep it
# --------------------------------------------------------------------------
class TcpProxy:
    """Forwards 127.0.0.1:port to 127.0.0.1:target. ``sever()`` drops every
    connection and refuses (accepts then closes) new ones until ``heal()``."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self._severed = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((HOST, self.port))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name="tcp-proxy")
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._severed.is_set():
                _hard_close(client)
                continue
            try:
                upstream = socket.create_connection((HOST, self.target_port), timeout=2)
            except OSError:
                _hard_close(client)
                continue
            with self._lock:
                self._socks.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while not self._stop.is_set() and not self._severed.is_set():
                r, _, _ = select.select([a, b], [], [], 0.2)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._socks.discard(a)
                self._socks.discard(b)
            _hard_close(a)
            _hard_close(b)

    def sever(self) -> None:
        self._severed.set()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def heal(self) -> None:
        self._severed.clear()

    def close(self) -> None:
        self._stop.set()
        self.sever()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(5)


def _hard_close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()


# --------------------------------------------------------------------------
# Issuing codes
# --------------------------------------------------------------------------
class Issuer:
    """A test issuer key and a convenient ``code()``."""

    def __init__(
        self,
        not_before: str = "2020-01-01T00:00:00Z",
        not_after: str = "2100-01-01T00:00:00Z",
        name: str = "tests/node issuer",
    ):
        import yibao_core

        self._core = yibao_core
        self.private_key = yibao_core.sm2_generate_private_key()
        self.public_key = yibao_core.sm2_public_key(self.private_key)
        self.key_id = yibao_core.key_id(self.public_key)
        self.not_before = not_before
        self.not_after = not_after
        self.name = name

    def entry(self) -> dict:
        return {
            "key_id": self.key_id,
            "public_key": self.public_key.hex(),
            "not_before": self.not_before,
            "not_after": self.not_after,
            "issuer": self.name,
        }

    def code(
        self,
        credential_id: str | None = None,
        *,
        insured_region: str = "440300",
        channel: int = 2,
        issued_at_ms: int | None = None,
        age_ms: int = 0,
        ttl_s: int = 60,
        nonce: bytes | None = None,
        presenter_id: str | None = None,
    ) -> str:
        return self._core.issue(
            self.private_key,
            credential_id=credential_id or new_id(),
            insured_region=insured_region,
            channel=channel,
            issued_at_ms=(now_ms() - age_ms) if issued_at_ms is None else issued_at_ms,
            ttl_s=ttl_s,
            nonce=nonce if nonce is not None else os.urandom(8),
            presenter_id=presenter_id,
        )


def trust_list_json(entries: list[dict]) -> str:
    return json.dumps({"version": 1, "keys": entries}, indent=2)


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def b45_payload(code: str) -> bytes:
    import yibao_core

    t = code.strip(" \t\r\n\f")
    assert t.startswith("YB1:")
    return yibao_core.base45_decode(t[4:])


def code_from_payload(payload: bytes) -> str:
    import yibao_core

    return "YB1:" + yibao_core.base45_encode(payload)


# --------------------------------------------------------------------------
# gRPC helpers
# --------------------------------------------------------------------------
def stubs():
    from yibao.v1 import (
        admin_pb2,
        admin_pb2_grpc,
        common_pb2,
        verifier_pb2,
        verifier_pb2_grpc,
    )

    return admin_pb2, admin_pb2_grpc, common_pb2, verifier_pb2, verifier_pb2_grpc


def error_infos(err: grpc.RpcError) -> list:
    """The google.rpc.ErrorInfo details of a failed call."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    st = rpc_status.from_call(err)
    out = []
    if st is None:
        return out
    for d in st.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            out.append(info)
    return out


def error_fields(err: grpc.RpcError) -> list[str]:
    return [info.metadata["field"] for info in error_infos(err) if "field" in info.metadata]


def ts_ms(ts) -> int:
    return ts.seconds * 1000 + ts.nanos // 1_000_000


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------
def scrape(url: str, timeout: float = 5.0) -> list:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (127.0.0.1 only)
        assert r.status == 200, r.status
        text = r.read().decode("utf-8")
    samples = []
    for fam in text_string_to_metric_families(text):
        samples.extend(fam.samples)
    return samples


def metric_sum(samples, name: str, **labels) -> float | None:
    """Sum of the samples called ``name`` whose labels include ``labels``;
    None when no sample has that name at all."""
    found = False
    total = 0.0
    for s in samples:
        if s.name != name:
            continue
        found = True
        if all(s.labels.get(k) == v for k, v in labels.items()):
            total += s.value
    return total if found else None


# --------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------
ALL_NODES: list[Node] = []


class NodeError(AssertionError):
    pass


class Node:
    """One ``python -m server`` subprocess."""

    def __init__(self, name: str, workdir: Path, args: list[str], env: dict, port: int, metrics_port: int):
        self.name = name
        self.workdir = workdir
        self.args = args
        self.env = env
        self.port = port
        self.metrics_port = metrics_port
        self.address = f"{HOST}:{port}"
        self.metrics_url = f"http://{HOST}:{metrics_port}/metrics"
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        self.proc: subprocess.Popen | None = None
        self.started_at = time.monotonic()
        self.stopped_at: float | None = None
        self._channel: grpc.Channel | None = None
        self._files = []

    # ---- process -------------------------------------------------------
    def start(self) -> Node:
        out = open(self.stdout_path, "ab")  # noqa: SIM115
        err = open(self.stderr_path, "ab")  # noqa: SIM115
        self._files = [out, err]
        self.started_at = time.monotonic()
        self.stopped_at = None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", *self.args],
            cwd=str(REPO),
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        ALL_NODES.append(self)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 60.0) -> Node:
        from grpc_health.v1 import health_pb2

        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.alive():
                self._mark_stopped()
                raise NodeError(
                    f"node {self.name} exited with {self.proc.returncode} before SERVING\n{self.log_tail()}"
                )
            try:
                resp = self.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return self
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
            except grpc.RpcError as e:
                last = f"{e.code().name}: {e.details()}"
            time.sleep(0.1)
        raise NodeError(f"node {self.name} not SERVING after {timeout}s (last: {last})\n{self.log_tail()}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code, or None if still running after ``timeout``."""
        assert self.proc is not None
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._mark_stopped()
        return rc

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL (whole process group) after ``grace``. The exit code."""
        self.close_channel()
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(signal.SIGTERM)
                rc = self.wait_exit(grace)
                if rc is None:
                    self._killpg()
                    rc = self.wait_exit(10)
            else:
                rc = self.proc.returncode
            # Worker processes left behind in the node's own process group.
            self._killpg()
        self._mark_stopped()
        return rc

    def _killpg(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def _mark_stopped(self) -> None:
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()
        for f in self._files:
            f.close()
        self._files = []

    def log_tail(self, n: int = 60) -> str:
        parts = []
        for label, p in (("stdout", self.stdout_path), ("stderr", self.stderr_path)):
            try:
                lines = p.read_text(errors="replace").splitlines()
            except FileNotFoundError:
                lines = []
            parts.append(f"--- {self.name} {label} (last {n} of {len(lines)} lines) ---")
            parts.extend(lines[-n:])
        return "\n".join(parts)

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    # ---- gRPC ----------------------------------------------------------
    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.address)
        return self._channel

    def new_channel(self) -> grpc.Channel:
        """A channel of its own (its own TCP connection)."""
        return grpc.insecure_channel(self.address, options=[("grpc.use_local_subchannel_pool", 1)])

    def close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    @property
    def health(self):
        from grpc_health.v1 import health_pb2_grpc

        return health_pb2_grpc.HealthStub(self.channel)

    @property
    def verifier(self):
        return stubs()[4].VerifierStub(self.channel)

    @property
    def admin(self):
        return stubs()[1].AdminStub(self.channel)

    def verify(self, code: str, institution_code: str = DEFAULT_INSTITUTION, request_id: str | None = None,
               timeout: float = 10.0):
        vpb = stubs()[3]
        return self.verifier.Verify(
            vpb.VerifyRequest(code=code, institution_code=institution_code, request_id=request_id or new_rid()),
            timeout=timeout,
        )

    def outcome(self, code: str, **kw) -> str:
        vpb = stubs()[3]
        return vpb.Outcome.Name(self.verify(code, **kw).outcome).removeprefix("OUTCOME_")

    def revoke(self, credential_id: str, reason: str = "LOST", timeout: float = 10.0):
        apb, _, cpb, _, _ = stubs()
        return self.admin.Revoke(
            apb.RevokeRequest(credential_id=credential_id,
                              reason=cpb.RevocationReason.Value("REVOCATION_REASON_" + reason)),
            timeout=timeout,
        )

    def restore(self, credential_id: str, timeout: float = 10.0):
        apb = stubs()[0]
        return self.admin.Restore(apb.RestoreRequest(credential_id=credential_id), timeout=timeout)

    def withdraw_channel(self, credential_id: str, channel: int, timeout: float = 10.0):
        apb = stubs()[0]
        return self.admin.WithdrawChannel(
            apb.WithdrawChannelRequest(credential_id=credential_id, channel=channel), timeout=timeout
        )

    def restore_channel(self, credential_id: str, channel: int, timeout: float = 10.0):
        apb = stubs()[0]
        return self.admin.RestoreChannel(
            apb.RestoreChannelRequest(credential_id=credential_id, channel=channel), timeout=timeout
        )

    def load_trust_list(self, text: str, timeout: float = 10.0):
        apb = stubs()[0]
        return self.admin.LoadTrustList(apb.LoadTrustListRequest(trust_list_json=text), timeout=timeout)

    def metrics(self) -> list:
        return scrape(self.metrics_url)


class NodeFactory:
    """Starts nodes that share one Redis database (and so one national
    state); stops them all at ``close()``."""

    def __init__(self, workdir: Path, redis: RedisServer, trust_list_path: Path, db: int | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.redis = redis
        self.db = redis.next_db() if db is None else db
        self.trust_list_path = trust_list_path
        self.nodes: list[Node] = []

    @property
    def redis_url(self) -> str:
        return self.redis.url(self.db)

    def base_env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("YIBAO_") or k == "YIBAO_SPEC_DIR"}
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def spawn(
        self,
        *,
        redis_url: str | None = None,
        trust_list: Path | None = None,
        region: str = "44",
        workers: int | None = None,
        max_staleness_s: float | None = None,
        extra_args: tuple[str, ...] = (),
        env: dict | None = None,
        args: list[str] | None = None,
        port: int | None = None,
        metrics_port: int | None = None,
    ) -> Node:
        """Start a node without waiting for it. ``args`` replaces the whole
        command line (then ``port``/``metrics_port`` must say what it uses)."""
        port = port or free_port()
        metrics_port = metrics_port or free_port()
        if args is None:
            args = [
                "--insecure",
                "--listen", f"{HOST}:{port}",
                "--metrics-listen", f"{HOST}:{metrics_port}",
                "--redis-url", redis_url or self.redis_url,
                "--region", region,
                "--trust-list", str(trust_list or self.trust_list_path),
            ]
            if workers is not None:
                args += ["--workers", str(workers)]
            if max_staleness_s is not None:
                args += ["--max-staleness-s", str(max_staleness_s)]
            args += list(extra_args)
        full_env = self.base_env()
        full_env.update(env or {})
        name = f"node{len(self.nodes) + 1}-{port}"
        node = Node(name, self.workdir, args, full_env, port, metrics_port)
        self.nodes.append(node)
        return node.start()

    def start(self, ready_timeout: float = 60.0, **kw) -> Node:
        node = self.spawn(**kw)
        try:
            return node.wait_ready(ready_timeout)
        except NodeError:
            node.stop(grace=5)
            raise

    def close(self) -> None:
        for node in self.nodes:
            node.stop()


def nodes_active_since(t0: float) -> list[Node]:
    return [n for n in ALL_NODES if n.stopped_at is None or n.stopped_at >= t0]


# --------------------------------------------------------------------------
# Polling
# --------------------------------------------------------------------------
def poll(fn, *, timeout: float, interval: float = 0.02, max_tries: int = 100_000):
    """Call ``fn()`` until it returns a truthy value or ``timeout`` seconds
    have passed (bounded in tries too). Returns ``(value, sent_at)``: the
    truthy value and how long after the start the successful call was made,
    or ``(last_value, None)`` when it never succeeded."""
    t0 = time.monotonic()
    last = None
    for _ in range(max_tries):
        sent = time.monotonic() - t0
        if sent > timeout:
            break
        last = fn()
        if last:
            return last, sent
        time.sleep(interval)
    return last, None


def process_group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat.rsplit(")", 1)[1].split()
        if rest[0] != "Z" and int(rest[2]) == pgid:
            out.append(int(d))
    return out
