"""The node's options (api.md "Running a node"): each flag also read from
the environment as YIBAO_<OPTION>, the flag winning over the variable."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65".split()
)


EVENT_LOOPS = ("uvloop", "asyncio")
CLUSTER_SCHEME = "redis+cluster://"


@dataclass(frozen=True)
class Config:
    listen: str = "127.0.0.1:50051"
    metrics_listen: str = "127.0.0.1:9464"
    redis_url: str = "redis://127.0.0.1:6379/0"
    regional_redis_url: str | None = None
    region: str = "44"
    peers: dict[str, str] = field(default_factory=dict)
    trust_list: Path | None = None
    insecure: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    workers: int = 1
    max_staleness_s: float = 30.0
    skew_ms: int = 5000
    token_ttl_s: int = 600
    grace_s: float = 10.0
    node_key: Path | None = None
    event_loop: str = "uvloop"
    #: Replicas that must hold a write before it is answered, per store;
    #: None: 1 for a Redis Cluster, 0 for a standalone server.
    min_replicas: int | None = None
    replica_timeout_ms: int = 500
    log_format: str = "text"
    access_log: bool = False
    otel_endpoint: str | None = None
    health_listen: str | None = None
    max_in_flight: int = 1024
    max_in_flight_per_caller: int = 256
    #: Where the revocation snapshot's file is kept, shared by the workers;
    #: None: a private directory made at start and removed at exit.
    revocation_dir: Path | None = None
    snapshot_after: int = 100_000
    max_queued: int = 256

    def replicas_for(self, url: str) -> int:
        """How many replicas must acknowledge a write to the store at `url`."""
        if self.min_replicas is not None:
            return self.min_replicas
        return 1 if url.startswith(CLUSTER_SCHEME) else 0


def _otel_env_endpoint() -> str | None:
    """OpenTelemetry's own variables: OTEL_EXPORTER_OTLP_ENDPOINT, unless
    OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true turn traces off."""
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    return os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None


def _env(name: str) -> str | None:
    return os.environ.get("YIBAO_" + name.upper().replace("-", "_"))


def _address(text: str) -> str:
    if not re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (IPv6 as [::1]:PORT)")
    return text


def _province(text: str) -> str:
    if text not in PROVINCES:
        raise argparse.ArgumentTypeError(f"{text!r} is not a province-level code (11 ... 65)")
    return text


# gRPC name-resolver schemes a --peer target may use (several addresses of
# one province: "ipv4:10.0.0.1:50051,10.0.0.2:50051", or a DNS name).
_TARGET_SCHEMES = re.compile(r"(dns|ipv4|ipv6|unix|unix-abstract):\S+")


def _peer(text: str) -> tuple[str, str]:
    province, sep, target = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not PROVINCE=HOST:PORT or PROVINCE=TARGET-URI")
    if _TARGET_SCHEMES.fullmatch(target):
        return _province(province), target
    return _province(province), _address(target)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def _whole(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 0")
    return value


def _replica_timeout(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds between 1 and 10000")
    return value


def _flag(name: str) -> bool:
    return (_env(name) or "").lower() in {"1", "true", "yes", "on"}


def parser() -> argparse.ArgumentParser:
    d = Config()
    p = argparse.ArgumentParser(
        prog="yibao-node",
        description=(
            "A yibao-verify node: verifies medical insurance codes (credential-v1) over gRPC "
            "(yibao.v1.Verifier, Admin), keeps national state in Redis, exports Prometheus "
            "metrics. Every option can also be set as an environment variable YIBAO_<OPTION>, "
            "e.g. YIBAO_REDIS_URL."
        ),
        epilog=(
            "Example (local demo, no TLS): yibao-node --insecure "
            "--redis-url redis://127.0.0.1:6379/0 --trust-list trust-list.json "
            "(from a checkout: python -m server ...)"
        ),
    )
    p.add_argument("--listen", type=_address, default=_env("listen") or d.listen, help="gRPC address (default %(default)s)")
    p.add_argument(
        "--metrics-listen",
        type=_address,
        default=_env("metrics-listen") or d.metrics_listen,
        help="Prometheus /metrics address (default %(default)s)",
    )
    p.add_argument(
        "--redis-url",
        default=_env("redis-url") or d.redis_url,
        help="national store: redis://host:port/db (default %(default)s)",
    )
    p.add_argument(
        "--regional-redis-url",
        default=_env("regional-redis-url"),
        help="this province's store (accounts, settlements); default: the national one",
    )
    p.add_argument("--region", type=_province, default=_env("region") or d.region, help="this node's province-level code (default %(default)s)")
    p.add_argument(
        "--peer",
        type=_peer,
        action="append",
        default=[_peer(x) for x in (_env("peer") or "").split(";") if x],
        metavar="PROVINCE=TARGET",
        help="where another province's nodes are: HOST:PORT, or a gRPC target URI such as "
        "dns:///yibao-44.example:50051 or ipv4:10.0.0.1:50051,10.0.0.2:50051 (round robin over them, "
        "health-checked); repeatable, one per province (env: separated by ';')",
    )
    p.add_argument("--trust-list", type=Path, default=_env("trust-list"), help="trust list JSON file, reloaded when it changes")
    p.add_argument(
        "--insecure",
        action="store_true",
        default=_flag("insecure"),
        help="plaintext gRPC without client certificates: local demo and tests only",
    )
    p.add_argument("--tls-cert", type=Path, default=_env("tls-cert"), help="server certificate chain (PEM)")
    p.add_argument("--tls-key", type=Path, default=_env("tls-key"), help="server private key (PEM)")
    p.add_argument("--client-ca", type=Path, default=_env("client-ca"), help="CA that signs client certificates (PEM)")
    p.add_argument("--workers", type=_positive_int, default=int(_env("workers") or d.workers), help="processes sharing the port (default %(default)s)")
    p.add_argument(
        "--max-staleness-s",
        type=_positive_float,
        default=float(_env("max-staleness-s") or d.max_staleness_s),
        help="how long Verify may answer from the local mirror while the national store is unreachable (default %(default)s)",
    )
    p.add_argument(
        "--node-key",
        type=Path,
        default=_env("node-key"),
        help="the node's receipt-signing SM2 key, made on first start and kept "
        "(default ~/.local/state/yibao-verify/node-REGION.key); every node of a province shares one",
    )
    p.add_argument(
        "--event-loop",
        choices=EVENT_LOOPS,
        default=_env("event-loop") or d.event_loop,
        help="asyncio event loop: uvloop (libuv, less CPU per call) or Python's own asyncio (default %(default)s)",
    )
    p.add_argument(
        "--min-replicas",
        type=_whole,
        default=int(v) if (v := _env("min-replicas")) else None,
        help="replicas that must hold a settlement, refund, account change or revocation before it is answered "
        "(Redis WAIT); when fewer acknowledge in time the call answers UNAVAILABLE and a retry with the same "
        "order_id or refund_id settles it exactly once (default: 1 for a redis+cluster:// store, 0 for a "
        "standalone one; give every primary a replica, appendonly yes and appendfsync always)",
    )
    p.add_argument(
        "--replica-timeout-ms",
        type=_replica_timeout,
        default=int(_env("replica-timeout-ms") or d.replica_timeout_ms),
        help="how long a write waits for its replicas (default %(default)s)",
    )
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=_env("log-format") or d.log_format,
        help="text, or one JSON object per line for a log pipeline (default %(default)s)",
    )
    p.add_argument(
        "--access-log",
        action="store_true",
        default=_flag("access-log"),
        help="log every call: method, status, duration, request_id, institution_code, outcome "
        "(never a code or a token); off by default, the metrics count every call",
    )
    p.add_argument(
        "--max-in-flight",
        type=_positive_int,
        default=int(_env("max-in-flight") or d.max_in_flight),
        help="calls one process takes at once; beyond it a call is refused at once with RESOURCE_EXHAUSTED "
        "(reason OVERLOADED) rather than queued. About the calls/s a process answers times the latency to keep, "
        "e.g. 128 for 2,500 Verify/s within 50 ms (default %(default)s)",
    )
    p.add_argument(
        "--max-in-flight-per-caller",
        type=_positive_int,
        default=int(_env("max-in-flight-per-caller") or d.max_in_flight_per_caller),
        help="of those, the most one institution may have (default %(default)s)",
    )
    p.add_argument(
        "--revocation-dir",
        type=Path,
        default=_env("revocation-dir"),
        metavar="DIR",
        help="where the revocation snapshot's file is kept (about 2.3 bytes per revoked id), mapped by every "
        "worker at once; a local disk, not shared between machines (default: a private directory made at "
        "start and removed at exit)",
    )
    p.add_argument(
        "--snapshot-after",
        type=_positive_int,
        default=int(_env("snapshot-after") or d.snapshot_after),
        metavar="IDS",
        help="rebuild the national revocation snapshot once this many revocations (or 1%% of the snapshot, "
        "whichever is more) came after it; one node at a time does it (default %(default)s)",
    )
    p.add_argument(
        "--max-queued",
        type=_positive_int,
        default=int(_env("max-queued") or d.max_queued),
        help="calls of one method that may wait in gRPC's own queue for the event loop to take them up; beyond "
        "it gRPC refuses a call at once, before any handler (the client sees CANCELLED), and it drops one that "
        "has waited there over a second. About the calls/s a process answers times the wait to allow, e.g. 64 "
        "for 2,000 Verify/s and 30 ms; at least the calls that arrive together in a burst "
        "(default %(default)s, room for bursts of a few hundred)",
    )
    p.add_argument(
        "--health-listen",
        type=_address,
        default=_env("health-listen"),
        metavar="HOST:PORT",
        help="also serve grpc.health.v1 alone, in plaintext, on this address: for probes that cannot present "
        "a client certificate (Kubernetes' gRPC probes); nothing else is served there",
    )
    p.add_argument(
        "--otel-endpoint",
        default=_env("otel-endpoint") or _otel_env_endpoint(),
        metavar="URL",
        help="send OpenTelemetry traces over OTLP/HTTP to this collector (e.g. http://127.0.0.1:4318); "
        "also OTEL_EXPORTER_OTLP_ENDPOINT (unless OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true); "
        "off when not given",
    )
    return p


def parse(argv: Sequence[str] | None = None) -> Config:
    p = parser()
    a = p.parse_args(argv)
    if not a.insecure and not (a.tls_cert and a.tls_key and a.client_ca):
        p.error("give --tls-cert, --tls-key and --client-ca for mTLS, or --insecure for a plaintext local node")
    provinces = [province for province, _ in a.peer]
    for province in sorted({x for x in provinces if provinces.count(x) > 1}):
        p.error(f"--peer {province}= given twice: list a province's nodes in one target, e.g. ipv4:HOST:PORT,HOST:PORT")
    if a.region in provinces:
        p.error(f"--peer {a.region}=...: that is this node's own province (--region)")
    for url in (a.redis_url, a.regional_redis_url or a.redis_url):
        if a.min_replicas and not url.startswith(("redis://", "unix://", CLUSTER_SCHEME)):
            p.error(f"--min-replicas needs a redis://, unix:// or {CLUSTER_SCHEME} store, not {url!r}")
    if a.workers > 1 and a.health_listen and a.health_listen.endswith(":0"):
        p.error("--workers above 1 needs a fixed --health-listen port: the processes share it")
    if a.workers > 1 and a.listen.endswith(":0"):
        p.error("--workers above 1 needs a fixed --listen port: the processes share it")
    return Config(
        listen=a.listen,
        metrics_listen=a.metrics_listen,
        redis_url=a.redis_url,
        regional_redis_url=a.regional_redis_url,
        region=a.region,
        peers=dict(a.peer),
        trust_list=a.trust_list,
        insecure=a.insecure,
        tls_cert=a.tls_cert,
        tls_key=a.tls_key,
        client_ca=a.client_ca,
        workers=a.workers,
        max_staleness_s=a.max_staleness_s,
        event_loop=a.event_loop,
        min_replicas=a.min_replicas,
        log_format=a.log_format,
        access_log=a.access_log,
        otel_endpoint=a.otel_endpoint,
        health_listen=a.health_listen,
        max_in_flight=a.max_in_flight,
        max_in_flight_per_caller=a.max_in_flight_per_caller,
        revocation_dir=a.revocation_dir,
        snapshot_after=a.snapshot_after,
        max_queued=a.max_queued,
        replica_timeout_ms=a.replica_timeout_ms,
        node_key=a.node_key or Path.home() / ".local" / "state" / "yibao-verify" / f"node-{a.region}.key",
    )
