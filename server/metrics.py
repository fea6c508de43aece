"""Prometheus metrics of the node (api.md, section "Metrics").

Everything the server records goes through the small functions below; none
of them is called per code, only per call or per batch, and every labelled
child is looked up once and cached, so the hot path costs a dict lookup and a
counter increment per distinct label set.

Metric objects are created lazily, on first use, never at import: a forking
parent imports this module before it knows ``--workers``, and prometheus-client
decides between in-memory and file-backed (multi-process) values when a value
is created. Order of calls for ``--workers N`` (N > 1):

    parent: metrics.prepare_multiprocess(dir)   # before any metric is touched and before fork
    parent: fork workers                        # each worker records as usual
    parent: metrics.serve(listen)               # one endpoint summing every worker's files
    parent: metrics.mark_worker_dead(pid)       # whenever a worker exits
    parent: metrics.shutdown()                  # on exit

With one process, just ``serve(listen)``; the default registry is served.
(Setting PROMETHEUS_MULTIPROC_DIR in the environment before this module is
imported works too; prepare_multiprocess() also clears stale files.)

The metric objects themselves are reachable as module attributes for code
off the hot path (``metrics.REDIS_ERRORS.labels(store="national").inc()``,
``metrics.REVOCATIONS_LOADED.set(n)``): see ``_ATTRIBUTES``. The sync age is
the exception: it is computed at scrape time from set_revocation_synced(). Touching one
creates it in this process.
"""

from __future__ import annotations

import collections
import glob
import math
import os
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Final, Literal
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app, values
from prometheus_client import multiprocess
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

__all__ = [
    "GRPC_CODES",
    "forward_timer",
    "in_flight",
    "is_multiprocess",
    "mark_worker_dead",
    "observe_verify_duration",
    "parse_listen",
    "prepare_multiprocess",
    "record_degraded_verifications",
    "record_calls_without_handler",
    "record_event_loop_lag",
    "record_forward",
    "record_redis_error",
    "record_settlement",
    "record_verification",
    "record_verifications",
    "redis_timer",
    "serve",
    "set_build_info",
    "set_circuit_open",
    "set_national_store_up",
    "set_peer_up",
    "set_regional_store_up",
    "set_revocation_sync_age",
    "set_revocation_synced",
    "set_revocations_loaded",
    "set_trust_keys_loaded",
    "shutdown",
]

_MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

#: gRPC status code names as used in the ``grpc_code`` label (go-grpc-prometheus).
GRPC_CODES: Final = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
)

# Label values of yibao_verifications_total are restricted to what the spec
# allows, so a flood of malformed codes cannot create new time series:
# channels of credential-v1 section 2, provinces of section 5; anything else
# (or None) is "". Worst case 11 outcomes x 6 x 32 series.
_CHANNELS: Final = {c: str(c) for c in range(1, 6)}
_PROVINCES: Final = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 "
    "61 62 63 64 65".split()
)

# Verification of one code is ~50 us in the core; a batch of 1,000 or a call
# that waits on Redis reaches tens of ms. 25 us .. 250 ms covers both ends.
_VERIFY_BUCKETS: Final = (
    25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3,
)
# Whole gRPC calls: sub-millisecond Verify up to long VerifyStream calls and
# forwarded Settles. Finer at the low end than go-grpc-prometheus' default
# (5 ms .. 10 s), which would put every Verify in the first bucket.
_GRPC_BUCKETS: Final = (
    100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3,
    1.0, 2.5, 5.0, 10.0,
)

_SYNC_TS_NAME: Final = "yibao_revocation_last_sync_timestamp_seconds"
_SYNC_AGE_NAME: Final = "yibao_revocation_sync_age_seconds"

