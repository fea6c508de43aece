"""异地就医: calls for a person insured in another province go to that
province's node (--peer PROVINCE=TARGET), and its answer is returned as it
is. With mTLS the forwarding node presents its own certificate (common name
yibao-node), which the peer accepts on behalf of any institution.

What keeps a province's trouble from becoming this node's:

- TARGET is HOST:PORT or a gRPC target URI (``dns:///yibao-44.example:50051``,
  ``ipv4:10.0.0.1:50051,10.0.0.2:50051``): calls are spread round robin over
  the province's nodes, and gRPC's client-side health checking
  (grpc.health.v1, which every node serves) leaves out a node that is not
  SERVING, a node draining for shutdown included.
- Retries, only of the idempotent methods (_RETRIED): Settle by its
  order_id, Refund by its refund_id, OpenAccount (it creates an account only
  if there is none: a retry never changes one, though its ``created`` may
  read false), and the reads. gRPC retries UNAVAILABLE up to 3 attempts with
  randomised exponential backoff, within the caller's deadline, and under a
  retry budget (``retryThrottling``, a token bucket per peer: retries stop
  while more than about one call in ten fails). SetAccountStatus is not
  retried: it sets a state, so a retry landing after another operator's
  change in between would undo it (and audit the change twice); its caller
  sees the UNAVAILABLE and decides.
- A circuit breaker per province (server/breaker.py): after 5 failures in a
  row the province is cut off for 5 s and its calls answer UNAVAILABLE at
  once, then one call probes it.
- A forwarded call carries ``x-yibao-forwarded-by``; a node never forwards
  such a call again (a loop or a misrouting answers FAILED_PRECONDITION).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from server import metrics, tracing
from server.breaker import Breaker
from server.config import Config
from yibao.v1 import admin_pb2_grpc, settlement_pb2_grpc

Response = TypeVar("Response")
DEFAULT_TIMEOUT_S = 5.0
FORWARDED_BY = "x-yibao-forwarded-by"
# Failures that say the peer is not serving; a business refusal
# (INVALID_ARGUMENT, PERMISSION_DENIED...) says it is.
_PEER_FAILURES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
_RETRIED = (
    *(("yibao.v1.Settlement", m) for m in ("Settle", "PreSettle", "Refund", "GetSettlement")),
    *(("yibao.v1.Admin", m) for m in ("OpenAccount", "GetAccount", "ReadAudit", "GetNodeKey")),
)
_SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": ""},
        "methodConfig": [
            {
                "name": [{"service": service, "method": method} for service, method in _RETRIED],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
        "retryThrottling": {"maxTokens": 20, "tokenRatio": 0.1},
    }
)


class PeerUnavailable(Exception):
    """The peer refused or failed the call. `status` is the peer's own
    structured status when it sent one (an INVALID_ARGUMENT naming the field,
    say), to be passed back unchanged."""

    def __init__(self, code: grpc.StatusCode, message: str, status: grpc.Status | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def _unconfigured(province: str) -> PeerUnavailable:
    return PeerUnavailable(
        grpc.StatusCode.UNAVAILABLE, f"no node is configured for province {province} (--peer {province}=TARGET)"
    )


class Peers:
    def __init__(self, cfg: Config) -> None:
        self._cfg = cfg
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._breakers = {p: Breaker() for p in cfg.peers}
        self._timers = {p: metrics.forward_timer(p) for p in cfg.peers}
        for p in cfg.peers:
            metrics.set_circuit_open(p, False)

    def _channel(self, province: str) -> grpc.aio.Channel:
        channel = self._channels.get(province)
        if channel is not None:
            return channel
        address = self._cfg.peers.get(province)
        if address is None:
            raise _unconfigured(province)
        options = [
            ("grpc.service_config", _SERVICE_CONFIG),
            ("grpc.enable_retries", 1),
            # A province's node that comes back is found within seconds, not
            # after gRPC's default reconnect backoff (up to two minutes).
            ("grpc.initial_reconnect_backoff_ms", 250),
            ("grpc.min_reconnect_backoff_ms", 250),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        if self._cfg.insecure:
            channel = grpc.aio.insecure_channel(address, options=options)
        else:
            channel = grpc.aio.secure_channel(
                address,
                grpc.ssl_channel_credentials(
                    root_certificates=Path(self._cfg.client_ca).read_bytes(),  # type: ignore[arg-type]
                    private_key=Path(self._cfg.tls_key).read_bytes(),  # type: ignore[arg-type]
                    certificate_chain=Path(self._cfg.tls_cert).read_bytes(),  # type: ignore[arg-type]
                ),
                options=options,
            )
        self._channels[province] = channel
        return channel

    @property
    def provinces(self) -> frozenset[str]:
        return frozenset(self._cfg.peers)

    def settlement(self, province: str) -> settlement_pb2_grpc.SettlementStub:
        return settlement_pb2_grpc.SettlementStub(self._channel(province))

    def admin(self, province: str) -> admin_pb2_grpc.AdminStub:
        return admin_pb2_grpc.AdminStub(self._channel(province))

    async def call(
        self,
        province: str,
        rpc: Callable[..., Awaitable[Response]],
        request: object,
        context: grpc.aio.ServicerContext,
    ) -> Response:
        """Send `request` to the peer within what is left of the caller's
        deadline; the peer's business answer comes back as it is, its
        failure as PeerUnavailable with the peer's status code."""
        by = dict(context.invocation_metadata() or ()).get(FORWARDED_BY)
        if by is not None:
            raise PeerUnavailable(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"this node (province {self._cfg.region}) was sent a call forwarded by province {by} for a "
                f"person of province {province}; a forwarded call is not forwarded again: check province "
                f"{by}'s --peer {self._cfg.region}=...",
            )
        breaker = self._breakers.get(province)
        if breaker is None:
            raise _unconfigured(province)
        wait = breaker.admit()
        if wait is not None:
            metrics.record_forward(province, grpc.StatusCode.UNAVAILABLE)
            raise PeerUnavailable(
                grpc.StatusCode.UNAVAILABLE,
                f"the node of province {province} failed repeatedly and is cut off for {wait:.1f} s more; retry later",
            )
        remaining = context.time_remaining()
        timeout = DEFAULT_TIMEOUT_S if remaining is None else max(0.05, remaining - 0.05)
        metadata = ((FORWARDED_BY, self._cfg.region), *(tracing.forward_metadata() or ()))
        started = time.perf_counter()
        try:
            response = await rpc(request, timeout=timeout, metadata=metadata)
        except grpc.RpcError as e:
            code = e.code()  # type: ignore[attr-defined]
            self._timers[province](time.perf_counter() - started)
            self._outcome(province, breaker, code)
            try:
                status = rpc_status.from_call(e)  # type: ignore[arg-type]
            except ValueError:  # details that do not match the code: not to be trusted
                status = None
            raise PeerUnavailable(
                code if code != grpc.StatusCode.UNKNOWN else grpc.StatusCode.UNAVAILABLE,
                f"the node of province {province} answered {code.name}: {e.details()}",  # type: ignore[attr-defined]
                rpc_status.to_status(status) if status is not None else None,
            ) from e
        except BaseException:
            breaker.abandoned()
            raise
        self._timers[province](time.perf_counter() - started)
        self._outcome(province, breaker, grpc.StatusCode.OK)
        return response

    def _outcome(self, province: str, breaker: Breaker, code: grpc.StatusCode) -> None:
        metrics.record_forward(province, code)
        was_open = breaker.open
        if code in _PEER_FAILURES:
            breaker.failed()
        else:
            breaker.succeeded()
        if breaker.open != was_open:
            metrics.set_circuit_open(province, breaker.open)

    async def watch_health(self, every_s: float = 2.0) -> None:
        """Ask each peer's grpc.health.v1 every `every_s` and keep
        yibao_peer_up{peer} in step: the SRE's view of 异地就医 before any
        patient is turned away."""
        stubs = {p: health_pb2_grpc.HealthStub(self._channel(p)) for p in sorted(self._cfg.peers)}

        async def check(province: str, stub: health_pb2_grpc.HealthStub) -> None:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=min(1.0, every_s))
                up = reply.status == health_pb2.HealthCheckResponse.SERVING
            except grpc.RpcError:
                up = False
            metrics.set_peer_up(province, up)

        while True:
            await asyncio.gather(*(check(p, s) for p, s in stubs.items()))
            await asyncio.sleep(every_s)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
