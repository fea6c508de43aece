"""The asyncio client: the same methods as :class:`yibao_client.Client`, as coroutines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import Any

import grpc
import grpc.aio
from yibao.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    settlement_pb2,
    settlement_pb2_grpc,
    verifier_pb2,
    verifier_pb2_grpc,
)

from . import _requests as rq
from ._channel import DEFAULT_TARGET, ChannelOptions, PemSource
from .client import _Settings
from .errors import YibaoError

__all__ = ["AsyncClient"]


class AsyncClient:
    """A connection to one yibao-verify node for asyncio (``grpc.aio``).

    Same constructor, transport, deadline and retry rules as
    :class:`yibao_client.Client`; every method is a coroutine except
    :meth:`verify_stream`, an async iterator. Create and use it inside one
    event loop::

        async with AsyncClient(target, insecure=True) as c:
            r = await c.verify(text, institution_code="H44030000001")
            async for r in c.verify_stream(requests):
                ...
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        insecure: bool = False,
        root_certificates: PemSource | None = None,
        private_key: PemSource | None = None,
        certificate_chain: PemSource | None = None,
        timeout: float | None = 5.0,
        retries: int = 4,
        retry_initial_backoff: float = 0.2,
        retry_max_backoff: float = 3.0,
        server_name: str | None = None,
        options: ChannelOptions = (),
    ) -> None:
        self._settings = _Settings(
            target,
            insecure=insecure,
            root_certificates=root_certificates,
            private_key=private_key,
            certificate_chain=certificate_chain,
            timeout=timeout,
            retries=retries,
            retry_initial_backoff=retry_initial_backoff,
            retry_max_backoff=retry_max_backoff,
            server_name=server_name,
            options=options,
        )
        self.target = target
        self.timeout = timeout
        creds = self._settings.credentials
        self.channel: grpc.aio.Channel = (
            grpc.aio.insecure_channel(target, options=self._settings.options)
            if creds is None
            else grpc.aio.secure_channel(target, creds, options=self._settings.options)
        )
        self.verifier_stub = verifier_pb2_grpc.VerifierStub(self.channel)
        self.settlement_stub = settlement_pb2_grpc.SettlementStub(self.channel)
        self.admin_stub = admin_pb2_grpc.AdminStub(self.channel)

    # -- plumbing -----------------------------------------------------------
    async def close(self, grace: float | None = None) -> None:
        """Close the channel (calls in flight get ``grace`` seconds, then are cancelled)."""
        await self.channel.close(grace)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until the channel is connected (YibaoError UNAVAILABLE after ``timeout`` s)."""
        try:
            await asyncio.wait_for(self.channel.channel_ready(), timeout)
        except TimeoutError:
            raise YibaoError(
                grpc.StatusCode.UNAVAILABLE, f"no connection to {self.target} within {timeout} s"
            ) from None

    async def _unary(self, method: str, fn: Callable[..., Any], request: Any, timeout: float | None) -> Any:
        try:
            return await fn(request, timeout=self._settings.deadline(timeout))
        except grpc.RpcError as e:
            raise YibaoError.from_rpc_error(e, method=method) from e

    # -- Verifier -------------------------------------------------------------
    async def verify(
        self,
        code: str,
        *,
        institution_code: str,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> verifier_pb2.VerifyResponse:
        """See :meth:`yibao_client.Client.verify` (safe to retry: request ids)."""
        request = rq.verify_request(code, institution_code, request_id)
        response: verifier_pb2.VerifyResponse = await self._unary(
            "/yibao.v1.Verifier/Verify", self.verifier_stub.Verify, request, timeout
        )
        return response

    async def verify_batch(
        self, requests: Iterable[rq.VerifyItem], *, timeout: float | None = None
    ) -> list[verifier_pb2.VerifyResponse]:
        """See :meth:`yibao_client.Client.verify_batch` (safe to retry: request ids)."""
        request = rq.verify_batch_request(requests)
        response: verifier_pb2.VerifyBatchResponse = await self._unary(
            "/yibao.v1.Verifier/VerifyBatch", self.verifier_stub.VerifyBatch, request, timeout
        )
        return list(response.responses)

    async def verify_stream(
        self,
        requests: Iterable[rq.VerifyItem] | AsyncIterable[rq.VerifyItem],
        *,
        timeout: float | None = None,
    ) -> AsyncIterator[verifier_pb2.VerifyResponse]:
        """See :meth:`yibao_client.Client.verify_stream`; ``requests`` may also
        be an async iterable. Use as ``async for r in c.verify_stream(...)``."""
        call = self.verifier_stub.VerifyStream(_requests_of(requests), timeout=timeout)
        try:
            async for response in call:
                yield response
        except grpc.RpcError as e:
            raise YibaoError.from_rpc_error(e, method="/yibao.v1.Verifier/VerifyStream") from e
        finally:
            call.cancel()

    # -- Settlement -----------------------------------------------------------
    async def presettle(
        self,
        *,
        ec_token: str,
        institution_code: str,
        order_id: str,
        total_fen: int,
        account_pay_fen: int,
        items: Iterable[rq.SettleItemLike] = (),
        timeout: float | None = None,
    ) -> settlement_pb2.SettleResponse:
        """See :meth:`yibao_client.Client.presettle` (moves no money: safe to retry)."""
        request = rq.settle_request(
            ec_token=ec_token,
            institution_code=institution_code,
            order_id=order_id,
            total_fen=total_fen,
            account_pay_fen=account_pay_fen,
            items=items,
        )
        response: settlement_pb2.SettleResponse = await self._unary(
            "/yibao.v1.Settlement/PreSettle", self.settlement_stub.PreSettle, request, timeout
        )
        return response

    async def settle(
        self,
        *,
        ec_token: str,
        institution_code: str,
        order_id: str,
        total_fen: int,
        account_pay_fen: int,
        items: Iterable[rq.SettleItemLike] = (),
        timeout: float | None = None,
    ) -> settlement_pb2.SettleResponse:
        """See :meth:`yibao_client.Client.settle` (safe to retry: order_id is
        the idempotency key, a retry never pays twice)."""
        request = rq.settle_request(
            ec_token=ec_token,
            institution_code=institution_code,
            order_id=order_id,
            total_fen=total_fen,
            account_pay_fen=account_pay_fen,
            items=items,
        )
        response: settlement_pb2.SettleResponse = await self._unary(
            "/yibao.v1.Settlement/Settle", self.settlement_stub.Settle, request, timeout
        )
        return response

    async def refund(
        self,
        *,
        settlement_id: str,
        refund_id: str,
        amount_fen: int,
        institution_code: str,
        timeout: float | None = None,
    ) -> settlement_pb2.RefundResponse:
        """See :meth:`yibao_client.Client.refund` (safe to retry: refund_id)."""
        request = rq.refund_request(
            settlement_id=settlement_id,
            refund_id=refund_id,
            amount_fen=amount_fen,
            institution_code=institution_code,
        )
        response: settlement_pb2.RefundResponse = await self._unary(
            "/yibao.v1.Settlement/Refund", self.settlement_stub.Refund, request, timeout
        )
        return response

    async def get_settlement(
        self, settlement_id: str, *, timeout: float | None = None
    ) -> settlement_pb2.GetSettlementResponse:
        """See :meth:`yibao_client.Client.get_settlement`."""
        response: settlement_pb2.GetSettlementResponse = await self._unary(
            "/yibao.v1.Settlement/GetSettlement",
            self.settlement_stub.GetSettlement,
            rq.get_settlement_request(settlement_id),
            timeout,
        )
        return response

    # -- Admin: accounts ----------------------------------------------------
    async def open_account(
        self,
        *,
        credential_id: str,
        balance_fen: int,
        per_payment_limit_fen: int,
        daily_limit_fen: int,
        insured_region: str,
        timeout: float | None = None,
    ) -> admin_pb2.OpenAccountResponse:
        """See :meth:`yibao_client.Client.open_account`."""
        request = rq.open_account_request(
            credential_id=credential_id,
            balance_fen=balance_fen,
            per_payment_limit_fen=per_payment_limit_fen,
            daily_limit_fen=daily_limit_fen,
            insured_region=insured_region,
        )
        response: admin_pb2.OpenAccountResponse = await self._unary(
            "/yibao.v1.Admin/OpenAccount", self.admin_stub.OpenAccount, request, timeout
        )
        return response

    async def get_account(
        self, credential_id: str, *, insured_region: str = "", timeout: float | None = None
    ) -> admin_pb2.GetAccountResponse:
        """See :meth:`yibao_client.Client.get_account`."""
        response: admin_pb2.GetAccountResponse = await self._unary(
            "/yibao.v1.Admin/GetAccount",
            self.admin_stub.GetAccount,
            rq.get_account_request(credential_id, insured_region),
            timeout,
        )
        return response

    async def set_account_status(
        self,
        credential_id: str,
        status: str | int,
        *,
        insured_region: str = "",
        timeout: float | None = None,
    ) -> admin_pb2.SetAccountStatusResponse:
        """See :meth:`yibao_client.Client.set_account_status`."""
        response: admin_pb2.SetAccountStatusResponse = await self._unary(
            "/yibao.v1.Admin/SetAccountStatus",
            self.admin_stub.SetAccountStatus,
            rq.set_account_status_request(credential_id, status, insured_region),
            timeout,
        )
        return response

    # -- Admin: credentials and keys ----------------------------------------
    async def revoke(
        self, credential_id: str, reason: str | int, *, timeout: float | None = None
    ) -> admin_pb2.RevokeResponse:
        """See :meth:`yibao_client.Client.revoke`."""
        response: admin_pb2.RevokeResponse = await self._unary(
            "/yibao.v1.Admin/Revoke",
            self.admin_stub.Revoke,
            rq.revoke_request(credential_id, reason),
            timeout,
        )
        return response

    async def revoke_batch(
        self, revocations: Iterable[tuple[str, str | int]], *, timeout: float | None = None
    ) -> admin_pb2.RevokeBatchResponse:
        """See :meth:`yibao_client.Client.revoke_batch`."""
        response: admin_pb2.RevokeBatchResponse = await self._unary(
            "/yibao.v1.Admin/RevokeBatch",
            self.admin_stub.RevokeBatch,
            rq.revoke_batch_request(revocations),
            timeout,
        )
        return response

    async def restore(self, credential_id: str, *, timeout: float | None = None) -> admin_pb2.RestoreResponse:
        """See :meth:`yibao_client.Client.restore`."""
        response: admin_pb2.RestoreResponse = await self._unary(
            "/yibao.v1.Admin/Restore",
            self.admin_stub.Restore,
            rq.restore_request(credential_id),
            timeout,
        )
        return response

    async def withdraw_channel(
        self, credential_id: str, channel: str | int, *, timeout: float | None = None
    ) -> admin_pb2.WithdrawChannelResponse:
        """See :meth:`yibao_client.Client.withdraw_channel`."""
        response: admin_pb2.WithdrawChannelResponse = await self._unary(
            "/yibao.v1.Admin/WithdrawChannel",
            self.admin_stub.WithdrawChannel,
            rq.withdraw_channel_request(credential_id, channel),
            timeout,
        )
        return response

    async def restore_channel(
        self, credential_id: str, channel: str | int, *, timeout: float | None = None
    ) -> admin_pb2.RestoreChannelResponse:
        """See :meth:`yibao_client.Client.restore_channel`."""
        response: admin_pb2.RestoreChannelResponse = await self._unary(
            "/yibao.v1.Admin/RestoreChannel",
            self.admin_stub.RestoreChannel,
            rq.restore_channel_request(credential_id, channel),
            timeout,
        )
        return response

    async def load_trust_list(
        self, json_text: str | bytes, *, timeout: float | None = None
    ) -> admin_pb2.LoadTrustListResponse:
        """See :meth:`yibao_client.Client.load_trust_list`."""
        response: admin_pb2.LoadTrustListResponse = await self._unary(
            "/yibao.v1.Admin/LoadTrustList",
            self.admin_stub.LoadTrustList,
            rq.load_trust_list_request(json_text),
            timeout,
        )
        return response

    async def get_node_key(
        self, region: str = "", *, timeout: float | None = None
    ) -> admin_pb2.GetNodeKeyResponse:
        """See :meth:`yibao_client.Client.get_node_key`."""
        response: admin_pb2.GetNodeKeyResponse = await self._unary(
            "/yibao.v1.Admin/GetNodeKey",
            self.admin_stub.GetNodeKey,
            rq.get_node_key_request(region),
            timeout,
        )
        return response

    async def read_audit(
        self,
        region: str = "",
        since: str = "",
        count: int = 100,
        latest: bool = False,
        *,
        timeout: float | None = None,
    ) -> admin_pb2.ReadAuditResponse:
        """See :meth:`yibao_client.Client.read_audit` (a read: safe to retry)."""
        response: admin_pb2.ReadAuditResponse = await self._unary(
            "/yibao.v1.Admin/ReadAudit",
            self.admin_stub.ReadAudit,
            rq.read_audit_request(region, since, count, latest),
            timeout,
        )
        return response


async def _requests_of(
    requests: Iterable[rq.VerifyItem] | AsyncIterable[rq.VerifyItem],
) -> AsyncIterator[verifier_pb2.VerifyRequest]:
    if isinstance(requests, AsyncIterable):
        async for item in requests:
            yield rq.as_verify_request(item)
    else:
        for item in requests:
            yield rq.as_verify_request(item)