# Gauges: name -> (help, multiprocess mode). Every mode is "live*", so a dead
# worker's value disappears with mark_worker_dead() instead of being reported
# forever. Each gauge is created in a process when first touched, not before:
# prometheus-client writes an unlabelled gauge's 0 to the process's file as
# soon as it exists, and a process that does not own the state (the parent,
# say) would then drag every "min" to 0.
_GAUGES: Final[dict[str, tuple[str, str]]] = {
    # The worst worker matters: one whose mirror is empty or behind lets
    # revoked codes through, and the max of all would hide it.
    "yibao_revocations_loaded": ("Revocations held in this node's local mirror.", "livemin"),
    # Same: a worker without keys answers UNKNOWN_KEY to everything.
    "yibao_trust_keys_loaded": ("Issuer keys of the trust list in use.", "livemin"),
    # 0 as soon as any live worker has lost the national store.
    "yibao_national_store_up": (
        "1 while the national store answers, 0 while verifying from the local mirror alone.",
        "livemin",
    ),
    # The oldest last-good-sync among live workers: the stalest worker is the
    # one an alert must see. yibao_revocation_sync_age_seconds is derived from
    # it at scrape time (see _Exposition), so the age keeps growing even when
    # nothing in the node updates it any more (a wedged event loop).
    _SYNC_TS_NAME: ("Unix time the local revocation mirror was last in step with the national store.", "livemin"),
    # 0 as soon as any live worker cannot reach the regional store (PING each second).
    "yibao_regional_store_up": ("1 while the regional store answers, 0 while Settle and Refund cannot.", "livemin"),
    # Summed over workers: the node's calls in progress.
    "yibao_in_flight_calls": ("gRPC calls started and not answered yet.", "livesum"),
}

# The event loop's lateness in waking a 0.25 s timer: a blocked loop delays
# every call the process holds. 1 ms .. 5 s.
_LAG_BUCKETS: Final = (1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1.0, 2.5, 5.0)


class _Core:
    """Counters and histograms (summed over processes, so created eagerly as a group)."""

    def __init__(self) -> None:
        grpc_labels = ("grpc_type", "grpc_service", "grpc_method")
        self.grpc_started = Counter(
            "grpc_server_started_total", "RPCs started on the server.", grpc_labels
        )
        self.grpc_handled = Counter(
            "grpc_server_handled_total", "RPCs completed on the server, by status code.",
            (*grpc_labels, "grpc_code"),
        )
        self.grpc_seconds = Histogram(
            "grpc_server_handling_seconds", "Time from the start of an RPC to its status, by status code.",
            (*grpc_labels, "grpc_code"), buckets=_GRPC_BUCKETS,
        )
        self.verifications = Counter(
            "yibao_verifications_total", "Codes verified, by outcome, credential channel and insured province.",
            ("outcome", "channel", "province"),
        )
        self.verify_seconds = Histogram(
            "yibao_verify_duration_seconds", "Time the core took per verification call (one code or one batch).",
            buckets=_VERIFY_BUCKETS,
        )
        self.degraded = Counter(
            "yibao_degraded_verifications_total",
            "Verifications answered from the local mirror while the national store was unreachable.",
        )
        self.settlements = Counter("yibao_settlements_total", "Settle answers, by outcome.", ("outcome",))
        self.settled_fen = Counter("yibao_settled_fen_total", "Fen paid from personal accounts by settlements.")
        self.forwards = Counter(
            "yibao_forward_requests_total", "Requests forwarded to other provinces' nodes, by peer and status code.",
            ("peer", "code"),
        )
        self.redis_errors = Counter("yibao_redis_errors_total", "Failed Redis operations, by store.", ("store",))
        self.without_handler = Counter(
            "yibao_grpc_calls_without_handler_total",
            "Calls gRPC answered without running a handler: refused past --max-queued (CANCELLED) or dropped "
            "after a second in its queue, refused by grpc.aio's count of calls in progress, cancelled while "
            "queued, or for a method the node does not serve.",
        )
        self.redis_seconds = Histogram(
            "yibao_redis_command_duration_seconds",
            "Time from sending a script to its reply (replica acknowledgement included), by store.",
            ("store",), buckets=_GRPC_BUCKETS,
        )
        self.loop_lag = Histogram(
            "yibao_event_loop_lag_seconds", "How late the event loop woke a 0.25 s timer.", buckets=_LAG_BUCKETS
        )
        # Labelled gauges write nothing until a child is set, so unlike the
        # unlabelled ones they can be created with the rest.
        self.forward_seconds = Histogram(
            "yibao_forward_duration_seconds", "Time of calls forwarded to another province's node, by province.",
            ("peer",), buckets=_GRPC_BUCKETS,
        )
        self.circuit_open = Gauge(
            "yibao_peer_circuit_open", "1 while calls for a province are refused at once after repeated failures.",
            ("peer",), multiprocess_mode="livemax",
        )
        self.peer_up = Gauge(
            "yibao_peer_up", "1 while another province's node answers its health check, by province.", ("peer",),
            multiprocess_mode="livemin",
        )
        self.build_info = Gauge(
            "yibao_build_info", "Always 1: the versions this node runs.", ("version", "core_version", "python"),
            multiprocess_mode="livemax",
        )
        # Known label sets start at 0 so that rate()/increase() see the first error.
        self.redis_children = {s: self.redis_errors.labels(s) for s in ("national", "regional")}
        self.verification_children: dict[tuple[str, int | None, str | None], Counter] = {}
        self.settlement_children: dict[str, Counter] = {}
        self.forward_children: dict[tuple[str, str], Counter] = {}


