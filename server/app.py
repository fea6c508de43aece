"""One node process: connect to the national store, load the mirror and
the trust list, serve gRPC (Verifier, Admin, health, reflection) until
SIGTERM, then leave gracefully."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import platform
import signal
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from redis.exceptions import RedisError

import yibao_core
from server import audit, memory, metrics, node_key, redis_pipe, snapshot, tracing
from server.admin import AdminService
from server.admission import AdmissionInterceptor, WithoutHandler, server_options
from server.config import Config
from server.decoding import DecodingInterceptor
from server.engine import Batcher, VerifyEngine
from server.identity import Authorizer
from server.interceptor import MetricsInterceptor
from server.forward import Peers
from server.gc_settings import quiet_collector
from server.ledger import Ledger
from server.national import CONTACT_LOST_S, NationalStore, StoreUnavailable, client
from server.settlement import SettlementService
from server.state import NodeState
from server.trust import TrustListSource
from server.verifier import VerifierService
from yibao.v1 import admin_pb2, admin_pb2_grpc, settlement_pb2, settlement_pb2_grpc, verifier_pb2, verifier_pb2_grpc

log = logging.getLogger("yibao.node")

FOLLOW_BLOCK_MS = 500
SERVICES = (
    verifier_pb2.DESCRIPTOR.services_by_name["Verifier"].full_name,
    settlement_pb2.DESCRIPTOR.services_by_name["Settlement"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name,
)


class Follower:
    """Apply every event of the national stream as it is appended: to the
    mirror, the trust list, and new revocation snapshots, which it fetches
    in the background and swaps in once the events since their position
    are replayed onto them. After an outage it reloads if the events it
    missed are gone."""

    def __init__(self, store: NationalStore, state: NodeState, trust: TrustListSource, directory: Path) -> None:
        self._store, self._state, self._trust, self._directory = store, state, trust, directory
        self._generation = 0
        # The newest snapshot announced, and when to try again after a failed switch.
        self._announced = 0
        self._retry_at = 0.0
        self._switching: asyncio.Task[tuple[yibao_core.RevocationSet, bytes, int]] | None = None

    async def run(self, position: bytes, generation: int) -> None:
        store, state = self._store, self._state
        self._generation = generation
        failing = False
        while True:
            try:
                if failing and await store.trimmed_past(position):
                    state.mirror, position, self._generation = await snapshot.load(store, self._directory)
                    log.warning("missed events were trimmed: mirror reloaded (%d revoked)", len(state.mirror))
                if failing:
                    log.warning("national store reachable again")
                    failing = False
                events = await store.events_since(position, FOLLOW_BLOCK_MS)
                if events and await store.trimmed_past(position):
                    # Trimmed between our last read and this one (a new
                    # snapshot's trim): what was read skips events.
                    state.mirror, position, self._generation = await snapshot.load(store, self._directory)
                    log.warning("fell behind a stream trim: mirror reloaded (%d revoked)", len(state.mirror))
                    continue
                for event_id, fields in events:
                    await self._apply(fields)
                    position = event_id
                if self._switching is not None and self._switching.done():
                    await self._switch(position)
                if self._switching is None and self._announced > self._generation and time.monotonic() >= self._retry_at:
                    self._switching = asyncio.create_task(self._prepare())
                if events:
                    metrics.set_revocations_loaded(len(state.mirror))
            except (RedisError, OSError) as e:
                store.failed()
                if not failing:
                    log.warning("national store unreachable, verifying from the mirror: %s", e)
                    failing = True
                await asyncio.sleep(0.25)

    async def _apply(self, fields: dict[bytes, bytes]) -> None:
        op = fields[b"op"].decode()
        if op == "trust":
            await self._trust.on_published()
        elif op == "snapshot":
            self._announced = max(self._announced, int(fields[b"id"]))
        elif not self._state.apply(op, fields[b"id"].decode(), fields.get(b"arg", b"")):
            log.error("unknown event %r in the national stream, ignored", op)

    async def _prepare(self) -> tuple[yibao_core.RevocationSet, bytes, int]:
        m = await snapshot.meta(self._store)
        if m is None:
            raise ValueError("the revocation snapshot was announced but is not there")
        path = await snapshot.fetch(self._store, m, self._directory)
        mirror = await asyncio.to_thread(yibao_core.RevocationSet, path, withdrawals_from=self._state.mirror)
        return mirror, m.position, m.generation

    async def _switch(self, position: bytes) -> None:
        task, self._switching = self._switching, None
        assert task is not None
        try:
            mirror, since, generation = task.result()
            if generation <= self._generation:
                return
            if not await snapshot.catch_up(self._store, mirror, since, position):
                raise ValueError(f"the stream was trimmed past snapshot {generation}'s position (a newer one came)")
        except (RedisError, OSError, ValueError) as e:
            log.warning("new revocation snapshot not taken, staying on generation %d: %s", self._generation, e)
            self._retry_at = time.monotonic() + 5.0
            return
        self._state.mirror = mirror
        self._generation = generation
        log.info("revocation snapshot %d taken: %d ids, %d changes since", generation, mirror.snapshot_ids, mirror.delta_len)
        await snapshot.forget_older(self._directory, generation)
        # The old mirror went with the swap: give its pages back.
        await asyncio.to_thread(memory.give_back)


async def report_state(store: NationalStore, state: NodeState, regional_up: Callable[[], Awaitable[object]]) -> None:
    while True:
        age = store.since_contact()
        metrics.set_revocation_synced(time.time() - age)
        metrics.set_national_store_up(age <= CONTACT_LOST_S)
        metrics.set_revocations_loaded(len(state.mirror))
        try:
            async with asyncio.timeout(0.5):
                await regional_up()
            metrics.set_regional_store_up(True)
        except (RedisError, OSError, TimeoutError):
            metrics.set_regional_store_up(False)
        await asyncio.sleep(1.0)


async def watch_event_loop(every_s: float = 0.25) -> None:
    """How late the loop wakes a timer: the delay every call on it suffers."""
    loop = asyncio.get_running_loop()
    while True:
        asked = loop.time()
        await asyncio.sleep(every_s)
        metrics.record_event_loop_lag(max(0.0, loop.time() - asked - every_s))


async def _serve_health_alone(
    cfg: Config, servicer: health.aio.HealthServicer, shared_port: bool
) -> grpc.aio.Server | None:
    """grpc.health.v1 and nothing else on --health-listen, in plaintext: the
    same servicer, so it turns NOT_SERVING with the node."""
    if cfg.health_listen is None:
        return None
    probe = grpc.aio.server(options=[("grpc.so_reuseport", 1 if shared_port else 0)])
    health_pb2_grpc.add_HealthServicer_to_server(servicer, probe)
    probe.add_insecure_port(cfg.health_listen)
    await probe.start()
    return probe


def _tracing(cfg: Config) -> list[grpc.aio.ServerInterceptor]:
    if not cfg.otel_endpoint:
        return []
    tracing.setup(cfg.otel_endpoint, cfg.region)
    return [tracing.TracingInterceptor()]


def _version() -> str:
    try:
        return importlib.metadata.version("yibao-verify")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _bind(server: grpc.aio.Server, cfg: Config) -> int:
    if cfg.insecure:
        log.warning("listening on %s in plaintext WITHOUT authentication (--insecure): demo and tests only", cfg.listen)
        return server.add_insecure_port(cfg.listen)
    credentials = grpc.ssl_server_credentials(
        [(Path(cfg.tls_key).read_bytes(), Path(cfg.tls_cert).read_bytes())],  # type: ignore[arg-type]
        root_certificates=Path(cfg.client_ca).read_bytes(),  # type: ignore[arg-type]
        require_client_auth=True,
    )
    return server.add_secure_port(cfg.listen, credentials)


async def serve(cfg: Config, *, shared_port: bool = False) -> None:
    """Run until SIGTERM or SIGINT. Raises StoreUnavailable before anything
    else if the national store cannot be reached."""
    memory.keep_large_blocks_apart()
    metrics.set_build_info(_version(), yibao_core.__version__, platform.python_version())
    store = NationalStore(
        cfg.redis_url,
        on_error=lambda: metrics.record_redis_error("national"),
        min_replicas=cfg.replicas_for(cfg.redis_url),
        replica_timeout_ms=cfg.replica_timeout_ms,
        observe=metrics.redis_timer("national"),
    )
    await store.ping()
    regional_url = cfg.regional_redis_url or cfg.redis_url
    regional = client(regional_url)
    try:
        await regional.ping()
    except (RedisError, OSError) as e:
        raise StoreUnavailable(f"cannot reach the regional store at {regional_url}: {e}") from e
    signing_key = node_key.signing_key(cfg.node_key)  # type: ignore[arg-type]
    token_key = await store.token_key()
    assert cfg.revocation_dir is not None, "cli.main gives every node a directory"
    mirror, position, generation = await snapshot.load(store, cfg.revocation_dir)
    # After the mirror's catch-up: a trust-list change the follower will
    # not see (it is before `position`) is in what this reads.
    text, trust_list = await TrustListSource.initial(store, cfg.trust_list)
    state = NodeState(trust_list=trust_list, mirror=mirror)
    # Held by the state alone: serve() lasts as long as the node, and a name
    # here kept the first mirror (a whole bulk load's delta) past its switch.
    del mirror
    trust = TrustListSource(store, state, cfg.trust_list)
    trust.apply(text, trust_list)

    engine = VerifyEngine(cfg, store, state, token_key)
    batcher = Batcher(engine)
    call_metrics = MetricsInterceptor(access_log=cfg.access_log)
    without_handler = WithoutHandler()
    server = grpc.aio.server(
        interceptors=[
            call_metrics,
            DecodingInterceptor(),
            AdmissionInterceptor(cfg.max_in_flight, cfg.max_in_flight_per_caller),
            *_tracing(cfg),
        ],
        # server_options: the bound of gRPC core's own queue, where a backlog
        # forms when the event loop is the bottleneck (server/admission.py).
        options=[("grpc.so_reuseport", 1 if shared_port else 0), *server_options(cfg.max_queued)],
        maximum_concurrent_rpcs=cfg.max_in_flight,
    )
    without_handler.attach()
    authorizer = Authorizer(insecure=cfg.insecure)
    regional_pipe = (
        redis_pipe.RedisPipe(
            regional_url,
            slot_key=audit.tag(cfg.region),
            min_replicas=cfg.replicas_for(regional_url),
            replica_timeout_ms=cfg.replica_timeout_ms,
            observe=metrics.redis_timer("regional"),
        )
        if redis_pipe.supports(regional_url, slot_key=audit.tag(cfg.region))
        else None
    )
    ledger = Ledger(regional, cfg.region, regional_pipe)
    peers = Peers(cfg)
    verifier_pb2_grpc.add_VerifierServicer_to_server(VerifierService(engine, batcher, authorizer), server)
    settlement_pb2_grpc.add_SettlementServicer_to_server(
        SettlementService(
            region=cfg.region,
            ledger=ledger,
            peers=peers,
            token_key=token_key,
            node_key=signing_key,
            authorizer=authorizer,
        ),
        server,
    )
    admin_pb2_grpc.add_AdminServicer_to_server(
        AdminService(
            region=cfg.region,
            store=store,
            state=state,
            trust=trust,
            authorizer=authorizer,
            ledger=ledger,
            peers=peers,
            node_public_key=signing_key.public_key,
        ),
        server,
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = _bind(server, cfg)
    await server.start()
    probe_server = await _serve_health_alone(cfg, health_servicer, shared_port)
    for name in ("", *SERVICES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "node for province %s serving on port %d: %d trust keys, %d revoked credentials, event loop %s",
        cfg.region,
        port,
        len(trust_list),
        len(state.mirror),
        type(asyncio.get_running_loop()).__module__.partition(".")[0],
    )

    quiet_collector()
    tasks = [
        asyncio.create_task(
            Follower(store, state, trust, cfg.revocation_dir).run(position, generation)
        ),
        asyncio.create_task(snapshot.keep(store, state, cfg.revocation_dir, cfg.snapshot_after)),
        asyncio.create_task(trust.watch_file()),
        asyncio.create_task(
            report_state(store, state, regional_pipe.ping if regional_pipe is not None else regional.ping)
        ),
        asyncio.create_task(watch_event_loop()),
        asyncio.create_task(without_handler.watch(call_metrics.handlers_run)),
    ]
    if cfg.peers:
        tasks.append(asyncio.create_task(peers.watch_health()))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("stopping: NOT_SERVING, finishing calls in flight (up to %g s)", cfg.grace_s)
    await health_servicer.enter_graceful_shutdown()
    await server.stop(cfg.grace_s)
    if probe_server is not None:
        await probe_server.stop(0)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await batcher.close()
    engine.close()
    await peers.close()
    tracing.shutdown()
    with suppress(RedisError, OSError):
        await store.close()
        await regional.aclose()
        if regional_pipe is not None:
            await regional_pipe.aclose()
    log.info("stopped")
