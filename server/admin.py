"""The Admin service calls of this issue: revocations, channel withdrawals
and the trust list. Each change goes to the national store first (so every
node sees it) and to this node's mirror at once."""

from __future__ import annotations

import logging

import grpc
from redis.exceptions import RedisError

import yibao_core
from server import validation
from server.identity import Authorizer, Denied
from server.national import NationalStore
from server.state import NodeState
from server.trust import TrustListSource
from yibao.v1 import admin_pb2, admin_pb2_grpc, common_pb2

log = logging.getLogger(__name__)


def _reason_name(value: int) -> str:
    name = common_pb2.RevocationReason.Name(value) if value in common_pb2.RevocationReason.values() else ""
    if not name or value == common_pb2.REVOCATION_REASON_UNSPECIFIED:
        raise validation.InvalidArgument("reason", f"{value} is not one of LOST, FROZEN, CANCELLED, DECEASED")
    return name.removeprefix("REVOCATION_REASON_")


def _channel(value: int) -> int:
    if not 1 <= value <= 5:
        raise validation.InvalidArgument("channel", f"{value} is not a channel (1 national app ... 5 government service)")
    return value


class AdminService(admin_pb2_grpc.AdminServicer):
    def __init__(self, store: NationalStore, state: NodeState, trust: TrustListSource, authorizer: Authorizer) -> None:
        self._auth = authorizer
        self._store = store
        self._state = state
        self._trust = trust

    async def _guard(self, context: grpc.aio.ServicerContext, call):  # type: ignore[no-untyped-def]
        try:
            self._auth.admin(context)
            return await call()
        except Denied as e:
            await context.abort(e.code, str(e))
        except validation.InvalidArgument as e:
            await context.abort_with_status(e.status())
        except (RedisError, OSError) as e:
            self._store.failed()
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"the national store is unreachable: {e}; retry")
        raise AssertionError("abort returns by raising")

    async def Revoke(self, request: admin_pb2.RevokeRequest, context: grpc.aio.ServicerContext) -> admin_pb2.RevokeResponse:  # noqa: N802
        async def call() -> admin_pb2.RevokeResponse:
            cid = validation.credential_id(request.credential_id)
            reason = _reason_name(request.reason)
            await self._store.mutate("revoke", cid, reason)
            self._state.mirror.revoke(cid, reason)
            log.info("revoked %s (%s)", cid, reason)
            resp = admin_pb2.RevokeResponse(credential_id=cid, reason=request.reason)
            resp.revoked_at.GetCurrentTime()
            return resp

        return await self._guard(context, call)

    async def Restore(self, request: admin_pb2.RestoreRequest, context: grpc.aio.ServicerContext) -> admin_pb2.RestoreResponse:  # noqa: N802
        async def call() -> admin_pb2.RestoreResponse:
            cid = validation.credential_id(request.credential_id)
            was = await self._store.mutate("restore", cid)
            self._state.mirror.restore(cid)
            log.info("restored %s", cid)
            return admin_pb2.RestoreResponse(credential_id=cid, was_revoked=was)

        return await self._guard(context, call)

    async def WithdrawChannel(  # noqa: N802
        self, request: admin_pb2.WithdrawChannelRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.WithdrawChannelResponse:
        async def call() -> admin_pb2.WithdrawChannelResponse:
            cid = validation.credential_id(request.credential_id)
            channel = _channel(request.channel)
            was = await self._store.mutate("withdraw", cid, str(channel))
            self._state.mirror.withdraw_channel(cid, channel)
            return admin_pb2.WithdrawChannelResponse(credential_id=cid, channel=request.channel, was_withdrawn=was)

        return await self._guard(context, call)

    async def RestoreChannel(  # noqa: N802
        self, request: admin_pb2.RestoreChannelRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.RestoreChannelResponse:
        async def call() -> admin_pb2.RestoreChannelResponse:
            cid = validation.credential_id(request.credential_id)
            channel = _channel(request.channel)
            was = await self._store.mutate("restore_channel", cid, str(channel))
            self._state.mirror.restore_channel(cid, channel)
            return admin_pb2.RestoreChannelResponse(credential_id=cid, channel=request.channel, was_withdrawn=was)

        return await self._guard(context, call)

    async def LoadTrustList(  # noqa: N802
        self, request: admin_pb2.LoadTrustListRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.LoadTrustListResponse:
        async def call() -> admin_pb2.LoadTrustListResponse:
            try:
                trust_list = yibao_core.TrustList.from_json(request.trust_list_json)
            except yibao_core.TrustListError as e:
                raise validation.InvalidArgument("trust_list_json", str(e)) from e
            await self._trust.publish(request.trust_list_json, trust_list)
            return admin_pb2.LoadTrustListResponse(keys_loaded=len(trust_list), key_ids=trust_list.key_ids)

        return await self._guard(context, call)