_lock = threading.Lock()
_core: _Core | None = None
_gauges: dict[str, Gauge] = {}
_http: tuple[WSGIServer, threading.Thread] | None = None


def _build_core() -> _Core:
    global _core
    with _lock:
        if _core is None:
            _core = _Core()
        return _core


def _c() -> _Core:
    return _core or _build_core()


def _gauge(name: str) -> Gauge:
    g = _gauges.get(name)
    if g is None:
        with _lock:
            g = _gauges.get(name)
            if g is None:
                doc, mode = _GAUGES[name]
                g = _gauges[name] = Gauge(name, doc, multiprocess_mode=mode)  # type: ignore[arg-type]
    return g


def _set_gauge(name: str, value: float) -> None:
    _gauge(name).set(value)


# --------------------------------------------------------------------------
# Multi-process setup
# --------------------------------------------------------------------------
def prepare_multiprocess(directory: str | os.PathLike[str]) -> None:
    """Switch this process, and every process forked from it afterwards, to
    file-backed metrics in ``directory``. Call in the parent before forking and
    before recording anything. Removes the metric files a previous run left
    there (stale live-gauge files of dead pids would otherwise be reported
    forever); other files in the directory are left alone."""
    if _core is not None or _gauges:
        raise RuntimeError("prepare_multiprocess() must come before any metric is recorded in this process")
    path = os.path.abspath(os.fspath(directory))
    os.makedirs(path, mode=0o700, exist_ok=True)
    for pattern in ("counter_*.db", "histogram_*.db", "summary_*.db", "gauge_*_*.db"):
        for stale in glob.glob(os.path.join(path, pattern)):
            os.remove(stale)
    os.environ[_MULTIPROC_ENV] = path
    # prometheus-client reads the variable once, when prometheus_client.values
    # is first imported (by this module, in the parent, long before --workers
    # is parsed). Re-run that choice now; metrics look the class up whenever a
    # value is created, and none has been created yet (checked above).
    values.ValueClass = values.get_value_class()


def is_multiprocess() -> bool:
    """True once prepare_multiprocess() ran here or in a parent (the variable is inherited)."""
    return bool(os.environ.get(_MULTIPROC_ENV))


