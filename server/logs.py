"""The node's logs: text for a terminal, or one JSON object per line for a
log pipeline (``--log-format json``), and the optional access log
(``--access-log``): one line per call with its method, status, duration and
the caller's identifiers, never a scanned code or an ec_token (they are
bearer credentials: whoever holds one can settle with it).

The access log is off by default: at the node's rates a line per call costs
more than the metrics that already count every call; turn it on where calls
must be traced one by one."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Final

__all__ = ["ACCESS", "FORMATS", "access_fields", "configure"]

FORMATS: Final = ("text", "json")
ACCESS: Final = logging.getLogger("yibao.access")
# Request fields an access line may carry: identifiers the caller chose,
# none of them a credential.
_SAFE_REQUEST_FIELDS: Final = ("request_id", "institution_code", "order_id", "refund_id", "settlement_id")
# What extra= may add to a JSON line.
_EXTRA: Final = ("method", "grpc_code", "duration_ms", "outcome", "requests", *_SAFE_REQUEST_FIELDS)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for name in _EXTRA:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(fmt: str) -> None:
    """Log to stderr in `fmt` ("text" or "json"), at YIBAO_LOG_LEVEL (INFO)."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("YIBAO_LOG_LEVEL", "INFO"))


def access_fields(request: Any, response: Any) -> dict[str, Any]:
    """The safe identifiers of a call, for its access line."""
    out: dict[str, Any] = {}
    for name in _SAFE_REQUEST_FIELDS:
        value = getattr(request, name, None)
        if isinstance(value, str) and value:
            out[name] = value[:64]
    requests = getattr(request, "requests", None)
    if requests is not None:
        out["requests"] = len(requests)
    outcome = getattr(response, "outcome", None)
    if isinstance(outcome, int):
        field = response.DESCRIPTOR.fields_by_name["outcome"]
        value = field.enum_type.values_by_number.get(outcome)
        out["outcome"] = value.name if value is not None else outcome
    return out
