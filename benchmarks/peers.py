"""The node's gRPC peers: the least a grpc.aio server can do with the same
messages. Figures of the node are reported as a share of these, measured in
the same run by the same load generator (benchmarks/load.py).

- ``/yibao.bench.Peers/Empty``: unary, VerifyRequest in, VerifyResponse out,
  no work beyond decoding the request and encoding the answer.
- ``/yibao.bench.Peers/Echo``: bidi stream, one VerifyResponse per
  VerifyRequest, in order.
- ``/yibao.bench.Peers/Refuse``: unary, refuses every call with
  RESOURCE_EXHAUSTED and no message: the least a grpc.aio handler can do to
  shed a call it has been given (a status set and returned, no exception).

The answer is a VALID VerifyResponse as the node writes it (credential,
97-character ec_token, expiry), so it has the size of a real one; only its
request_id is set per call.

    .venv/bin/python benchmarks/peers.py [--listen 127.0.0.1:0] [--event-loop uvloop|asyncio]

``--event-loop`` as the node's option of that name, so that the node and its
peer run on the same loop (benchmarks/node.py passes the same to both).

prints ``listening on 127.0.0.1:PORT`` once it serves, and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import yibao_core  # noqa: E402
from server import tokens  # noqa: E402
from server.gc_settings import quiet_collector  # noqa: E402
from yibao.v1 import verifier_pb2  # noqa: E402

SERVICE = "yibao.bench.Peers"
EMPTY = f"/{SERVICE}/Empty"
ECHO = f"/{SERVICE}/Echo"
INSTITUTION = "H44030000001"


def sample_response(request_id: str = "r0-000000") -> verifier_pb2.VerifyResponse:
    """A VALID answer with every field the node sets, from a real code."""
    key = yibao_core.sm2_generate_private_key()
    public = yibao_core.sm2_public_key(key)
    trust = yibao_core.TrustList.from_json(
        '{"version": 1, "keys": [{"key_id": "%s", "public_key": "%s", "not_before": "2020-01-01T00:00:00Z",'
        ' "not_after": "2100-01-01T00:00:00Z", "issuer": "bench"}]}' % (yibao_core.key_id(public), public.hex())
    )
    now = int(time.time() * 1000)
    code = yibao_core.issue(key, credential_id=os.urandom(16).hex(), insured_region="440300", channel=2, issued_at_ms=now)
    r = yibao_core.check(code, trust, now)
    assert r.outcome == "VALID", r.outcome
    resp = verifier_pb2.VerifyResponse(
        request_id=request_id, outcome=verifier_pb2.OUTCOME_VALID, detail=yibao_core.OUTCOME_DETAILS["VALID"]
    )
    c = resp.credential
    c.credential_id = r.credential_id
    c.presenter_id = r.presenter_id or ""
    c.insured_region = r.insured_region
    c.province = r.province
    c.channel = r.channel
    c.issued_at.FromMilliseconds(r.issued_at_ms)
    c.expires_at.FromMilliseconds(r.expires_at_ms)
    c.key_id = r.key_id
    c.family = bool(r.family)
    c.nonce = r.nonce
    resp.cross_province = False
    expires = now + 600_000
    resp.ec_token = tokens.mint(
        os.urandom(32),
        tokens.Token(r.credential_id, r.nonce, INSTITUTION, r.insured_region, r.channel, bool(r.family), expires),
    )
    resp.token_expires_at.FromMilliseconds(expires)
    return resp


def handlers(template: verifier_pb2.VerifyResponse) -> grpc.GenericRpcHandler:
    def answer(req: verifier_pb2.VerifyRequest) -> verifier_pb2.VerifyResponse:
        resp = verifier_pb2.VerifyResponse()
        resp.CopyFrom(template)
        resp.request_id = req.request_id
        return resp

    async def empty(req: verifier_pb2.VerifyRequest, context: grpc.aio.ServicerContext) -> verifier_pb2.VerifyResponse:
        return answer(req)

    async def echo(
        requests: AsyncIterator[verifier_pb2.VerifyRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[verifier_pb2.VerifyResponse]:
        async for req in requests:
            yield answer(req)

    async def refuse(req: verifier_pb2.VerifyRequest, context: grpc.aio.ServicerContext) -> None:
        context.set_code(grpc.StatusCode.RESOURCE_EXHAUSTED)
        context.set_details("refused: the benchmark's peer refuses every call")

    de = verifier_pb2.VerifyRequest.FromString
    se = verifier_pb2.VerifyResponse.SerializeToString
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Empty": grpc.unary_unary_rpc_method_handler(empty, de, se),
            "Echo": grpc.stream_stream_rpc_method_handler(echo, de, se),
            "Refuse": grpc.unary_unary_rpc_method_handler(refuse, de, se),
        },
    )


async def serve(listen: str) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handlers(sample_response()),))
    port = server.add_insecure_port(listen)
    await server.start()
    quiet_collector()  # as the node does, so the comparison is like for like
    host = listen.rpartition(":")[0]
    print(f"listening on {host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", default="127.0.0.1:0", help="loopback address (default %(default)s: a free port)")
    parser.add_argument("--event-loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="the asyncio event loop (default %(default)s, as the node's)")
    args = parser.parse_args()
    if not args.listen.startswith("127."):
        parser.error("benchmarks listen on the loopback only")
    if args.event_loop == "uvloop":
        import uvloop

        uvloop.run(serve(args.listen))
    else:
        asyncio.run(serve(args.listen))


if __name__ == "__main__":
    main()
