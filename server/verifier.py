"""The Verifier service: Verify, VerifyBatch, VerifyStream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from server import validation
from server.identity import Authorizer, Denied
from server.engine import Batcher, RevocationUnconfirmed, Unavailable, VerifyEngine
from yibao.v1 import verifier_pb2, verifier_pb2_grpc

# How many stream requests may be read ahead of the responses: beyond it the
# server stops reading, and HTTP/2 flow control holds the client back.
STREAM_READ_AHEAD = 2000
STREAM_BATCH = 500


class VerifierService(verifier_pb2_grpc.VerifierServicer):
    def __init__(self, engine: VerifyEngine, batcher: Batcher, authorizer: Authorizer) -> None:
        self._engine = engine
        self._batcher = batcher
        self._auth = authorizer

    async def Verify(  # noqa: N802 - gRPC method name
        self, request: verifier_pb2.VerifyRequest, context: grpc.aio.ServicerContext
    ) -> verifier_pb2.VerifyResponse:
        try:
            validation.verify_request(request)
            self._auth.institutions(context, (request.institution_code,))
            return await self._batcher.submit(request)
        except validation.InvalidArgument as e:
            await context.abort_with_status(e.status())
        except Denied as e:
            await context.abort_with_status(validation.rich_status(e.code, str(e), "NOT_AUTHORIZED"))
        except Unavailable as e:
            await context.abort_with_status(
                validation.rich_status(grpc.StatusCode.UNAVAILABLE, str(e), e.reason)
            )
        raise AssertionError("abort returns by raising")

    async def VerifyBatch(  # noqa: N802
        self, request: verifier_pb2.VerifyBatchRequest, context: grpc.aio.ServicerContext
    ) -> verifier_pb2.VerifyBatchResponse:
        try:
            validation.batch_size(len(request.requests))
            for i, req in enumerate(request.requests):
                validation.verify_request(req, f"requests[{i}].")
            self._auth.institutions(context, {req.institution_code for req in request.requests})
            reply = verifier_pb2.VerifyBatchResponse()
            _first_unconfirmed(await self._engine.verify(request.requests, into=reply.responses))
            return reply
        except validation.InvalidArgument as e:
            await context.abort_with_status(e.status())
        except Denied as e:
            await context.abort_with_status(validation.rich_status(e.code, str(e), "NOT_AUTHORIZED"))
        except Unavailable as e:
            await context.abort_with_status(
                validation.rich_status(grpc.StatusCode.UNAVAILABLE, str(e), e.reason)
            )
        raise AssertionError("abort returns by raising")

    async def VerifyStream(  # noqa: N802
        self,
        request_iterator: AsyncIterator[verifier_pb2.VerifyRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[verifier_pb2.VerifyResponse]:
        queue: asyncio.Queue[verifier_pb2.VerifyRequest | None] = asyncio.Queue(STREAM_READ_AHEAD)
        reader = asyncio.create_task(_read_all(request_iterator, queue))
        try:
            done = False
            index = 0
            while not done:
                batch = [await queue.get()]
                while len(batch) < STREAM_BATCH and not queue.empty():
                    batch.append(queue.get_nowait())
                if batch[-1] is None:
                    batch.pop()
                    done = True
                valid = []
                bad: validation.InvalidArgument | None = None
                for req in batch:
                    assert req is not None  # only the last item can be the end mark
                    try:
                        validation.verify_request(req, f"requests[{index}].")
                    except validation.InvalidArgument as e:
                        bad = e
                        break
                    valid.append(req)
                    index += 1
                if valid:
                    # Once per batch, not per message: with mTLS it reads the
                    # caller's certificate.
                    self._auth.institutions(context, {req.institution_code for req in valid})
                    for resp in _first_unconfirmed(await self._engine.verify(valid)):
                        yield resp
                if bad is not None:
                    await context.abort_with_status(bad.status())
        except Denied as e:
            await context.abort_with_status(validation.rich_status(e.code, str(e), "NOT_AUTHORIZED"))
        except Unavailable as e:
            await context.abort_with_status(
                validation.rich_status(grpc.StatusCode.UNAVAILABLE, str(e), e.reason)
            )
        finally:
            reader.cancel()


def _first_unconfirmed(
    responses: list[verifier_pb2.VerifyResponse | RevocationUnconfirmed],
) -> list[verifier_pb2.VerifyResponse]:
    """The answers, unless one code could not be confirmed: then the whole
    call is UNAVAILABLE (rare: a snapshot's false "maybe" is one code in
    65,536, and only while the national store is away), to be retried."""
    for resp in responses:
        if isinstance(resp, RevocationUnconfirmed):
            raise resp
    return responses  # type: ignore[return-value]


async def _read_all(
    requests: AsyncIterator[verifier_pb2.VerifyRequest],
    queue: asyncio.Queue[verifier_pb2.VerifyRequest | None],
) -> None:
    """Feed the queue, blocking when it is full (the back-pressure), and
    mark the end; a call broken off by the client ends the same way."""
    try:
        async for req in requests:
            await queue.put(req)
    except grpc.RpcError:
        pass
    await queue.put(None)
