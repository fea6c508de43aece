"""A request body that does not decode (not protobuf at all, a field of the
wrong wire type, a string field that is not UTF-8) is the caller's error:
INVALID_ARGUMENT naming the request, where grpc by itself answers UNKNOWN.

The interceptor swaps each method's deserializer for one that hands a
marker to the handler instead of raising; the wrapped handler turns the
marker into the status before the service sees it. In a request stream the
messages before a bad one are answered as usual and the stream then ends
with INVALID_ARGUMENT naming ``requests[N]`` (as a bad field does)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from server.handlers import WrappedHandlers
from server.validation import InvalidArgument

__all__ = ["DecodingInterceptor"]


class _Undecodable:
    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


def _safe(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as e:  # noqa: BLE001 - whatever the parser raises, the bytes were bad
            return _Undecodable(f"{type(e).__name__}: {e}"[:200])

    return decode


def _refusal(deserializer: Callable[[bytes], Any], field: str, bad: _Undecodable) -> grpc.Status:
    message = getattr(getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None), "full_name", "message")
    return InvalidArgument(field, f"not a valid {message} ({bad.why})").status()


def _wrap(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    de, se = handler.request_deserializer, handler.response_serializer
    safe = _safe(de)

    if handler.unary_unary is not None and inspect.iscoroutinefunction(handler.unary_unary):
        unary = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, _Undecodable):
                await context.abort_with_status(_refusal(de, "request", request))
            return await unary(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, safe, se)

    if handler.stream_stream is not None and inspect.isasyncgenfunction(handler.stream_stream):
        streaming = handler.stream_stream

        async def stream_stream(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            bad: list[tuple[int, _Undecodable]] = []

            async def decoded() -> AsyncIterator[Any]:
                index = 0
                async for request in requests:
                    if isinstance(request, _Undecodable):
                        bad.append((index, request))
                        return
                    yield request
                    index += 1

            async for response in streaming(decoded(), context):
                yield response
            if bad:
                index, request = bad[0]
                await context.abort_with_status(_refusal(de, f"requests[{index}]", request))

        return grpc.stream_stream_rpc_method_handler(stream_stream, safe, se)

    if handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
        server_streaming = handler.unary_stream

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if isinstance(request, _Undecodable):
                await context.abort_with_status(_refusal(de, "request", request))
            async for response in server_streaming(request, context):
                yield response

        return grpc.unary_stream_rpc_method_handler(unary_stream, safe, se)

    return handler  # a kind this node does not serve: grpc's own handling


class DecodingInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        self._handlers = WrappedHandlers(lambda _path, handler: _wrap(handler))

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        return self._handlers.get(handler_call_details.method, handler)
