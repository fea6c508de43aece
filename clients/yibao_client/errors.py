"""The one exception type of the client: a failed gRPC call.

Business results (EXPIRED, INSUFFICIENT_BALANCE, ...) are never errors: they
come back in the response's ``outcome``. A :class:`YibaoError` means the call
itself failed, with the gRPC status code saying why (api.md):

- ``INVALID_ARGUMENT``: a field missing or out of form; fix the request.
- ``UNAUTHENTICATED`` / ``PERMISSION_DENIED``: no valid client certificate, or
  an ``institution_code`` that is not yours, or no admin identity.
- ``UNAVAILABLE``: a store or another province's node is down; no money
  moved. The client already retried (see ``Client(retries=...)``).
- ``RESOURCE_EXHAUSTED`` (reason ``OVERLOADED``) or ``CANCELLED`` (gRPC's
  queue bound at the node): the node was past what it can take and did
  nothing; the client already retried. Send the same request again later.
- ``DEADLINE_EXCEEDED``: the per-call deadline passed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = ["YibaoError"]

_DETAILS_KEY = "grpc-status-details-bin"


class YibaoError(Exception):
    """A gRPC call that ended with a status other than OK.

    Attributes:
        code: the :class:`grpc.StatusCode`.
        details: the status message the server sent.
        status: the ``google.rpc.Status`` from the trailers, if the server sent one.
        reason, domain, metadata: from its ``google.rpc.ErrorInfo`` detail, if any
            (``reason`` is a machine-readable UPPER_SNAKE word; ``metadata`` a
            dict of strings, e.g. which field or which batch index).
        field_violations: ``(field, description)`` pairs from a
            ``google.rpc.BadRequest`` detail, if any.
        method: the RPC, e.g. ``"/yibao.v1.Verifier/Verify"``, when known.
    """

    code: grpc.StatusCode
    details: str
    status: status_pb2.Status | None
    reason: str | None
    domain: str | None
    metadata: dict[str, str]
    field_violations: list[tuple[str, str]]
    method: str | None

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str,
        *,
        status: status_pb2.Status | None = None,
        method: str | None = None,
    ) -> None:
        self.code = code
        self.details = details
        self.status = status
        self.method = method
        self.reason = None
        self.domain = None
        self.metadata = {}
        self.field_violations = []
        if status is not None:
            for any_ in status.details:
                if any_.Is(error_details_pb2.ErrorInfo.DESCRIPTOR) and self.reason is None:
                    info = error_details_pb2.ErrorInfo()
                    any_.Unpack(info)
                    self.reason = info.reason or None
                    self.domain = info.domain or None
                    self.metadata = dict(info.metadata)
                elif any_.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    any_.Unpack(bad)
                    self.field_violations.extend((v.field, v.description) for v in bad.field_violations)
        super().__init__(self.one_line())

    @property
    def code_name(self) -> str:
        """The status code's name, e.g. ``"UNAVAILABLE"``."""
        return str(self.code.name)

    def one_line(self) -> str:
        """``"INVALID_ARGUMENT: request_id is empty [reason=MISSING_FIELD field=request_id]"``."""
        text = f"{self.code_name}: {self.details}" if self.details else self.code_name
        extra: list[str] = []
        if self.reason:
            extra.append(f"reason={self.reason}")
        extra.extend(f"{k}={v}" for k, v in sorted(self.metadata.items()))
        extra.extend(f"{f or '?'}: {d}" for f, d in self.field_violations)
        if extra:
            text += " [" + "; ".join(extra) + "]"
        return " ".join(text.split())  # one line, whatever the server put in details

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (what ``yibao --json`` prints on an RPC error)."""
        return {
            "code": self.code_name,
            "details": self.details,
            "reason": self.reason,
            "domain": self.domain,
            "metadata": self.metadata,
            "field_violations": [{"field": f, "description": d} for f, d in self.field_violations],
            "method": self.method,
        }

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError, *, method: str | None = None) -> YibaoError:
        """Wrap an error raised by a sync or asyncio gRPC call (both are
        :class:`grpc.Call` as well as :class:`grpc.RpcError`)."""
        code_fn = getattr(error, "code", None)
        details_fn = getattr(error, "details", None)
        code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
        if not isinstance(code, grpc.StatusCode):
            code = grpc.StatusCode.UNKNOWN
        details = details_fn() if callable(details_fn) else str(error)
        trailers = _trailers(error)
        status: status_pb2.Status | None
        try:
            status = rpc_status.from_call(error)
        except ValueError:
            # The rich status disagrees with the call's code or message (a
            # proxy rewrote one of them): keep the details it carries anyway.
            status = _status_from_trailers(trailers)
        except Exception:  # a call object without trailers (e.g. a bare RpcError)
            status = None
        return cls(code, details or "", status=status, method=method)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.code.name, self.details, self.status, self.method))


def _rebuild(code: str, details: str, status: status_pb2.Status | None, method: str | None) -> YibaoError:
    return YibaoError(grpc.StatusCode[code], details, status=status, method=method)


def _trailers(error: object) -> list[tuple[str, Any]]:
    fn = getattr(error, "trailing_metadata", None)
    if not callable(fn):
        return []
    try:
        md = fn()
    except Exception:
        return []
    if md is None:
        return []
    return [(k, v) for k, v in _pairs(md)]


def _pairs(md: Iterable[Any]) -> Iterable[tuple[str, Any]]:
    for item in md:
        try:
            key, value = item
        except (TypeError, ValueError):
            continue
        yield str(key), value


def _status_from_trailers(trailers: list[tuple[str, Any]]) -> status_pb2.Status | None:
    for key, value in trailers:
        if key == _DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except Exception:
                return None
    return None
