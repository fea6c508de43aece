import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from yibao.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_VALID: _ClassVar[Outcome]
    OUTCOME_MALFORMED: _ClassVar[Outcome]
    OUTCOME_UNSUPPORTED_VERSION: _ClassVar[Outcome]
    OUTCOME_UNKNOWN_KEY: _ClassVar[Outcome]
    OUTCOME_KEY_NOT_VALID: _ClassVar[Outcome]
    OUTCOME_NOT_YET_VALID: _ClassVar[Outcome]
    OUTCOME_EXPIRED: _ClassVar[Outcome]
    OUTCOME_BAD_SIGNATURE: _ClassVar[Outcome]
    OUTCOME_REVOKED: _ClassVar[Outcome]
    OUTCOME_CHANNEL_REVOKED: _ClassVar[Outcome]
    OUTCOME_REPLAYED: _ClassVar[Outcome]
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_VALID: Outcome
OUTCOME_MALFORMED: Outcome
OUTCOME_UNSUPPORTED_VERSION: Outcome
OUTCOME_UNKNOWN_KEY: Outcome
OUTCOME_KEY_NOT_VALID: Outcome
OUTCOME_NOT_YET_VALID: Outcome
OUTCOME_EXPIRED: Outcome
OUTCOME_BAD_SIGNATURE: Outcome
OUTCOME_REVOKED: Outcome
OUTCOME_CHANNEL_REVOKED: Outcome
OUTCOME_REPLAYED: Outcome

class VerifyRequest(_message.Message):
    __slots__ = ("code", "institution_code", "request_id")
    CODE_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_CODE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    code: str
    institution_code: str
    request_id: str
    def __init__(self, code: _Optional[str] = ..., institution_code: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("request_id", "outcome", "detail", "credential", "revocation_reason", "cross_province", "ec_token", "token_expires_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_REASON_FIELD_NUMBER: _ClassVar[int]
    CROSS_PROVINCE_FIELD_NUMBER: _ClassVar[int]
    EC_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    outcome: Outcome
    detail: str
    credential: _common_pb2.Credential
    revocation_reason: _common_pb2.RevocationReason
    cross_province: bool
    ec_token: str
    token_expires_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., detail: _Optional[str] = ..., credential: _Optional[_Union[_common_pb2.Credential, _Mapping]] = ..., revocation_reason: _Optional[_Union[_common_pb2.RevocationReason, str]] = ..., cross_province: _Optional[bool] = ..., ec_token: _Optional[str] = ..., token_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class VerifyBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[VerifyRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[VerifyRequest, _Mapping]]] = ...) -> None: ...

class VerifyBatchResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[VerifyResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[VerifyResponse, _Mapping]]] = ...) -> None: ...