def mark_worker_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters stay: totals never go back)."""
    if is_multiprocess():
        multiprocess.mark_process_dead(pid, os.environ[_MULTIPROC_ENV])


# --------------------------------------------------------------------------
# Hot path (per call or per batch)
# --------------------------------------------------------------------------
def _verification_child(core: _Core, key: tuple[str, int | None, str | None]) -> Counter:
    outcome, channel, province = key
    if outcome.startswith("OUTCOME_"):  # tolerate the proto enum name
        outcome = outcome[8:]
    ch = _CHANNELS.get(channel, "") if channel is not None else ""
    pv = province if province in _PROVINCES else ""
    child = core.verifications.labels(outcome, ch, pv)
    # Cache only keys that map onto themselves, so junk values from malformed
    # payloads cannot grow the cache without bound.
    if (channel is None or channel in _CHANNELS) and (province is None or province in _PROVINCES):
        core.verification_children[key] = child
    return child


def record_verifications(results: Iterable[tuple[str, int | None, str | None]]) -> None:
    """Count verified codes: one ``(outcome, channel, province)`` per code, e.g.
    ``("VALID", 2, "44")`` or ``("MALFORMED", None, None)``. outcome is the
    spec name (``"VALID"``); channel the credential's channel number, province
    the first two digits of its insured_region, None when the payload did not
    decode. Give a whole batch at once: counting happens in a dict (C speed)
    and each distinct label set costs one increment."""
    core = _c()
    cache = core.verification_children
    for key, n in collections.Counter(results).items():
        child = cache.get(key)
        if child is None:
            child = _verification_child(core, key)
        child.inc(n)


def record_verification(outcome: str, channel: int | None = None, province: str | None = None) -> None:
    """One code (Verify); same labels as record_verifications."""
    core = _c()
    key = (outcome, channel, province)
    child = core.verification_children.get(key)
    if child is None:
        child = _verification_child(core, key)
    child.inc()


def observe_verify_duration(seconds: float) -> None:
    """Time the core spent on one verification call (one code, or one batch)."""
    _c().verify_seconds.observe(seconds)


def record_degraded_verifications(n: int = 1) -> None:
    """Verifications answered from the local mirror alone (national store down)."""
    if n > 0:
        _c().degraded.inc(n)


def record_settlement(outcome: str, account_pay_fen: int = 0) -> None:
    """One Settle answer: outcome is the spec name (``"SETTLED"``,
    ``"INSUFFICIENT_BALANCE"``...). Pass ``account_pay_fen`` only when money
    actually moved (not for a replay of the same order_id), so that
    yibao_settled_fen_total reconciles with account balances."""
    core = _c()
    child = core.settlement_children.get(outcome)
    if child is None:
        name = outcome[15:] if outcome.startswith("SETTLE_OUTCOME_") else outcome
        child = core.settlement_children[outcome] = core.settlements.labels(name)
    child.inc()
    if account_pay_fen > 0:
        # float64 counts fen exactly up to 2**53 (about 9e13 yuan).
        core.settled_fen.inc(account_pay_fen)


def record_forward(peer: str, code: object) -> None:
    """One request forwarded to another province's node. ``peer`` is that
    province's code (bounded label values, unlike host:port); ``code`` a
    grpc.StatusCode or its name ("OK", "UNAVAILABLE")."""
    core = _c()
    name = code if isinstance(code, str) else getattr(code, "name", str(code))
    key = (peer, name)
    child = core.forward_children.get(key)
    if child is None:
        child = core.forward_children[key] = core.forwards.labels(peer, name)
    child.inc()


def record_redis_error(store: Literal["national", "regional"]) -> None:
    """A failed Redis operation (connection lost, timeout, cluster error)."""
    core = _c()
    child = core.redis_children.get(store)
    if child is None:
        raise ValueError(f"unknown store {store!r}: 'national' or 'regional'")
    child.inc()


def redis_timer(store: Literal["national", "regional"]) -> Callable[[float], None]:
    """The observe() of yibao_redis_command_duration_seconds for `store`."""
    return _c().redis_seconds.labels(store).observe  # type: ignore[no-any-return]


def record_event_loop_lag(seconds: float) -> None:
    _c().loop_lag.observe(seconds)


def record_calls_without_handler(n: int) -> None:
    """`n` more calls answered by gRPC without a handler (server/admission.py)."""
    _c().without_handler.inc(n)


# --------------------------------------------------------------------------
# State gauges (set on change, not per call)
# --------------------------------------------------------------------------
def set_build_info(version: str, core_version: str, python: str) -> None:
    _c().build_info.labels(version, core_version, python).set(1)


def set_regional_store_up(up: bool) -> None:
    _set_gauge("yibao_regional_store_up", 1.0 if up else 0.0)


def set_peer_up(peer: str, up: bool) -> None:
    """`peer` is a configured province code: bounded label values."""
    _c().peer_up.labels(peer).set(1.0 if up else 0.0)


def forward_timer(peer: str) -> Callable[[float], None]:
    """The observe() of yibao_forward_duration_seconds for a configured province."""
    return _c().forward_seconds.labels(peer).observe  # type: ignore[no-any-return]


def set_circuit_open(peer: str, is_open: bool) -> None:
    _c().circuit_open.labels(peer).set(1.0 if is_open else 0.0)


def in_flight() -> Gauge:
    return _gauge("yibao_in_flight_calls")


def set_revocations_loaded(n: int) -> None:
    _set_gauge("yibao_revocations_loaded", n)


def set_trust_keys_loaded(n: int) -> None:
    _set_gauge("yibao_trust_keys_loaded", n)


def set_national_store_up(up: bool) -> None:
    _set_gauge("yibao_national_store_up", 1.0 if up else 0.0)


def set_revocation_synced(at: float | None = None) -> None:
    """The local revocation mirror was in step with the national store at
    ``at`` (Unix time, default now). Call after each good contact, or
    periodically with the time of the last one; in every process that holds
    a mirror. yibao_revocation_sync_age_seconds = scrape time - the oldest
    such time among live processes (+Inf before the first call)."""
    _set_gauge(_SYNC_TS_NAME, time.time() if at is None else at)


def set_revocation_sync_age(seconds: float) -> None:
    """Same as set_revocation_synced(now - seconds)."""
    set_revocation_synced(time.time() - seconds)


# --------------------------------------------------------------------------
# Attribute access to the metric objects (PEP 562), created on first touch
# --------------------------------------------------------------------------
_ATTRIBUTES: Final[dict[str, str]] = {
    "GRPC_STARTED": "grpc_started",
    "GRPC_HANDLED": "grpc_handled",
    "GRPC_HANDLING_SECONDS": "grpc_seconds",
    "VERIFICATIONS": "verifications",
    "VERIFY_DURATION": "verify_seconds",
    "DEGRADED_VERIFICATIONS": "degraded",
    "SETTLEMENTS": "settlements",
    "SETTLED_FEN": "settled_fen",
    "FORWARD_REQUESTS": "forwards",
    "REDIS_ERRORS": "redis_errors",
    "REVOCATIONS_LOADED": "yibao_revocations_loaded",
    "TRUST_KEYS_LOADED": "yibao_trust_keys_loaded",
    "NATIONAL_STORE_UP": "yibao_national_store_up",
    "REVOCATION_LAST_SYNC": _SYNC_TS_NAME,
}


def __getattr__(name: str) -> object:
    target = _ATTRIBUTES.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    metric = _gauge(target) if target in _GAUGES else getattr(_c(), target)
    globals()[name] = metric  # later look-ups are plain module attributes
    return metric


# --------------------------------------------------------------------------
# Exposition
# --------------------------------------------------------------------------
class _Exposition:
    """What /metrics serves: the source registry, plus the sync age derived
    from the oldest last-sync time at the moment of the scrape. +Inf before
    any process has synced, or once all that had are dead: the truthful
    "never", on which an alert on age > N fires."""

    def __init__(self, source: CollectorRegistry) -> None:
        self._source = source

    def describe(self) -> list[Metric]:
        return []  # the source registry has done its own duplicate checks

    def collect(self) -> Iterator[Metric]:
        synced: float | None = None
        for family in self._source.collect():
            if family.name == _SYNC_TS_NAME:
                stamps = [s.value for s in family.samples]
                synced = min(stamps) if stamps else None
            yield family
        age = math.inf if synced is None else max(0.0, time.time() - synced)
        yield GaugeMetricFamily(
            _SYNC_AGE_NAME, "Seconds since the local revocation mirror was last in step with the national store.", value=age
        )


class _MetricsHTTPServer(socketserver.ThreadingMixIn, WSGIServer):
    # A scraper that hangs must not block shutdown.
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        # HTTPServer.server_bind() calls socket.getfqdn(), a reverse DNS lookup
        # that can stall start-up for seconds on a host without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)
        self.setup_environ()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
        pass  # one line per scrape on stderr is noise


def parse_listen(listen: str) -> tuple[str, int]:
    """``"host:port"``, ``"[v6addr]:port"`` or ``":port"`` (all interfaces)."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"listen address {listen!r}: expected HOST:PORT or [IPV6]:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"listen address {listen!r}: put an IPv6 address in brackets, [::1]:9464")
    return host or "0.0.0.0", int(port_text)


