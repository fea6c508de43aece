"""The synchronous client."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

import grpc
from yibao.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    settlement_pb2,
    settlement_pb2_grpc,
    verifier_pb2,
    verifier_pb2_grpc,
)

from . import _requests as rq
from ._channel import (
    DEFAULT_TARGET,
    ChannelOptions,
    PemSource,
    channel_credentials,
    channel_options,
)
from .errors import YibaoError

__all__ = ["Client"]


class _Settings:
    """Constructor arguments common to Client and AsyncClient."""

    def __init__(
        self,
        target: str,
        *,
        insecure: bool,
        root_certificates: PemSource | None,
        private_key: PemSource | None,
        certificate_chain: PemSource | None,
        timeout: float | None,
        retries: int,
        retry_initial_backoff: float,
        retry_max_backoff: float,
        server_name: str | None,
        options: ChannelOptions,
    ) -> None:
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds (or None for no deadline), not {timeout}")
        self.target = target
        self.timeout = timeout
        self.credentials = channel_credentials(
            insecure=insecure,
            root_certificates=root_certificates,
            private_key=private_key,
            certificate_chain=certificate_chain,
        )
        self.options = channel_options(
            retries=retries,
            initial_backoff=retry_initial_backoff,
            max_backoff=retry_max_backoff,
            server_name=server_name,
            extra=options,
        )

    def deadline(self, timeout: float | None) -> float | None:
        return self.timeout if timeout is None else timeout


class Client:
    """A connection to one yibao-verify node, with blocking calls.

    ::

        with Client("node.example:50051", root_certificates="ca.pem",
                    private_key="his.key", certificate_chain="his.pem") as c:
            r = c.verify(scanned_text, institution_code="H44030000001")
            if r.outcome == verifier_pb2.OUTCOME_VALID:
                token = r.ec_token

    Transport: TLS by default, with a client certificate (mTLS) when
    ``private_key`` and ``certificate_chain`` are given; the node reads your
    institution code (or admin role) from that certificate. Plaintext only
    with ``insecure=True`` (local demo and tests). Certificates and keys are
    PEM bytes, or the path of a PEM file. ``root_certificates=None`` trusts
    gRPC's default roots. ``server_name`` overrides the name checked in the
    server's certificate (when ``target`` is an IP address).

    Deadlines: every call gets ``timeout`` seconds (default 5), retries
    included; each method takes ``timeout=`` to change it for one call.
    ``verify_stream`` has no deadline unless given one.

    Retries: a call that fails with UNAVAILABLE (a store or another
    province's node is down; no money moved), RESOURCE_EXHAUSTED (the node
    refused it at its in-flight limits, reason OVERLOADED) or CANCELLED by
    the node (gRPC core refused it past ``--max-queued``, before any
    handler) is sent again up to ``retries`` more times (0 to 4, default 4)
    with exponential backoff starting at ``retry_initial_backoff`` seconds
    and capped at ``retry_max_backoff``, within the deadline; a call you
    cancel is never sent again. Retries to a node that keeps refusing stop
    until it answers again (retry throttling; clients/README.md). Every RPC of the API is safe to send
    twice; each method says why. Other status codes are raised at once as
    :class:`~yibao_client.YibaoError`.

    Business results are never exceptions: read ``outcome`` in the answer.
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
        self.channel: grpc.Channel = (
            grpc.insecure_channel(target, options=self._settings.options)
            if creds is None
            else grpc.secure_channel(target, creds, options=self._settings.options)
        )
        #: The generated stubs, for anything this class does not wrap.
        self.verifier_stub = verifier_pb2_grpc.VerifierStub(self.channel)
        self.settlement_stub = settlement_pb2_grpc.SettlementStub(self.channel)
        self.admin_stub = admin_pb2_grpc.AdminStub(self.channel)

    # -- plumbing -----------------------------------------------------------
    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the channel is connected (raises YibaoError UNAVAILABLE
        if it is not within ``timeout`` seconds)."""
        ready = grpc.channel_ready_future(self.channel)
        try:
            ready.result(timeout=timeout)
        except grpc.FutureTimeoutError:
            ready.cancel()
            raise YibaoError(
                grpc.StatusCode.UNAVAILABLE, f"no connection to {self.target} within {timeout} s"
            ) from None

    def _unary(self, method: str, fn: Callable[..., Any], request: Any, timeout: float | None) -> Any:
        try:
            return fn(request, timeout=self._settings.deadline(timeout))
        except grpc.RpcError as e:
            raise YibaoError.from_rpc_error(e, method=method) from e

    # -- Verifier -------------------------------------------------------------
    def verify(
        self,
        code: str,
        *,
        institution_code: str,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> verifier_pb2.VerifyResponse:
        """Check one scanned code (send the text exactly as the scanner read it).

        ``request_id`` defaults to a fresh random id. Safe to retry: the node
        answers a repeat of the same (institution_code, request_id, code)
        with its first answer, never with REPLAYED. To retry a call yourself
        after a YibaoError, pass the same request_id again.
        """
        request = rq.verify_request(code, institution_code, request_id)
        response: verifier_pb2.VerifyResponse = self._unary(
            "/yibao.v1.Verifier/Verify", self.verifier_stub.Verify, request, timeout
        )
        return response

    def verify_batch(
        self, requests: Iterable[rq.VerifyItem], *, timeout: float | None = None
    ) -> list[verifier_pb2.VerifyResponse]:
        """Check 1 to 1,000 codes in one call; answers in request order.

        Items are VerifyRequests or ``(code, institution_code[, request_id])``
        tuples (a missing or None request_id gets a fresh one). Safe to retry
        for the same reason as :meth:`verify`: every request carries its id.
        """
        request = rq.verify_batch_request(requests)
        response: verifier_pb2.VerifyBatchResponse = self._unary(
            "/yibao.v1.Verifier/VerifyBatch", self.verifier_stub.VerifyBatch, request, timeout
        )
        return list(response.responses)

    def verify_stream(
        self, requests: Iterable[rq.VerifyItem], *, timeout: float | None = None
    ) -> Iterator[verifier_pb2.VerifyResponse]:
        """Check a stream of codes: yields one answer per request, in order.

        ``requests`` is consumed lazily (from gRPC's own thread), so it may
        be a generator reading a large file. No deadline unless ``timeout``
        is given. gRPC retries the stream (on the codes above) only while
        no answer has arrived; after that an error ends the iteration with
        YibaoError, the answers already yielded stand, and the rest may be
        sent again with the same request ids. Stopping the iteration early
        cancels the call.
        """
        call = self.verifier_stub.VerifyStream((rq.as_verify_request(r) for r in requests), timeout=timeout)
        try:
            yield from call
        except grpc.RpcError as e:
            raise YibaoError.from_rpc_error(e, method="/yibao.v1.Verifier/VerifyStream") from e
        finally:
            call.cancel()

    # -- Settlement -----------------------------------------------------------
    def presettle(
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
        """What :meth:`settle` would pay (预结算); moves no money, so safe to retry."""
        request = rq.settle_request(
            ec_token=ec_token,
            institution_code=institution_code,
            order_id=order_id,
            total_fen=total_fen,
            account_pay_fen=account_pay_fen,
            items=items,
        )
        response: settlement_pb2.SettleResponse = self._unary(
            "/yibao.v1.Settlement/PreSettle", self.settlement_stub.PreSettle, request, timeout
        )
        return response

    def settle(
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
        """Pay a bill from the personal account (结算). Amounts are int fen.

        Safe to retry: ``order_id`` is the idempotency key, and the node
        answers the same order sent again with the first settlement, so a
        retry never pays twice. After a YibaoError (UNAVAILABLE,
        DEADLINE_EXCEEDED), call again with the same order_id.
        """
        request = rq.settle_request(
            ec_token=ec_token,
            institution_code=institution_code,
            order_id=order_id,
            total_fen=total_fen,
            account_pay_fen=account_pay_fen,
            items=items,
        )
        response: settlement_pb2.SettleResponse = self._unary(
            "/yibao.v1.Settlement/Settle", self.settlement_stub.Settle, request, timeout
        )
        return response

    def refund(
        self,
        *,
        settlement_id: str,
        refund_id: str,
        amount_fen: int,
        institution_code: str,
        timeout: float | None = None,
    ) -> settlement_pb2.RefundResponse:
        """Return money of a settlement (退费). Safe to retry: ``refund_id`` is
        the idempotency key; retry with the same one."""
        request = rq.refund_request(
            settlement_id=settlement_id,
            refund_id=refund_id,
            amount_fen=amount_fen,
            institution_code=institution_code,
        )
        response: settlement_pb2.RefundResponse = self._unary(
            "/yibao.v1.Settlement/Refund", self.settlement_stub.Refund, request, timeout
        )
        return response

    def get_settlement(
        self, settlement_id: str, *, timeout: float | None = None
    ) -> settlement_pb2.GetSettlementResponse:
        """Read a settlement back with its refunds (a read: safe to retry)."""
        response: settlement_pb2.GetSettlementResponse = self._unary(
            "/yibao.v1.Settlement/GetSettlement",
            self.settlement_stub.GetSettlement,
            rq.get_settlement_request(settlement_id),
            timeout,
        )
        return response

    # -- Admin: accounts ----------------------------------------------------
    def open_account(
        self,
        *,
        credential_id: str,
        balance_fen: int,
        per_payment_limit_fen: int,
        daily_limit_fen: int,
        insured_region: str,
        timeout: float | None = None,
    ) -> admin_pb2.OpenAccountResponse:
        """Open (activate) a personal account. Safe to retry: an account that
        already exists is left unchanged (the answer then has created=False)."""
        request = rq.open_account_request(
            credential_id=credential_id,
            balance_fen=balance_fen,
            per_payment_limit_fen=per_payment_limit_fen,
            daily_limit_fen=daily_limit_fen,
            insured_region=insured_region,
        )
        response: admin_pb2.OpenAccountResponse = self._unary(
            "/yibao.v1.Admin/OpenAccount", self.admin_stub.OpenAccount, request, timeout
        )
        return response

    def get_account(
        self, credential_id: str, *, insured_region: str = "", timeout: float | None = None
    ) -> admin_pb2.GetAccountResponse:
        """Read an account (a read: safe to retry)."""
        response: admin_pb2.GetAccountResponse = self._unary(
            "/yibao.v1.Admin/GetAccount",
            self.admin_stub.GetAccount,
            rq.get_account_request(credential_id, insured_region),
            timeout,
        )
        return response

    def set_account_status(
        self,
        credential_id: str,
        status: str | int,
        *,
        insured_region: str = "",
        timeout: float | None = None,
    ) -> admin_pb2.SetAccountStatusResponse:
        """Freeze or unfreeze an account (``"active"``/``"frozen"``). Setting a
        status is idempotent, so safe to retry."""
        response: admin_pb2.SetAccountStatusResponse = self._unary(
            "/yibao.v1.Admin/SetAccountStatus",
            self.admin_stub.SetAccountStatus,
            rq.set_account_status_request(credential_id, status, insured_region),
            timeout,
        )
        return response

    # -- Admin: credentials and keys ----------------------------------------
    def revoke(
        self, credential_id: str, reason: str | int, *, timeout: float | None = None
    ) -> admin_pb2.RevokeResponse:
        """Revoke a credential (``reason``: lost, frozen, cancelled, deceased).
        Revoking a revoked credential is not an error, so safe to retry."""
        response: admin_pb2.RevokeResponse = self._unary(
            "/yibao.v1.Admin/Revoke",
            self.admin_stub.Revoke,
            rq.revoke_request(credential_id, reason),
            timeout,
        )
        return response

    def revoke_batch(
        self, revocations: Iterable[tuple[str, str | int]], *, timeout: float | None = None
    ) -> admin_pb2.RevokeBatchResponse:
        """Revoke up to 10,000 credentials at once: (credential_id, reason)
        pairs. All or nothing, and safe to retry (revoking again records the
        reason again)."""
        response: admin_pb2.RevokeBatchResponse = self._unary(
            "/yibao.v1.Admin/RevokeBatch",
            self.admin_stub.RevokeBatch,
            rq.revoke_batch_request(revocations),
            timeout,
        )
        return response

    def restore(self, credential_id: str, *, timeout: float | None = None) -> admin_pb2.RestoreResponse:
        """Lift a revocation. Idempotent, so safe to retry (a retry may report
        was_revoked=False)."""
        response: admin_pb2.RestoreResponse = self._unary(
            "/yibao.v1.Admin/Restore", self.admin_stub.Restore, rq.restore_request(credential_id), timeout
        )
        return response

    def withdraw_channel(
        self, credential_id: str, channel: str | int, *, timeout: float | None = None
    ) -> admin_pb2.WithdrawChannelResponse:
        """Record that the person withdrew a channel's authorisation
        (``channel``: national_app, wechat, alipay, bank_app, gov_service).
        Idempotent, so safe to retry."""
        response: admin_pb2.WithdrawChannelResponse = self._unary(
            "/yibao.v1.Admin/WithdrawChannel",
            self.admin_stub.WithdrawChannel,
            rq.withdraw_channel_request(credential_id, channel),
            timeout,
        )
        return response

    def restore_channel(
        self, credential_id: str, channel: str | int, *, timeout: float | None = None
    ) -> admin_pb2.RestoreChannelResponse:
        """Give back a withdrawn channel's authorisation. Idempotent, so safe to retry."""
        response: admin_pb2.RestoreChannelResponse = self._unary(
            "/yibao.v1.Admin/RestoreChannel",
            self.admin_stub.RestoreChannel,
            rq.restore_channel_request(credential_id, channel),
            timeout,
        )
        return response

    def load_trust_list(
        self, json_text: str | bytes, *, timeout: float | None = None
    ) -> admin_pb2.LoadTrustListResponse:
        """Replace the node's trust list (credential-v1 section 6 JSON).
        Replacing with the same list twice is harmless, so safe to retry."""
        response: admin_pb2.LoadTrustListResponse = self._unary(
            "/yibao.v1.Admin/LoadTrustList",
            self.admin_stub.LoadTrustList,
            rq.load_trust_list_request(json_text),
            timeout,
        )
        return response

    def get_node_key(self, region: str = "", *, timeout: float | None = None) -> admin_pb2.GetNodeKeyResponse:
        """A node's receipt-signing public key (``region`` "" = the node
        answering; e.g. "11" for a SettleResponse.settled_region). A read."""
        response: admin_pb2.GetNodeKeyResponse = self._unary(
            "/yibao.v1.Admin/GetNodeKey",
            self.admin_stub.GetNodeKey,
            rq.get_node_key_request(region),
            timeout,
        )
        return response

    def read_audit(
        self,
        region: str = "",
        since: str = "",
        count: int = 100,
        latest: bool = False,
        *,
        timeout: float | None = None,
    ) -> admin_pb2.ReadAuditResponse:
        """A page of a province's audit log (审计日志), oldest first.

        ``region``: province-level code, two digits ("" = the node
        answering). ``since``: an entry id; only entries after it are
        returned, so pass the last id of one page to read the next (""
        = from the start). ``count``: at most this many, 1 to 10,000.
        ``latest``: the last ``count`` entries (after ``since``) instead of
        the first. A read: safe to retry.
        """
        response: admin_pb2.ReadAuditResponse = self._unary(
            "/yibao.v1.Admin/ReadAudit",
            self.admin_stub.ReadAudit,
            rq.read_audit_request(region, since, count, latest),
            timeout,
        )
        return response
