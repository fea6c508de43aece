import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from yibao.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RevokeRequest(_message.Message):
    __slots__ = ("credential_id", "reason")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    reason: _common_pb2.RevocationReason
    def __init__(self, credential_id: _Optional[str] = ..., reason: _Optional[_Union[_common_pb2.RevocationReason, str]] = ...) -> None: ...

class RevokeResponse(_message.Message):
    __slots__ = ("credential_id", "reason", "revoked_at")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    reason: _common_pb2.RevocationReason
    revoked_at: _timestamp_pb2.Timestamp
    def __init__(self, credential_id: _Optional[str] = ..., reason: _Optional[_Union[_common_pb2.RevocationReason, str]] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RevokeBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[RevokeRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[RevokeRequest, _Mapping]]] = ...) -> None: ...

class RevokeBatchResponse(_message.Message):
    __slots__ = ("revoked", "revoked_at")
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    revoked: int
    revoked_at: _timestamp_pb2.Timestamp
    def __init__(self, revoked: _Optional[int] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RestoreRequest(_message.Message):
    __slots__ = ("credential_id",)
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    def __init__(self, credential_id: _Optional[str] = ...) -> None: ...

class RestoreResponse(_message.Message):
    __slots__ = ("credential_id", "was_revoked")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    WAS_REVOKED_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    was_revoked: bool
    def __init__(self, credential_id: _Optional[str] = ..., was_revoked: _Optional[bool] = ...) -> None: ...

class WithdrawChannelRequest(_message.Message):
    __slots__ = ("credential_id", "channel")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    channel: _common_pb2.Channel
    def __init__(self, credential_id: _Optional[str] = ..., channel: _Optional[_Union[_common_pb2.Channel, str]] = ...) -> None: ...

class WithdrawChannelResponse(_message.Message):
    __slots__ = ("credential_id", "channel", "was_withdrawn")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    WAS_WITHDRAWN_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    channel: _common_pb2.Channel
    was_withdrawn: bool
    def __init__(self, credential_id: _Optional[str] = ..., channel: _Optional[_Union[_common_pb2.Channel, str]] = ..., was_withdrawn: _Optional[bool] = ...) -> None: ...

class RestoreChannelRequest(_message.Message):
    __slots__ = ("credential_id", "channel")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    channel: _common_pb2.Channel
    def __init__(self, credential_id: _Optional[str] = ..., channel: _Optional[_Union[_common_pb2.Channel, str]] = ...) -> None: ...

class RestoreChannelResponse(_message.Message):
    __slots__ = ("credential_id", "channel", "was_withdrawn")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    WAS_WITHDRAWN_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    channel: _common_pb2.Channel
    was_withdrawn: bool
    def __init__(self, credential_id: _Optional[str] = ..., channel: _Optional[_Union[_common_pb2.Channel, str]] = ..., was_withdrawn: _Optional[bool] = ...) -> None: ...

class OpenAccountRequest(_message.Message):
    __slots__ = ("credential_id", "balance_fen", "per_payment_limit_fen", "daily_limit_fen", "insured_region")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FEN_FIELD_NUMBER: _ClassVar[int]
    PER_PAYMENT_LIMIT_FEN_FIELD_NUMBER: _ClassVar[int]
    DAILY_LIMIT_FEN_FIELD_NUMBER: _ClassVar[int]
    INSURED_REGION_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    balance_fen: int
    per_payment_limit_fen: int
    daily_limit_fen: int
    insured_region: str
    def __init__(self, credential_id: _Optional[str] = ..., balance_fen: _Optional[int] = ..., per_payment_limit_fen: _Optional[int] = ..., daily_limit_fen: _Optional[int] = ..., insured_region: _Optional[str] = ...) -> None: ...

class OpenAccountResponse(_message.Message):
    __slots__ = ("credential_id", "created", "status", "balance_fen", "per_payment_limit_fen", "daily_limit_fen")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FEN_FIELD_NUMBER: _ClassVar[int]
    PER_PAYMENT_LIMIT_FEN_FIELD_NUMBER: _ClassVar[int]
    DAILY_LIMIT_FEN_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    created: bool
    status: _common_pb2.AccountStatus
    balance_fen: int
    per_payment_limit_fen: int
    daily_limit_fen: int
    def __init__(self, credential_id: _Optional[str] = ..., created: _Optional[bool] = ..., status: _Optional[_Union[_common_pb2.AccountStatus, str]] = ..., balance_fen: _Optional[int] = ..., per_payment_limit_fen: _Optional[int] = ..., daily_limit_fen: _Optional[int] = ...) -> None: ...

class SetAccountStatusRequest(_message.Message):
    __slots__ = ("credential_id", "status", "insured_region")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INSURED_REGION_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    status: _common_pb2.AccountStatus
    insured_region: str
    def __init__(self, credential_id: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.AccountStatus, str]] = ..., insured_region: _Optional[str] = ...) -> None: ...

