"""The Admin service: revocations and channel withdrawals (national: the
national store first, so every node sees them, then this node's mirror),
the trust list, accounts (in the province that keeps them: forwarded there
like Settle) and the node's receipt key. Every change is written to this
province's audit log before it is answered."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import grpc
from redis.exceptions import RedisError

import yibao_core
from server import audit, metrics, node_key, validation
from server import ledger as lg
from server.forward import PeerUnavailable, Peers
from server.identity import Authorizer, Denied
from server.national import REASON_CODES, NationalStore
from server.redis_pipe import NotReplicated
from server.state import NodeState
from server.trust import TrustListSource
from yibao.v1 import admin_pb2, admin_pb2_grpc, common_pb2

Response = TypeVar("Response")
_STREAM_ID = re.compile(r"\d{1,20}-\d{1,20}")


class RegionalUnavailable(Exception):
    """The regional store (accounts, audit log) did not answer."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000

log = logging.getLogger(__name__)


#: Most revocations in one RevokeBatch call.
MAX_REVOKE_BATCH = 10_000


_REASON_NAMES = {
    value: name.removeprefix("REVOCATION_REASON_")
    for name, value in common_pb2.RevocationReason.items()
    if value != common_pb2.REVOCATION_REASON_UNSPECIFIED
}


# The reason's one-byte code in the national store and its events (0: none).
_REASON_CODES = {value: REASON_CODES[name][0] for value, name in _REASON_NAMES.items()}


def _reason_name(value: int, field: str = "reason") -> str:
    name = _REASON_NAMES.get(value)
    if name is None:
        raise validation.InvalidArgument(field, f"{value} is not one of LOST, FROZEN, CANCELLED, DECEASED")
    return name


def _revocation_records(requests: Sequence[admin_pb2.RevokeRequest]) -> tuple[bytes, list[str]]:
    """A RevokeBatch's 17-byte records (checked and packed by the core: the
    per-id work of a 10,000-id batch) and its ids, as given."""
    ids = [r.credential_id for r in requests]
    codes = bytes(_REASON_CODES.get(r.reason, 0) for r in requests)
    try:
        return yibao_core.revocation_records(ids, codes), ids
    except ValueError as e:
        i, field = e.args
    if field == "credential_id":
        validation.credential_id(ids[i], f"requests[{i}].credential_id")
    _reason_name(requests[i].reason, f"requests[{i}].reason")
    raise AssertionError(f"the core refused requests[{i}].{field}, which validation accepts")


def _channel(value: int) -> int:
    if not 1 <= value <= 5:
        raise validation.InvalidArgument("channel", f"{value} is not a channel (1 national app ... 5 government service)")
    return value


def _account_response(account: lg.Account, message: type[Response]) -> Response:
    fields = {
        "credential_id": account.credential_id,
        "status": common_pb2.AccountStatus.Value("ACCOUNT_STATUS_" + account.status),
        "balance_fen": account.balance_fen,
        "per_payment_limit_fen": account.per_payment_limit_fen,
        "daily_limit_fen": account.daily_limit_fen,
        "spent_today_fen": account.spent_today_fen,
        "insured_region": account.insured_region,
    }
    known = {f.name for f in message.DESCRIPTOR.fields}  # type: ignore[attr-defined]
    return message(**{k: v for k, v in fields.items() if k in known})


