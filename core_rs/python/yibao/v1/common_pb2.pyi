import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Channel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_UNSPECIFIED: _ClassVar[Channel]
    CHANNEL_NATIONAL_APP: _ClassVar[Channel]
    CHANNEL_WECHAT: _ClassVar[Channel]
    CHANNEL_ALIPAY: _ClassVar[Channel]
    CHANNEL_BANK_APP: _ClassVar[Channel]
    CHANNEL_GOV_SERVICE: _ClassVar[Channel]

class RevocationReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVOCATION_REASON_UNSPECIFIED: _ClassVar[RevocationReason]
    REVOCATION_REASON_LOST: _ClassVar[RevocationReason]
    REVOCATION_REASON_FROZEN: _ClassVar[RevocationReason]
    REVOCATION_REASON_CANCELLED: _ClassVar[RevocationReason]
    REVOCATION_REASON_DECEASED: _ClassVar[RevocationReason]

class AccountStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCOUNT_STATUS_UNSPECIFIED: _ClassVar[AccountStatus]
    ACCOUNT_STATUS_ACTIVE: _ClassVar[AccountStatus]
    ACCOUNT_STATUS_FROZEN: _ClassVar[AccountStatus]
CHANNEL_UNSPECIFIED: Channel
CHANNEL_NATIONAL_APP: Channel
CHANNEL_WECHAT: Channel
CHANNEL_ALIPAY: Channel
CHANNEL_BANK_APP: Channel
CHANNEL_GOV_SERVICE: Channel
REVOCATION_REASON_UNSPECIFIED: RevocationReason
REVOCATION_REASON_LOST: RevocationReason
REVOCATION_REASON_FROZEN: RevocationReason
REVOCATION_REASON_CANCELLED: RevocationReason
REVOCATION_REASON_DECEASED: RevocationReason
ACCOUNT_STATUS_UNSPECIFIED: AccountStatus
ACCOUNT_STATUS_ACTIVE: AccountStatus
ACCOUNT_STATUS_FROZEN: AccountStatus

class Credential(_message.Message):
    __slots__ = ("credential_id", "presenter_id", "insured_region", "province", "channel", "issued_at", "expires_at", "key_id", "family", "nonce")
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    PRESENTER_ID_FIELD_NUMBER: _ClassVar[int]
    INSURED_REGION_FIELD_NUMBER: _ClassVar[int]
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    credential_id: str
    presenter_id: str
    insured_region: str
    province: str
    channel: Channel
    issued_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    key_id: str
    family: bool
    nonce: str
    def __init__(self, credential_id: _Optional[str] = ..., presenter_id: _Optional[str] = ..., insured_region: _Optional[str] = ..., province: _Optional[str] = ..., channel: _Optional[_Union[Channel, str]] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., key_id: _Optional[str] = ..., family: _Optional[bool] = ..., nonce: _Optional[str] = ...) -> None: ...
