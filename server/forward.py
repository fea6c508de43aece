"""异地就医: calls for a person insured in another province go to that
province's node (--peer PROVINCE=HOST:PORT), and its answer is returned
as it is. With mTLS the forwarding node presents its own certificate
(common name yibao-node), which the peer accepts on behalf of any
institution."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from server import metrics, tracing
from server.config import Config
from yibao.v1 import admin_pb2_grpc, settlement_pb2_grpc

Response = TypeVar("Response")
DEFAULT_TIMEOUT_S = 5.0


class PeerUnavailable(Exception):
    """The peer refused or failed the call. `status` is the peer's own
    structured status when it sent one (an INVALID_ARGUMENT naming the field,
    say), to be passed back unchanged."""

    def __init__(self, code: grpc.StatusCode, message: str, status: grpc.Status | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class Peers:
    def __init__(self, cfg: Config) -> None:
        self._cfg = cfg
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _channel(self, province: str) -> grpc.aio.Channel:
        channel = self._channels.get(province)
        if channel is not None:
            return channel
        address = self._cfg.peers.get(province)
        if address is None:
            raise PeerUnavailable(
                grpc.StatusCode.UNAVAILABLE, f"no node is configured for province {province} (--peer {province}=HOST:PORT)"
            )
        if self._cfg.insecure:
            channel = grpc.aio.insecure_channel(address)
        else:
            channel = grpc.aio.secure_channel(
                address,
                grpc.ssl_channel_credentials(
                    root_certificates=Path(self._cfg.client_ca).read_bytes(),  # type: ignore[arg-type]
                    private_key=Path(self._cfg.tls_key).read_bytes(),  # type: ignore[arg-type]
                    certificate_chain=Path(self._cfg.tls_cert).read_bytes(),  # type: ignore[arg-type]
                ),
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
        remaining = context.time_remaining()
        timeout = DEFAULT_TIMEOUT_S if remaining is None else max(0.05, remaining - 0.05)
        try:
            response = await rpc(request, timeout=timeout, metadata=tracing.forward_metadata())
        except grpc.RpcError as e:
            code = e.code()  # type: ignore[attr-defined]
            metrics.record_forward(province, code)
            try:
                status = rpc_status.from_call(e)  # type: ignore[arg-type]
            except ValueError:  # details that do not match the code: not to be trusted
                status = None
            raise PeerUnavailable(
                code if code != grpc.StatusCode.UNKNOWN else grpc.StatusCode.UNAVAILABLE,
                f"the node of province {province} answered {code.name}: {e.details()}",  # type: ignore[attr-defined]
                rpc_status.to_status(status) if status is not None else None,
            ) from e
        metrics.record_forward(province, "OK")
        return response

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