class AdminService(admin_pb2_grpc.AdminServicer):
    def __init__(
        self,
        *,
        region: str,
        store: NationalStore,
        state: NodeState,
        trust: TrustListSource,
        authorizer: Authorizer,
        ledger: lg.Ledger,
        peers: Peers,
        node_public_key: bytes,
    ) -> None:
        self._region = region
        self._auth = authorizer
        self._store = store
        self._state = state
        self._trust = trust
        self._ledger = ledger
        self._peers = peers
        self._node_public_key = node_public_key

    async def _guard(self, context: grpc.aio.ServicerContext, call: Callable[[str], Awaitable[Response]]) -> Response:
        try:
            who = self._auth.admin(context)
            return await call(who)
        except Denied as e:
            await context.abort_with_status(validation.rich_status(e.code, str(e), "NOT_AUTHORIZED"))
        except validation.InvalidArgument as e:
            await context.abort_with_status(e.status())
        except lg.InvalidInput as e:
            field, _, why = str(e).partition(": ")
            await context.abort_with_status(validation.InvalidArgument(field, why).status())
        except PeerUnavailable as e:
            await context.abort_with_status(e.status or validation.rich_status(e.code, str(e), "PEER_UNAVAILABLE"))
        except RegionalUnavailable as e:
            metrics.record_redis_error("regional")
            await context.abort_with_status(
                validation.rich_status(
                    grpc.StatusCode.UNAVAILABLE,
                    f"the regional store is unreachable or its replicas did not confirm the write: "
                    f"{e.__cause__}; retry (every admin change is idempotent)",
                    "REGIONAL_STORE_UNAVAILABLE",
                )
            )
        except NotReplicated as e:
            await context.abort_with_status(
                validation.rich_status(
                    grpc.StatusCode.UNAVAILABLE,
                    f"the national store's replicas did not confirm the change ({e}); retry (every revocation "
                    "change is idempotent)",
                    "NATIONAL_STORE_NOT_REPLICATED",
                )
            )
        except (RedisError, OSError) as e:
            self._store.failed()
            await context.abort_with_status(
                validation.rich_status(
                    grpc.StatusCode.UNAVAILABLE,
                    f"the national store is unreachable: {e}; retry",
                    "NATIONAL_STORE_UNAVAILABLE",
                )
            )
        raise AssertionError("abort returns by raising")

    async def _change(self, op: str, credential_id: str, arg: str = "") -> bool:
        """A revocation change: the national store (and its stream) first, so
        every node gets it, then this node's mirror at once rather than when
        the stream brings it back. True if the state before was set."""
        was = await self._store.mutate(op, credential_id, arg)
        self._state.apply(op, credential_id, arg.encode())
        return was

    async def _regional(self, call: Awaitable[Response]) -> Response:
        try:
            return await call
        except (RedisError, OSError) as e:
            raise RegionalUnavailable() from e

    async def _audit(self, who: str, what: str, outcome: str, **detail: object) -> None:
        await self._regional(self._ledger.append_audit(who, what, outcome, detail))

    def _province(self, insured_region: str, *, required: bool) -> str:
        if not insured_region and not required:
            return self._region
        if len(insured_region) != 6 or not insured_region.isdigit():
            raise validation.InvalidArgument("insured_region", f"{insured_region[:40]!r} is not six digits (参保地)")
        return insured_region[:2]

    async def Revoke(self, request: admin_pb2.RevokeRequest, context: grpc.aio.ServicerContext) -> admin_pb2.RevokeResponse:  # noqa: N802
        async def call(who: str) -> admin_pb2.RevokeResponse:
            cid = validation.credential_id(request.credential_id)
            reason = _reason_name(request.reason)
            await self._change("revoke", cid, reason)
            await self._audit(who, "Revoke", "OK", credential_id=cid, reason=reason)
            log.info("revoked %s (%s)", cid, reason)
            resp = admin_pb2.RevokeResponse(credential_id=cid, reason=request.reason)
            resp.revoked_at.GetCurrentTime()
            return resp

        return await self._guard(context, call)

    async def RevokeBatch(  # noqa: N802
        self, request: admin_pb2.RevokeBatchRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.RevokeBatchResponse:
        async def call(who: str) -> admin_pb2.RevokeBatchResponse:
            n = len(request.requests)
            if not 1 <= n <= MAX_REVOKE_BATCH:
                raise validation.InvalidArgument("requests", f"{n} revocations; a batch holds 1 to {MAX_REVOKE_BATCH:,}")
            records, ids = _revocation_records(request.requests)
            await self._store.revoke_batch(records)
            self._state.apply("revoke_records", "", records)
            names = _REASON_NAMES
            listed = ",".join([f"{cid.upper()}:{names[r.reason]}" for cid, r in zip(ids, request.requests)])
            await self._audit(who, "RevokeBatch", "OK", count=n, revocations=listed)
            log.info("revoked %d credentials in one batch", n)
            resp = admin_pb2.RevokeBatchResponse(revoked=n)
            resp.revoked_at.GetCurrentTime()
            return resp

        return await self._guard(context, call)

    async def Restore(self, request: admin_pb2.RestoreRequest, context: grpc.aio.ServicerContext) -> admin_pb2.RestoreResponse:  # noqa: N802
        async def call(who: str) -> admin_pb2.RestoreResponse:
            cid = validation.credential_id(request.credential_id)
            was = await self._change("restore", cid)
            await self._audit(who, "Restore", "OK", credential_id=cid, was_revoked=was)
            log.info("restored %s", cid)
            return admin_pb2.RestoreResponse(credential_id=cid, was_revoked=was)

        return await self._guard(context, call)

    async def WithdrawChannel(  # noqa: N802
        self, request: admin_pb2.WithdrawChannelRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.WithdrawChannelResponse:
        async def call(who: str) -> admin_pb2.WithdrawChannelResponse:
            cid = validation.credential_id(request.credential_id)
            channel = _channel(request.channel)
            was = await self._change("withdraw", cid, str(channel))
            await self._audit(who, "WithdrawChannel", "OK", credential_id=cid, channel=channel)
            return admin_pb2.WithdrawChannelResponse(credential_id=cid, channel=request.channel, was_withdrawn=was)

        return await self._guard(context, call)

    async def RestoreChannel(  # noqa: N802
        self, request: admin_pb2.RestoreChannelRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.RestoreChannelResponse:
        async def call(who: str) -> admin_pb2.RestoreChannelResponse:
            cid = validation.credential_id(request.credential_id)
            channel = _channel(request.channel)
            was = await self._change("restore_channel", cid, str(channel))
            await self._audit(who, "RestoreChannel", "OK", credential_id=cid, channel=channel)
            return admin_pb2.RestoreChannelResponse(credential_id=cid, channel=request.channel, was_withdrawn=was)

        return await self._guard(context, call)

    async def LoadTrustList(  # noqa: N802
        self, request: admin_pb2.LoadTrustListRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.LoadTrustListResponse:
        async def call(who: str) -> admin_pb2.LoadTrustListResponse:
            try:
                trust_list = yibao_core.TrustList.from_json(request.trust_list_json)
            except yibao_core.TrustListError as e:
                raise validation.InvalidArgument("trust_list_json", str(e)) from e
            await self._trust.publish(request.trust_list_json, trust_list)
            await self._audit(who, "LoadTrustList", "OK", key_ids=",".join(trust_list.key_ids))
            return admin_pb2.LoadTrustListResponse(keys_loaded=len(trust_list), key_ids=trust_list.key_ids)

        return await self._guard(context, call)

    # --- accounts, in the province that keeps them ---

    async def OpenAccount(  # noqa: N802
        self, request: admin_pb2.OpenAccountRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.OpenAccountResponse:
        async def call(who: str) -> admin_pb2.OpenAccountResponse:
            validation.credential_id(request.credential_id)
            province = self._province(request.insured_region, required=True)
            if province != self._region:
                return await self._peers.call(province, self._peers.admin(province).OpenAccount, request, context)
            created, account = await self._regional(
                self._ledger.open_account(
                    request.credential_id,
                    balance_fen=request.balance_fen,
                    per_payment_limit_fen=request.per_payment_limit_fen,
                    daily_limit_fen=request.daily_limit_fen,
                    actor=who,
                    now_ms=_now_ms(),
                    insured_region=request.insured_region,
                )
            )
            resp = _account_response(account, admin_pb2.OpenAccountResponse)
            resp.created = created
            return resp

        return await self._guard(context, call)

    async def SetAccountStatus(  # noqa: N802
        self, request: admin_pb2.SetAccountStatusRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.SetAccountStatusResponse:
        async def call(who: str) -> admin_pb2.SetAccountStatusResponse:
            validation.credential_id(request.credential_id)
            if request.status not in (common_pb2.ACCOUNT_STATUS_ACTIVE, common_pb2.ACCOUNT_STATUS_FROZEN):
                raise validation.InvalidArgument("status", f"{request.status} is not ACTIVE (1) or FROZEN (2)")
            province = self._province(request.insured_region, required=False)
            if province != self._region:
                return await self._peers.call(province, self._peers.admin(province).SetAccountStatus, request, context)
            status = common_pb2.AccountStatus.Name(request.status).removeprefix("ACCOUNT_STATUS_")
            account = await self._regional(
                self._ledger.set_status(request.credential_id, status, actor=who, now_ms=_now_ms())
            )
            if account is None:
                return admin_pb2.SetAccountStatusResponse(credential_id=request.credential_id.upper(), found=False)
            resp = _account_response(account, admin_pb2.SetAccountStatusResponse)
            resp.found = True
            return resp

        return await self._guard(context, call)

    async def GetAccount(  # noqa: N802
        self, request: admin_pb2.GetAccountRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.GetAccountResponse:
        async def call(who: str) -> admin_pb2.GetAccountResponse:
            validation.credential_id(request.credential_id)
            province = self._province(request.insured_region, required=False)
            if province != self._region:
                return await self._peers.call(province, self._peers.admin(province).GetAccount, request, context)
            account = await self._regional(self._ledger.get_account(request.credential_id, _now_ms()))
            if account is None:
                return admin_pb2.GetAccountResponse(credential_id=request.credential_id.upper(), found=False)
            resp = _account_response(account, admin_pb2.GetAccountResponse)
            resp.found = True
            return resp

        return await self._guard(context, call)

    async def ReadAudit(  # noqa: N802
        self, request: admin_pb2.ReadAuditRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ReadAuditResponse:
        async def call(who: str) -> admin_pb2.ReadAuditResponse:
            province = request.region or self._region
            if province != self._region:
                if province not in self._peers.provinces:
                    raise validation.InvalidArgument("region", f"{province[:40]!r}: no node is known for that province")
                return await self._peers.call(province, self._peers.admin(province).ReadAudit, request, context)
            count = request.count or 100
            if not 1 <= count <= 10_000:
                raise validation.InvalidArgument("count", f"{count} is not 1 to 10000")
            if request.since and not _STREAM_ID.fullmatch(request.since):
                raise validation.InvalidArgument("since", f"{request.since[:40]!r} is not an entry id such as 1795448373532-0")
            entries = await self._regional(
                audit.read(self._ledger.redis, self._region, since=request.since or None, count=count, latest=request.latest)
            )
            resp = admin_pb2.ReadAuditResponse(region=self._region)
            for e in entries:
                entry = resp.entries.add(id=e.id, who=e.who, what=e.what, outcome=e.outcome, detail=e.detail)
                entry.when.FromMilliseconds(e.when)
            return resp

        return await self._guard(context, call)

    async def GetNodeKey(  # noqa: N802
        self, request: admin_pb2.GetNodeKeyRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.GetNodeKeyResponse:
        # The receipt key is public: anyone holding a receipt may ask for it.
        try:
            if request.region and request.region != self._region:
                if request.region not in self._peers.provinces:
                    raise validation.InvalidArgument("region", f"{request.region[:40]!r}: no node is known for that province")
                return await self._peers.call(
                    request.region, self._peers.admin(request.region).GetNodeKey, request, context
                )
            return admin_pb2.GetNodeKeyResponse(
                region=self._region, public_key=self._node_public_key, key_id=node_key.key_id(self._node_public_key)
            )
        except validation.InvalidArgument as e:
            await context.abort_with_status(e.status())
        except PeerUnavailable as e:
            await context.abort_with_status(e.status or validation.rich_status(e.code, str(e), "PEER_UNAVAILABLE"))
        raise AssertionError("abort returns by raising")
