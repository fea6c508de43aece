"""Request checks that answer INVALID_ARGUMENT, and the structured status
every refusal carries: a google.rpc.Status with an ErrorInfo (reason,
domain yibao.v1, metadata such as the field to fix), so a client in any
language can act on it without parsing the message."""

from __future__ import annotations

import re

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from server.config import PROVINCES

DOMAIN = "yibao.v1"
MAX_CODE_CHARS = 4096
MAX_BATCH = 1000
_INSTITUTION = re.compile(r"[HP]\d{11}")
_CREDENTIAL_ID = re.compile(r"[0-9A-Fa-f]{32}")
# An error message quotes what the client sent; cut it short, or a status
# quoting a megabyte field outgrows gRPC's limit on trailing metadata and the
# client gets RESOURCE_EXHAUSTED instead of the answer.
MAX_MESSAGE_CHARS = 400


def rich_status(code: grpc.StatusCode, message: str, reason: str, **metadata: str) -> grpc.Status:
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=[detail]))


class InvalidArgument(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field

    def status(self) -> grpc.Status:
        return rich_status(grpc.StatusCode.INVALID_ARGUMENT, str(self), "INVALID_FIELD", field=self.field)


def institution_code(value: str, field: str = "institution_code") -> str:
    if not value:
        raise InvalidArgument(field, "missing (定点医药机构编码: H or P, then 11 digits)")
    if not _INSTITUTION.fullmatch(value):
        raise InvalidArgument(field, f"{value[:40]!r} is not H or P followed by 11 digits")
    if value[1:3] not in PROVINCES:
        raise InvalidArgument(field, f"{value!r}: {value[1:3]} is not a province-level code")
    return value


def request_id(value: str, field: str = "request_id") -> str:
    if not 1 <= len(value) <= 64:
        raise InvalidArgument(field, f"must be 1 to 64 characters, got {len(value)}")
    return value


def code(value: str, field: str = "code") -> str:
    # Anything up to the limit gets a business answer (MALFORMED at worst);
    # beyond it the request itself is out of form.
    if len(value) > MAX_CODE_CHARS:
        raise InvalidArgument(field, f"{len(value)} characters; a code has 195 (at most {MAX_CODE_CHARS} accepted)")
    return value


def verify_request(req: object, prefix: str = "") -> None:
    code(req.code, prefix + "code")  # type: ignore[attr-defined]
    institution_code(req.institution_code, prefix + "institution_code")  # type: ignore[attr-defined]
    request_id(req.request_id, prefix + "request_id")  # type: ignore[attr-defined]


def batch_size(n: int, field: str = "requests") -> None:
    if not 1 <= n <= MAX_BATCH:
        raise InvalidArgument(field, f"{n} requests; a batch holds 1 to {MAX_BATCH}")


def credential_id(value: str, field: str = "credential_id") -> str:
    if not _CREDENTIAL_ID.fullmatch(value):
        raise InvalidArgument(field, f"{value[:40]!r} is not 32 hexadecimal digits")
    return value.upper()
