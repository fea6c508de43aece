"""Channel settings shared by Client and AsyncClient.

Retries use gRPC's own retry support (the service config ``retryPolicy``),
not a loop in Python. Reasons:

- it is the same code path for the sync and the asyncio client, and for
  streams: gRPC retries a call, including a VerifyStream that has had no
  answer yet, by replaying the buffered request messages;
- backoff is exponential with full jitter, and a server can slow clients down
  with ``grpc-retry-pushback-ms`` trailers (or stop them retrying);
- the per-call deadline covers every attempt, so a call never outlives its
  ``timeout`` however often it is retried;
- what is retried is what a node answers when it did not take the call up
  or could not finish it, and every method is safe to send twice (each is
  idempotent by its request id, order_id or refund_id, or sets a state):
  UNAVAILABLE (a store or another province down); RESOURCE_EXHAUSTED (the
  node's in-flight limits, reason OVERLOADED, or grpc.aio's own count of
  calls in progress: refused before any work); CANCELLED as gRPC core
  answers a call it refused past the node's ``--max-queued`` or dropped
  after a second in its queue, before any handler. A CANCELLED is retried
  only when it came from the server: gRPC never retries a call its caller
  cancelled (``call.cancel()``, a cancelled asyncio task, a stream left
  early), since the caller no longer wants the answer. DEADLINE_EXCEEDED is
  not retried: the deadline is already spent.

Bounds: at most 5 attempts a call (gRPC's cap, so ``retries`` is 0 to 4),
within its one deadline. And because a refusal means the node is past what
it can take, retries are throttled per target (the service config's
``retryThrottling``, gRFC A6): every failed attempt with one of those codes
costs a token, every success gives back a tenth of one, and once half of
the 100 tokens are gone the channel stops retrying until successes refill
them. So a short burst of refusals or a store's failover is ridden out, but
a node that keeps refusing more than about one call in eleven gets no
retries on top of the calls it already cannot take.

A request is only replayed while it fits in the per-call retry buffer. The
default buffer (256 KiB) is smaller than a VerifyBatch of 1,000 codes
(about 250-300 KB), so it is raised here to 4 MiB (the node's own limit on
a request: one larger is refused RESOURCE_EXHAUSTED by gRPC, and not
replayed because it does not fit the buffer).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, TypeAlias

import grpc

from ._version import __version__

DEFAULT_TARGET = "127.0.0.1:50051"
#: A VerifyBatch of 1,000 codes is ~300 KB and its answer (with tokens) about
#: twice that; 16 MiB leaves room without letting a broken peer exhaust memory.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: gRPC allows at most 5 attempts per call.
MAX_RETRIES = 4
#: Per-call buffer of sent messages kept for replay on retry.
RETRY_BUFFER_BYTES = 4 * 1024 * 1024

SERVICES = ("yibao.v1.Verifier", "yibao.v1.Settlement", "yibao.v1.Admin")
#: What the node answers for a call it did not take up or could not finish
#: (see the module docstring); every method is safe to send again.
RETRYABLE = ("UNAVAILABLE", "RESOURCE_EXHAUSTED", "CANCELLED")
#: gRPC's retry throttling: retries stop while half the tokens are spent.
RETRY_TOKENS = 100
RETRY_TOKEN_RATIO = 0.1

#: PEM bytes, or the path of a PEM file (str or PathLike).
PemSource: TypeAlias = bytes | str | os.PathLike[str]
ChannelOptions: TypeAlias = Sequence[tuple[str, Any]]


def service_config(retries: int, initial_backoff: float, max_backoff: float) -> str:
    """The JSON service config: a retry policy for RETRYABLE on every method
    of the three services (each is safe to retry, see the Client docstrings),
    throttled per target."""
    if not 0 <= retries <= MAX_RETRIES:
        raise ValueError(f"retries must be 0 to {MAX_RETRIES} (gRPC allows 5 attempts), not {retries}")
    if retries == 0:
        return json.dumps({"methodConfig": [{"name": [{"service": s} for s in SERVICES]}]})
    if not 0 < initial_backoff <= max_backoff:
        raise ValueError("retry backoffs must satisfy 0 < initial <= max")
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{"service": s} for s in SERVICES],
                    "retryPolicy": {
                        "maxAttempts": retries + 1,
                        "initialBackoff": f"{initial_backoff:.3f}s",
                        "maxBackoff": f"{max_backoff:.3f}s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": list(RETRYABLE),
                    },
                }
            ],
            "retryThrottling": {"maxTokens": RETRY_TOKENS, "tokenRatio": RETRY_TOKEN_RATIO},
        }
    )


def channel_options(
    *,
    retries: int,
    initial_backoff: float,
    max_backoff: float,
    server_name: str | None = None,
    extra: ChannelOptions = (),
) -> list[tuple[str, Any]]:
    opts: dict[str, Any] = {
        "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
        "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
        # Keepalive: find a dead connection (a node restarted behind a load
        # balancer, a NAT that dropped the flow) within ~50 s even in a long
        # VerifyStream. gRPC sends at most 2 pings without data in between
        # (grpc.http2.max_pings_without_data), which stays within a default
        # server's ping policy.
        "grpc.keepalive_time_ms": 30_000,
        "grpc.keepalive_timeout_ms": 20_000,
        "grpc.keepalive_permit_without_calls": 0,
        "grpc.enable_retries": 1,
        "grpc.service_config": service_config(retries, initial_backoff, max_backoff),
        "grpc.per_rpc_retry_buffer_size": RETRY_BUFFER_BYTES,
        "grpc.retry_buffer_size": 8 * RETRY_BUFFER_BYTES,
        "grpc.primary_user_agent": f"yibao-client/{__version__}",
    }
    if server_name:
        opts["grpc.ssl_target_name_override"] = server_name
        opts["grpc.default_authority"] = server_name
    for key, value in extra:
        opts[key] = value
    return list(opts.items())


def read_pem(source: PemSource | None, what: str) -> bytes | None:
    """PEM bytes as given, or the contents of the file a str/PathLike names."""
    if source is None or isinstance(source, bytes):
        return source
    try:
        with open(source, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"cannot read {what} {os.fspath(source)!r}: {e.strerror}") from e


def channel_credentials(
    *,
    insecure: bool,
    root_certificates: PemSource | None,
    private_key: PemSource | None,
    certificate_chain: PemSource | None,
) -> grpc.ChannelCredentials | None:
    """None for plaintext (only when ``insecure``); TLS, with a client
    certificate when one is given, otherwise."""
    if insecure:
        if root_certificates is not None or private_key is not None or certificate_chain is not None:
            raise ValueError("insecure=True (plaintext) cannot be combined with TLS certificates or keys")
        return None
    if (private_key is None) != (certificate_chain is None):
        raise ValueError("a client certificate needs both private_key and certificate_chain")
    return grpc.ssl_channel_credentials(
        root_certificates=read_pem(root_certificates, "root certificates"),
        private_key=read_pem(private_key, "private key"),
        certificate_chain=read_pem(certificate_chain, "certificate chain"),
    )
