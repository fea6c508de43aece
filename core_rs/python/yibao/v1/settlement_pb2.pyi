import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SettleOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SETTLE_OUTCOME_UNSPECIFIED: _ClassVar[SettleOutcome]
    SETTLE_OUTCOME_SETTLED: _ClassVar[SettleOutcome]
    SETTLE_OUTCOME_TOKEN_INVALID: _ClassVar[SettleOutcome]
    SETTLE_OUTCOME_TOKEN_EXPIRED: _ClassVar[SettleOutcome]
    SETTLE_OUTCOME_ACCOUNT_NOT_FOUND: _ClassVar[SettleOutcome]
    SETTLE_OUTCOME_ACCOUNT_FROZEN: _ClassVar[SettleOutcome]
    SETTLE_OUTCOME_INSUFFICIENT_BALANCE: _ClassVar[SettleOutcome]
    SETTLE_OUTCOME_LIMIT_EXCEEDED: _ClassVar[SettleOutcome]
    SETTLE_OUTCOME_ORDER_CONFLICT: _ClassVar[SettleOutcome]

class RefundOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REFUND_OUTCOME_UNSPECIFIED: _ClassVar[RefundOutcome]
    REFUND_OUTCOME_REFUNDED: _ClassVar[RefundOutcome]
    REFUND_OUTCOME_NOT_FOUND: _ClassVar[RefundOutcome]
    REFUND_OUTCOME_EXCEEDS_REMAINING: _ClassVar[RefundOutcome]
    REFUND_OUTCOME_NOT_PERMITTED: _ClassVar[RefundOutcome]
    REFUND_OUTCOME_REFUND_CONFLICT: _ClassVar[RefundOutcome]
SETTLE_OUTCOME_UNSPECIFIED: SettleOutcome
SETTLE_OUTCOME_SETTLED: SettleOutcome
SETTLE_OUTCOME_TOKEN_INVALID: SettleOutcome
SETTLE_OUTCOME_TOKEN_EXPIRED: SettleOutcome
SETTLE_OUTCOME_ACCOUNT_NOT_FOUND: SettleOutcome
SETTLE_OUTCOME_ACCOUNT_FROZEN: SettleOutcome
SETTLE_OUTCOME_INSUFFICIENT_BALANCE: SettleOutcome
SETTLE_OUTCOME_LIMIT_EXCEEDED: SettleOutcome
SETTLE_OUTCOME_ORDER_CONFLICT: SettleOutcome
REFUND_OUTCOME_UNSPECIFIED: RefundOutcome
REFUND_OUTCOME_REFUNDED: RefundOutcome
REFUND_OUTCOME_NOT_FOUND: RefundOutcome
REFUND_OUTCOME_EXCEEDS_REMAINING: RefundOutcome
REFUND_OUTCOME_NOT_PERMITTED: RefundOutcome
REFUND_OUTCOME_REFUND_CONFLICT: RefundOutcome

class SettleItem(_message.Message):
    __slots__ = ("item_code", "name", "quantity_milli", "unit", "unit_price_fen", "amount_fen")
    ITEM_CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_MILLI_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FEN_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    item_code: str
    name: str
    quantity_milli: int
    unit: str
    unit_price_fen: int
    amount_fen: int
    def __init__(self, item_code: _Optional[str] = ..., name: _Optional[str] = ..., quantity_milli: _Optional[int] = ..., unit: _Optional[str] = ..., unit_price_fen: _Optional[int] = ..., amount_fen: _Optional[int] = ...) -> None: ...

class SettleRequest(_message.Message):
    __slots__ = ("ec_token", "institution_code", "order_id", "total_fen", "account_pay_fen", "items")
    EC_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_CODE_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FEN_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_PAY_FEN_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    ec_token: str
    institution_code: str
    order_id: str
    total_fen: int
    account_pay_fen: int
    items: _containers.RepeatedCompositeFieldContainer[SettleItem]
    def __init__(self, ec_token: _Optional[str] = ..., institution_code: _Optional[str] = ..., order_id: _Optional[str] = ..., total_fen: _Optional[int] = ..., account_pay_fen: _Optional[int] = ..., items: _Optional[_Iterable[_Union[SettleItem, _Mapping]]] = ...) -> None: ...

class SettleResponse(_message.Message):
    __slots__ = ("outcome", "settlement_id", "account_pay_fen", "cash_pay_fen", "balance_after_fen", "settled_at", "settled_region", "receipt", "receipt_signature", "detail", "order_id")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_PAY_FEN_FIELD_NUMBER: _ClassVar[int]
    CASH_PAY_FEN_FIELD_NUMBER: _ClassVar[int]
    BALANCE_AFTER_FEN_FIELD_NUMBER: _ClassVar[int]
    SETTLED_AT_FIELD_NUMBER: _ClassVar[int]
    SETTLED_REGION_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    outcome: SettleOutcome
    settlement_id: str
    account_pay_fen: int
    cash_pay_fen: int
    balance_after_fen: int
    settled_at: _timestamp_pb2.Timestamp
    settled_region: str
    receipt: bytes
    receipt_signature: bytes
    detail: str
    order_id: str
    def __init__(self, outcome: _Optional[_Union[SettleOutcome, str]] = ..., settlement_id: _Optional[str] = ..., account_pay_fen: _Optional[int] = ..., cash_pay_fen: _Optional[int] = ..., balance_after_fen: _Optional[int] = ..., settled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., settled_region: _Optional[str] = ..., receipt: _Optional[bytes] = ..., receipt_signature: _Optional[bytes] = ..., detail: _Optional[str] = ..., order_id: _Optional[str] = ...) -> None: ...

