"""Request builders shared by Client and AsyncClient (no I/O here)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

from yibao.v1 import admin_pb2, settlement_pb2, verifier_pb2

from .enums import account_status_value, channel_value, revocation_reason_value

#: Most requests one VerifyBatch may carry (api.md).
MAX_BATCH = 1000
#: Most entries one ReadAudit returns.
MAX_AUDIT_COUNT = 10_000

#: What verify_batch / verify_stream accept for one code: a VerifyRequest, or
#: ``(code, institution_code)`` / ``(code, institution_code, request_id)``
#: where a request_id of None gets a fresh one.
VerifyItem: TypeAlias = verifier_pb2.VerifyRequest | tuple[str, str] | tuple[str, str, str | None]
#: A bill line: a SettleItem, or a mapping of its fields.
SettleItemLike: TypeAlias = settlement_pb2.SettleItem | Mapping[str, Any]


def new_request_id() -> str:
    """A fresh request id: 32 lower-case hex digits of a random UUID."""
    return uuid.uuid4().hex


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be str, not {type(value).__name__}")
    return value


def _fen(name: str, value: object) -> int:
    """Money is an int count of fen; floats (and bools) are refused outright."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int number of fen (分), not {type(value).__name__}")
    return value


def verify_request(
    code: str, institution_code: str, request_id: str | None = None
) -> verifier_pb2.VerifyRequest:
    return verifier_pb2.VerifyRequest(
        code=_text("code", code),
        institution_code=_text("institution_code", institution_code),
        request_id=new_request_id() if request_id is None else _text("request_id", request_id),
    )


def as_verify_request(item: VerifyItem) -> verifier_pb2.VerifyRequest:
    if isinstance(item, verifier_pb2.VerifyRequest):
        return item
    if isinstance(item, tuple) and len(item) in (2, 3):
        return verify_request(*item)
    raise TypeError(
        "each item must be a VerifyRequest or a (code, institution_code[, request_id]) tuple, "
        f"not {type(item).__name__}"
    )


def verify_batch_request(items: Iterable[VerifyItem]) -> verifier_pb2.VerifyBatchRequest:
    requests = [as_verify_request(i) for i in items]
    if not 1 <= len(requests) <= MAX_BATCH:
        raise ValueError(f"a VerifyBatch carries 1 to {MAX_BATCH} requests, not {len(requests)}")
    return verifier_pb2.VerifyBatchRequest(requests=requests)


def settle_item(item: SettleItemLike) -> settlement_pb2.SettleItem:
    if isinstance(item, settlement_pb2.SettleItem):
        return item
    fields = dict(item)
    for name in ("quantity_milli", "unit_price_fen", "amount_fen"):
        if name in fields:
            _fen(f"items[].{name}", fields[name])
    return settlement_pb2.SettleItem(**fields)


def settle_request(
    *,
    ec_token: str,
    institution_code: str,
    order_id: str,
    total_fen: int,
    account_pay_fen: int,
    items: Iterable[SettleItemLike] = (),
) -> settlement_pb2.SettleRequest:
    return settlement_pb2.SettleRequest(
        ec_token=_text("ec_token", ec_token),
        institution_code=_text("institution_code", institution_code),
        order_id=_text("order_id", order_id),
        total_fen=_fen("total_fen", total_fen),
        account_pay_fen=_fen("account_pay_fen", account_pay_fen),
        items=[settle_item(i) for i in items],
    )


def refund_request(
    *, settlement_id: str, refund_id: str, amount_fen: int, institution_code: str
) -> settlement_pb2.RefundRequest:
    return settlement_pb2.RefundRequest(
        settlement_id=_text("settlement_id", settlement_id),
        refund_id=_text("refund_id", refund_id),
        amount_fen=_fen("amount_fen", amount_fen),
        institution_code=_text("institution_code", institution_code),
    )


def get_settlement_request(settlement_id: str) -> settlement_pb2.GetSettlementRequest:
    return settlement_pb2.GetSettlementRequest(settlement_id=_text("settlement_id", settlement_id))


def revoke_request(credential_id: str, reason: str | int) -> admin_pb2.RevokeRequest:
    return admin_pb2.RevokeRequest(
        credential_id=_text("credential_id", credential_id),
        reason=revocation_reason_value(reason),  # type: ignore[arg-type]
    )


def revoke_batch_request(revocations: Iterable[tuple[str, str | int]]) -> admin_pb2.RevokeBatchRequest:
    return admin_pb2.RevokeBatchRequest(requests=[revoke_request(cid, reason) for cid, reason in revocations])


def restore_request(credential_id: str) -> admin_pb2.RestoreRequest:
    return admin_pb2.RestoreRequest(credential_id=_text("credential_id", credential_id))


def withdraw_channel_request(credential_id: str, channel: str | int) -> admin_pb2.WithdrawChannelRequest:
    return admin_pb2.WithdrawChannelRequest(
        credential_id=_text("credential_id", credential_id),
        channel=channel_value(channel),  # type: ignore[arg-type]
    )


def restore_channel_request(credential_id: str, channel: str | int) -> admin_pb2.RestoreChannelRequest:
    return admin_pb2.RestoreChannelRequest(
        credential_id=_text("credential_id", credential_id),
        channel=channel_value(channel),  # type: ignore[arg-type]
    )


def open_account_request(
    *,
    credential_id: str,
    balance_fen: int,
    per_payment_limit_fen: int,
    daily_limit_fen: int,
    insured_region: str,
) -> admin_pb2.OpenAccountRequest:
    return admin_pb2.OpenAccountRequest(
        credential_id=_text("credential_id", credential_id),
        balance_fen=_fen("balance_fen", balance_fen),
        per_payment_limit_fen=_fen("per_payment_limit_fen", per_payment_limit_fen),
        daily_limit_fen=_fen("daily_limit_fen", daily_limit_fen),
        insured_region=_text("insured_region", insured_region),
    )


def get_account_request(credential_id: str, insured_region: str = "") -> admin_pb2.GetAccountRequest:
    return admin_pb2.GetAccountRequest(
        credential_id=_text("credential_id", credential_id),
        insured_region=_text("insured_region", insured_region),
    )


def set_account_status_request(
    credential_id: str, status: str | int, insured_region: str = ""
) -> admin_pb2.SetAccountStatusRequest:
    return admin_pb2.SetAccountStatusRequest(
        credential_id=_text("credential_id", credential_id),
        status=account_status_value(status),  # type: ignore[arg-type]
        insured_region=_text("insured_region", insured_region),
    )


def load_trust_list_request(trust_list_json: str | bytes) -> admin_pb2.LoadTrustListRequest:
    if isinstance(trust_list_json, bytes):
        trust_list_json = trust_list_json.decode("utf-8")
    return admin_pb2.LoadTrustListRequest(trust_list_json=_text("trust_list_json", trust_list_json))


def get_node_key_request(region: str = "") -> admin_pb2.GetNodeKeyRequest:
    return admin_pb2.GetNodeKeyRequest(region=_text("region", region))


def read_audit_request(
    region: str = "", since: str = "", count: int = 100, latest: bool = False
) -> admin_pb2.ReadAuditRequest:
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"count must be int, not {type(count).__name__}")
    if not 1 <= count <= MAX_AUDIT_COUNT:
        raise ValueError(f"count must be 1 to {MAX_AUDIT_COUNT}, not {count}")
    if not isinstance(latest, bool):
        raise TypeError(f"latest must be bool, not {type(latest).__name__}")
    return admin_pb2.ReadAuditRequest(
        region=_text("region", region), since=_text("since", since), count=count, latest=latest
    )