class SetAccountStatusResponse(_message.Message):
    __slots__ = ("credential_id", "found", "status")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    found: bool
    status: _common_pb2.AccountStatus
    def __init__(self, credential_id: _Optional[str] = ..., found: _Optional[bool] = ..., status: _Optional[_Union[_common_pb2.AccountStatus, str]] = ...) -> None: ...

class GetAccountRequest(_message.Message):
    __slots__ = ("credential_id", "insured_region")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    INSURED_REGION_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    insured_region: str
    def __init__(self, credential_id: _Optional[str] = ..., insured_region: _Optional[str] = ...) -> None: ...

class GetAccountResponse(_message.Message):
    __slots__ = ("credential_id", "found", "status", "balance_fen", "per_payment_limit_fen", "daily_limit_fen", "spent_today_fen", "insured_region")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FEN_FIELD_NUMBER: _ClassVar[int]
    PER_PAYMENT_LIMIT_FEN_FIELD_NUMBER: _ClassVar[int]
    DAILY_LIMIT_FEN_FIELD_NUMBER: _ClassVar[int]
    SPENT_TODAY_FEN_FIELD_NUMBER: _ClassVar[int]
    INSURED_REGION_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    found: bool
    status: _common_pb2.AccountStatus
    balance_fen: int
    per_payment_limit_fen: int
    daily_limit_fen: int
    spent_today_fen: int
    insured_region: str
    def __init__(self, credential_id: _Optional[str] = ..., found: _Optional[bool] = ..., status: _Optional[_Union[_common_pb2.AccountStatus, str]] = ..., balance_fen: _Optional[int] = ..., per_payment_limit_fen: _Optional[int] = ..., daily_limit_fen: _Optional[int] = ..., spent_today_fen: _Optional[int] = ..., insured_region: _Optional[str] = ...) -> None: ...

class LoadTrustListRequest(_message.Message):
    __slots__ = ("trust_list_json",)
    TRUST_LIST_JSON_FIELD_NUMBER: _ClassVar[int]
    trust_list_json: str
    def __init__(self, trust_list_json: _Optional[str] = ...) -> None: ...

class LoadTrustListResponse(_message.Message):
    __slots__ = ("keys_loaded", "key_ids")
    KEYS_LOADED_FIELD_NUMBER: _ClassVar[int]
    KEY_IDS_FIELD_NUMBER: _ClassVar[int]
    keys_loaded: int
    key_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, keys_loaded: _Optional[int] = ..., key_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetNodeKeyRequest(_message.Message):
    __slots__ = ("region",)
    REGION_FIELD_NUMBER: _ClassVar[int]
    region: str
    def __init__(self, region: _Optional[str] = ...) -> None: ...

class GetNodeKeyResponse(_message.Message):
    __slots__ = ("region", "public_key", "key_id")
    REGION_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    region: str
    public_key: bytes
    key_id: str
    def __init__(self, region: _Optional[str] = ..., public_key: _Optional[bytes] = ..., key_id: _Optional[str] = ...) -> None: ...

class ReadAuditRequest(_message.Message):
    __slots__ = ("region", "since", "count", "latest")
    REGION_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    LATEST_FIELD_NUMBER: _ClassVar[int]
    region: str
    since: str
    count: int
    latest: bool
    def __init__(self, region: _Optional[str] = ..., since: _Optional[str] = ..., count: _Optional[int] = ..., latest: _Optional[bool] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("id", "who", "what", "when", "outcome", "detail")
    class DetailEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    WHO_FIELD_NUMBER: _ClassVar[int]
    WHAT_FIELD_NUMBER: _ClassVar[int]
    WHEN_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    id: str
    who: str
    what: str
    when: _timestamp_pb2.Timestamp
    outcome: str
    detail: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., who: _Optional[str] = ..., what: _Optional[str] = ..., when: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., outcome: _Optional[str] = ..., detail: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ReadAuditResponse(_message.Message):
    __slots__ = ("region", "entries")
    REGION_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    region: str
    entries: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    def __init__(self, region: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ...) -> None: ...