class RefundRequest(_message.Message):
    __slots__ = ("settlement_id", "refund_id", "amount_fen", "institution_code")
    SETTLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REFUND_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_CODE_FIELD_NUMBER: _ClassVar[int]
    settlement_id: str
    refund_id: str
    amount_fen: int
    institution_code: str
    def __init__(self, settlement_id: _Optional[str] = ..., refund_id: _Optional[str] = ..., amount_fen: _Optional[int] = ..., institution_code: _Optional[str] = ...) -> None: ...

class RefundResponse(_message.Message):
    __slots__ = ("outcome", "refund_id", "amount_fen", "balance_after_fen", "receipt", "receipt_signature", "detail", "settlement_id", "remaining_fen", "refunded_at")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REFUND_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    BALANCE_AFTER_FEN_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FEN_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_AT_FIELD_NUMBER: _ClassVar[int]
    outcome: RefundOutcome
    refund_id: str
    amount_fen: int
    balance_after_fen: int
    receipt: bytes
    receipt_signature: bytes
    detail: str
    settlement_id: str
    remaining_fen: int
    refunded_at: _timestamp_pb2.Timestamp
    def __init__(self, outcome: _Optional[_Union[RefundOutcome, str]] = ..., refund_id: _Optional[str] = ..., amount_fen: _Optional[int] = ..., balance_after_fen: _Optional[int] = ..., receipt: _Optional[bytes] = ..., receipt_signature: _Optional[bytes] = ..., detail: _Optional[str] = ..., settlement_id: _Optional[str] = ..., remaining_fen: _Optional[int] = ..., refunded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetSettlementRequest(_message.Message):
    __slots__ = ("settlement_id",)
    SETTLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    settlement_id: str
    def __init__(self, settlement_id: _Optional[str] = ...) -> None: ...

class SettlementRecord(_message.Message):
    __slots__ = ("settlement_id", "institution_code", "order_id", "credential_id", "total_fen", "account_pay_fen", "cash_pay_fen", "balance_after_fen", "settled_at", "settled_region", "items", "refunded_fen", "receipt", "receipt_signature")
    SETTLEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_CODE_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FEN_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_PAY_FEN_FIELD_NUMBER: _ClassVar[int]
    CASH_PAY_FEN_FIELD_NUMBER: _ClassVar[int]
    BALANCE_AFTER_FEN_FIELD_NUMBER: _ClassVar[int]
    SETTLED_AT_FIELD_NUMBER: _ClassVar[int]
    SETTLED_REGION_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_FEN_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    settlement_id: str
    institution_code: str
    order_id: str
    credential_id: str
    total_fen: int
    account_pay_fen: int
    cash_pay_fen: int
    balance_after_fen: int
    settled_at: _timestamp_pb2.Timestamp
    settled_region: str
    items: _containers.RepeatedCompositeFieldContainer[SettleItem]
    refunded_fen: int
    receipt: bytes
    receipt_signature: bytes
    def __init__(self, settlement_id: _Optional[str] = ..., institution_code: _Optional[str] = ..., order_id: _Optional[str] = ..., credential_id: _Optional[str] = ..., total_fen: _Optional[int] = ..., account_pay_fen: _Optional[int] = ..., cash_pay_fen: _Optional[int] = ..., balance_after_fen: _Optional[int] = ..., settled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., settled_region: _Optional[str] = ..., items: _Optional[_Iterable[_Union[SettleItem, _Mapping]]] = ..., refunded_fen: _Optional[int] = ..., receipt: _Optional[bytes] = ..., receipt_signature: _Optional[bytes] = ...) -> None: ...

class RefundRecord(_message.Message):
    __slots__ = ("refund_id", "amount_fen", "balance_after_fen", "refunded_at", "receipt", "receipt_signature")
    REFUND_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    BALANCE_AFTER_FEN_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_AT_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    refund_id: str
    amount_fen: int
    balance_after_fen: int
    refunded_at: _timestamp_pb2.Timestamp
    receipt: bytes
    receipt_signature: bytes
    def __init__(self, refund_id: _Optional[str] = ..., amount_fen: _Optional[int] = ..., balance_after_fen: _Optional[int] = ..., refunded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., receipt: _Optional[bytes] = ..., receipt_signature: _Optional[bytes] = ...) -> None: ...

class GetSettlementResponse(_message.Message):
    __slots__ = ("found", "settlement", "refunds")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    SETTLEMENT_FIELD_NUMBER: _ClassVar[int]
    REFUNDS_FIELD_NUMBER: _ClassVar[int]
    found: bool
    settlement: SettlementRecord
    refunds: _containers.RepeatedCompositeFieldContainer[RefundRecord]
    def __init__(self, found: _Optional[bool] = ..., settlement: _Optional[_Union[SettlementRecord, _Mapping]] = ..., refunds: _Optional[_Iterable[_Union[RefundRecord, _Mapping]]] = ...) -> None: ...