def serve(listen: str) -> int:
    """Start the /metrics HTTP endpoint on ``listen`` in a daemon thread and
    return the bound port (useful with port 0). In multi-process mode it
    reports the sum over every worker's files, so run it in one process only
    (the parent). Raises OSError if the address cannot be bound."""
    global _http
    host, port = parse_listen(listen)
    if _http is not None:
        raise RuntimeError("metrics endpoint already serving")
    if is_multiprocess():
        source = CollectorRegistry()
        multiprocess.MultiProcessCollector(source, path=os.environ[_MULTIPROC_ENV])
    else:
        source = REGISTRY  # includes process_* and python_* metrics
    exposed = CollectorRegistry(auto_describe=False)
    exposed.register(_Exposition(source))

    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    server_class = type("_BoundMetricsServer", (_MetricsHTTPServer,), {"address_family": family})
    httpd = make_server(host, port, make_wsgi_app(exposed), server_class=server_class, handler_class=_QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    _http = (httpd, thread)
    return int(httpd.server_address[1])


def shutdown() -> None:
    """Stop the endpoint started by serve() and close its socket (idempotent)."""
    global _http
    if _http is None:
        return
    httpd, thread = _http
    _http = None
    httpd.shutdown()
    httpd.server_close()
    thread.join()
