"""gRPC server metrics (go-grpc-prometheus style) for a grpc.aio server.

Counts every call, streaming ones included, under the status the client
actually receives: the code set by ``context.abort()`` or
``context.set_code()``, UNKNOWN for an unexpected exception (unless a non-OK
code had been set: grpc.aio sends that one, so do we), CANCELLED when the
client goes away and DEADLINE_EXCEEDED when its deadline passes.

Per call this costs two clock reads, a started and a handled increment and
one histogram observation: the wrapped handler and every labelled child are
built once per method (and code) and cached.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any

import grpc

from server import logs, metrics
from server.handlers import WrappedHandlers

__all__ = ["MetricsInterceptor"]

_OK = grpc.StatusCode.OK
_UNKNOWN = grpc.StatusCode.UNKNOWN
_CANCELLED = grpc.StatusCode.CANCELLED
_DEADLINE_EXCEEDED = grpc.StatusCode.DEADLINE_EXCEEDED

_GRPC_TYPES = {
    (False, False): "unary",
    (True, False): "client_stream",
    (False, True): "server_stream",
    (True, True): "bidi_stream",
}


class _MethodMetrics:
    """The labelled children of one method, and the clock, bound once."""

    __slots__ = ("_labels", "_started", "_done", "_in_flight", "_access", "handlers_run")

    def __init__(self, grpc_type: str, service: str, method: str, access: bool = False) -> None:
        self._labels = (grpc_type, service, method)
        self._access = access
        self._started = metrics.GRPC_STARTED.labels(*self._labels)
        self._in_flight = metrics.in_flight()
        # code -> (handled counter child, handling-seconds histogram child)
        self._done: dict[grpc.StatusCode, tuple[Any, Any]] = {}
        self.handlers_run = 0

    def start(self) -> float:
        self.handlers_run += 1
        self._started.inc()
        self._in_flight.inc()
        return time.perf_counter()

    def finish(self, code: grpc.StatusCode, started: float, request: Any = None, response: Any = None) -> None:
        elapsed = time.perf_counter() - started
        self._in_flight.dec()
        handled, seconds = self._done.get(code) or self._children(code)
        handled.inc()
        seconds.observe(elapsed)
        if self._access:
            self._log(code, elapsed, request, response)

    def _log(self, code: grpc.StatusCode, elapsed: float, request: Any, response: Any) -> None:
        fields = logs.access_fields(request, response)
        method, name = f"{self._labels[1]}/{self._labels[2]}", getattr(code, "name", str(code))
        logs.ACCESS.info(
            "%s %s %.1f ms %s", method, name, elapsed * 1000, " ".join(f"{k}={v}" for k, v in fields.items()),
            extra={"method": method, "grpc_code": name, "duration_ms": round(elapsed * 1000, 3), **fields},
        )

    def _children(self, code: grpc.StatusCode) -> tuple[Any, Any]:
        # getattr: never let an odd code value break the call being counted
        name = getattr(code, "name", None) or str(code)
        children = self._done[code] = (
            metrics.GRPC_HANDLED.labels(*self._labels, name),
            metrics.GRPC_HANDLING_SECONDS.labels(*self._labels, name),
        )
        return children

    def preinitialize(self) -> None:
        """Zero series for a method not called yet, so rate() sees its first call."""
        if _OK not in self._done:
            self._children(_OK)


def _code_after_return(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    # None unless the handler set a code (set_code, or abort() whose
    # exception it swallowed); what was set is what the client gets.
    return context.code() or _OK


def _code_after_error(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    # abort() sets the code before raising AbortError; for any other
    # exception grpc.aio sends the code set earlier if it is not OK, else UNKNOWN.
    code = context.code()
    return _UNKNOWN if code is None or code is _OK else code


def _code_after_cancel(context: grpc.aio.ServicerContext) -> grpc.StatusCode:
    # grpc.aio cancels the handler's task both when the client cancels and
    # when the deadline passes; only the remaining time tells them apart.
    remaining = context.time_remaining()
    return _DEADLINE_EXCEEDED if remaining is not None and remaining <= 0 else _CANCELLED


class _SyncContext:
    """What a plain-function handler gets instead of grpc.aio's sync context,
    which has set_code() and abort() but no code() to read back: remembers
    the code it was given. Only plain-function handlers (run in grpc.aio's
    thread pool, already costly) pay for this object."""

    __slots__ = ("_inner", "_code")

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._code: grpc.StatusCode | None = None

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code
        self._inner.set_code(code)

    def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> None:
        self._code = code
        self._inner.abort(code, details, trailing_metadata)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


# ---------------------------------------------------------------------------
# Wrappers. grpc.aio picks how to run a behaviour with inspect (coroutine
# function, async generator function, or plain function run in its thread
# pool), so each wrapper is of the same kind as what it wraps.
# ---------------------------------------------------------------------------
def _wrap_unary_response(behaviour: Callable[..., Any], mm: _MethodMetrics) -> Callable[..., Any]:
    """unary_unary / stream_unary, and unary_stream / stream_stream handlers
    written as a coroutine that uses context.write() (they return None)."""
    if inspect.iscoroutinefunction(behaviour):

        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = mm.start()
            try:
                response = await behaviour(request, context)
            except asyncio.CancelledError:
                mm.finish(_code_after_cancel(context), started, request)
                raise
            except BaseException:
                mm.finish(_code_after_error(context), started, request)
                raise
            mm.finish(_code_after_return(context), started, request, response)
            return response

        return wrapped

    def wrapped_sync(request: Any, aio_context: Any) -> Any:
        started = mm.start()
        context = _SyncContext(aio_context)
        try:
            response = behaviour(request, context)
        except BaseException:
            mm.finish(_code_after_error(context), started)
            raise
        mm.finish(_code_after_return(context), started)
        return response

    return wrapped_sync


def _wrap_stream_response(behaviour: Callable[..., Any], mm: _MethodMetrics) -> Callable[..., Any]:
    """unary_stream / stream_stream."""
    if inspect.isasyncgenfunction(behaviour):

        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = mm.start()
            responses = behaviour(request, context)
            try:
                async for response in responses:
                    yield response
            except (asyncio.CancelledError, GeneratorExit):
                # GeneratorExit: grpc dropped this generator while it was
                # suspended at a yield, i.e. the call went away.
                mm.finish(_code_after_cancel(context), started)
                raise
            except BaseException:
                mm.finish(_code_after_error(context), started)
                raise
            finally:
                # Run the handler's own clean-up now, not whenever the
                # event loop's async-generator finaliser gets to it.
                await responses.aclose()
            mm.finish(_code_after_return(context), started)

        return wrapped
    if inspect.iscoroutinefunction(behaviour):
        return _wrap_unary_response(behaviour, mm)

    def wrapped_sync(request: Any, aio_context: Any) -> Iterator[Any]:
        started = mm.start()
        context = _SyncContext(aio_context)
        try:
            yield from behaviour(request, context)
        except GeneratorExit:
            mm.finish(_code_after_cancel(context), started)
            raise
        except BaseException:
            mm.finish(_code_after_error(context), started)
            raise
        mm.finish(_code_after_return(context), started)

    return wrapped_sync


def _wrap(handler: grpc.RpcMethodHandler, mm: _MethodMetrics) -> grpc.RpcMethodHandler:
    de, se = handler.request_deserializer, handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(_wrap_unary_response(handler.unary_unary, mm), de, se)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(_wrap_stream_response(handler.unary_stream, mm), de, se)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(_wrap_unary_response(handler.stream_unary, mm), de, se)
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(_wrap_stream_response(handler.stream_stream, mm), de, se)
    return handler  # no behaviour at all: leave it to grpc to reject


def _split(full_method: str) -> tuple[str, str]:
    """"/yibao.v1.Verifier/Verify" -> ("yibao.v1.Verifier", "Verify")."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service, method


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Records grpc_server_started_total, grpc_server_handled_total and
    grpc_server_handling_seconds for every call. Put it first in the
    server's interceptor list so that it sees what the others reject."""

    def __init__(self, *, access_log: bool = False) -> None:
        """`access_log`: also log every call (server/logs.py)."""
        self._access = access_log
        self._handlers = WrappedHandlers(lambda path, handler: _wrap(handler, self._method_metrics(path, handler)))
        self._methods: dict[tuple[str, str], _MethodMetrics] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            # Unknown method: grpc answers UNIMPLEMENTED; like go-grpc-prometheus,
            # not counted (its name comes from the client: unbounded labels).
            return None
        return self._handlers.get(handler_call_details.method, handler)

    def _method_metrics(self, path: str, handler: grpc.RpcMethodHandler) -> _MethodMetrics:
        grpc_type = _GRPC_TYPES[(bool(handler.request_streaming), bool(handler.response_streaming))]
        key = (path, grpc_type)
        mm = self._methods.get(key)
        if mm is None:
            mm = self._methods[key] = _MethodMetrics(grpc_type, *_split(path), access=self._access)
        return mm

    def handlers_run(self) -> int:
        """Calls whose handler has run (or is running), of every method, since
        the start: server/admission.py counts the others from gRPC's count."""
        return sum(mm.handlers_run for mm in self._methods.values())

    def preinitialize(self, services: Iterable[Any]) -> None:
        """Create the zero-valued started and handled{grpc_code="OK"} series of
        every method of ``services`` (protobuf ServiceDescriptors, e.g.
        ``verifier_pb2.DESCRIPTOR.services_by_name["Verifier"]``), so that
        dashboards and rate() see a method before its first call. Call in the
        worker, after fork."""
        for service in services:
            for m in service.methods:
                grpc_type = _GRPC_TYPES[(bool(m.client_streaming), bool(m.server_streaming))]
                path = f"/{service.full_name}/{m.name}"
                key = (path, grpc_type)
                mm = self._methods.get(key)
                if mm is None:
                    mm = self._methods[key] = _MethodMetrics(
                        grpc_type, service.full_name, m.name, access=self._access
                    )
                mm.preinitialize()
