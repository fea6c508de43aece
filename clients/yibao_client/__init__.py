"""Client library for yibao-verify nodes (医保电子凭证核验节点).

- :class:`Client` (blocking) and :class:`AsyncClient` (asyncio): Verify,
  VerifyBatch, VerifyStream, the Settlement calls and the Admin calls, over
  mTLS (or plaintext with ``insecure=True``), with deadlines and retries on
  UNAVAILABLE.
- :class:`YibaoError`: a failed call (gRPC status, with the server's
  ``google.rpc.ErrorInfo`` reason and metadata when it sent them).
- Enum helpers (:mod:`yibao_client.enums`): ``"VALID"`` <-> ``OUTCOME_VALID``,
  ``"wechat"`` <-> ``CHANNEL_WECHAT`` = 2, ...
- :func:`to_dict`: a response as plain JSON-ready values.
- :func:`parse_yuan` / :func:`format_yuan`: amounts typed in yuan <-> exact
  int fen (:mod:`yibao_client.money`, also bill lines).
- :func:`public_key_pem` / :func:`signature_der`: a node key and a receipt
  signature in the forms OpenSSL reads (:mod:`yibao_client.der`).

The generated messages are in ``yibao.v1`` (``verifier_pb2``, ``settlement_pb2``,
``admin_pb2``, ``common_pb2``).
"""

from ._channel import DEFAULT_TARGET, MAX_MESSAGE_BYTES, MAX_RETRIES
from ._requests import MAX_BATCH, VerifyItem, new_request_id
from ._version import __version__
from .aio import AsyncClient
from .client import Client
from .convert import format_time, timestamp_ms, timestamp_text, to_dict
from .der import public_key_der, public_key_pem, signature_der
from .enums import (
    ACCOUNT_STATUSES,
    CHANNELS,
    OUTCOMES,
    REFUND_OUTCOMES,
    REVOCATION_REASONS,
    SETTLE_OUTCOMES,
    account_status_name,
    account_status_value,
    channel_name,
    channel_value,
    outcome_name,
    outcome_value,
    refund_outcome_name,
    refund_outcome_value,
    revocation_reason_name,
    revocation_reason_value,
    settle_outcome_name,
    settle_outcome_value,
)
from .errors import YibaoError
from .money import format_yuan, parse_item, parse_yuan

__all__ = [
    "ACCOUNT_STATUSES",
    "CHANNELS",
    "DEFAULT_TARGET",
    "MAX_BATCH",
    "MAX_MESSAGE_BYTES",
    "MAX_RETRIES",
    "OUTCOMES",
    "REFUND_OUTCOMES",
    "REVOCATION_REASONS",
    "SETTLE_OUTCOMES",
    "AsyncClient",
    "Client",
    "VerifyItem",
    "YibaoError",
    "__version__",
    "account_status_name",
    "account_status_value",
    "channel_name",
    "channel_value",
    "format_time",
    "format_yuan",
    "new_request_id",
    "outcome_name",
    "outcome_value",
    "parse_item",
    "parse_yuan",
    "public_key_der",
    "public_key_pem",
    "refund_outcome_name",
    "refund_outcome_value",
    "revocation_reason_name",
    "revocation_reason_value",
    "settle_outcome_name",
    "settle_outcome_value",
    "signature_der",
    "timestamp_ms",
    "timestamp_text",
    "to_dict",
]
