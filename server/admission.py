"""Load shedding: a node takes at most ``--max-in-flight`` calls at once,
and one caller (institution) at most ``--max-in-flight-per-caller`` of
them; a call beyond either is refused at once with RESOURCE_EXHAUSTED
(reason OVERLOADED), before any work, instead of queueing behind the rest
and answering everyone late. What it does accept it answers within the
latency it has room for; refusals cost a dictionary look-up.

The per-caller table holds only callers with calls in progress, so it is
never larger than the in-flight limit, whatever callers send. The caller
is the request's institution_code (the first of a batch); with mTLS the
node has already checked that it is the caller's own.

Those limits count the calls the event loop has taken up. When the event
loop itself is the bottleneck (a node past its capacity) the backlog forms
before that, in gRPC core's queue of calls no handler has asked for yet,
where no Python code sees them; and in grpc.aio even the least a handler
can do to refuse a call costs the event loop as much as answering an empty
one, about 0.7 of a Verify (benchmarks/overload.py measures both), so at
twice its capacity a node cannot refuse its way out of that backlog.
``server_options()`` bounds that queue inside gRPC core instead: a call
arriving when ``--max-queued`` calls of its method are already waiting is
refused by gRPC at once, on gRPC's own threads, at no cost to the event
loop, and a call that has waited over a second is dropped when the loop
next takes one up. They never reach a handler, so nothing was done for them
and a retry with backoff is safe (the client library retries them).

gRPC core answers those calls CANCELLED, not RESOURCE_EXHAUSTED, and no
channel argument changes that in grpcio 1.85: its HTTP/2 server transport
(chttp2) hands calls to the server's filter-stack path, which refuses a
call past the bound, or drops one aged out, by destroying it unpublished
(CANCELLED). Only the promise-based matcher answers RESOURCE_EXHAUSTED
("Too many pending requests for this server"), and Python's server reaches
it only with the experimental promise-based HTTP/2 transport
(GRPC_EXPERIMENTS=ph2_server). Not used: gRPC's source calls that transport
a skeleton not to be used, and with it a node's SIGTERM kills the calls in
flight (RST_STREAM, INTERNAL: tests/node/test_state.py's drain test fails)
instead of finishing them. gRPC's open pull request grpc/grpc#41786 would
answer a call destroyed before any handler ran UNAVAILABLE instead."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from server import metrics
from server.handlers import WrappedHandlers
from server.validation import rich_status

__all__ = ["AdmissionInterceptor", "WithoutHandler", "server_options"]

log = logging.getLogger("yibao.node")

_STREAMS = "VerifyStream"


def server_options(max_queued: int) -> list[tuple[str, int]]:
    """grpc.aio.server() options bounding gRPC core's queue of calls not yet
    taken up by the event loop: at most ``max_queued`` calls of one method
    (tail drop: a soft limit equal to the hard one, so no random early
    drops of a burst below it), none kept over a second (gRPC counts this
    one in whole seconds)."""
    return [
        ("grpc.server.max_pending_requests", max_queued),
        ("grpc.server.max_pending_requests_hard_limit", max_queued),
        ("grpc.server_max_unrequested_time_in_server", 1),
    ]


def _channelz() -> Any:
    try:
        from grpc._cython import cygrpc  # channelz has no public Python API but its servicer's

        return cygrpc
    except ImportError:  # pragma: no cover - a grpcio without it
        return None


def _server_ids(cygrpc: Any) -> set[int]:
    servers = json.loads(cygrpc.channelz_get_servers(0)).get("server", [])
    return {int(s["ref"]["serverId"]) for s in servers}


class WithoutHandler:
    """Counts the calls gRPC answered without running any handler, which
    neither grpc_server_handled_total nor the node's logs see: refused past
    ``--max-queued`` or dropped after a second in gRPC core's queue (the
    client sees CANCELLED), refused by grpc.aio's own count of calls in
    progress (RESOURCE_EXHAUSTED "Concurrent RPC limit exceeded!"), cancelled
    by their caller while queued, or for a method the node does not serve.
    gRPC core counts every call that arrives (channelz's callsStarted); the
    node counts those whose handler ran (``MetricsInterceptor.handlers_run``);
    the difference is these plus the calls waiting at that moment. A wait is
    over within a second or so, so the smallest of the last three readings,
    taken a second apart, leaves out a passing queue; under a queue that
    stays (overload) the count is ahead by at most the calls queued, once.
    Exported as yibao_grpc_calls_without_handler_total. A channelz read
    costs about 0.1 ms.

    Create it just before ``grpc.aio.server()`` and call ``attach()`` just
    after: the server channelz gained in between is the node's."""

    def __init__(self) -> None:
        self._cygrpc = _channelz()
        self._before = _server_ids(self._cygrpc) if self._cygrpc is not None else set()
        self._id: int | None = None
        self._counted = 0
        self._recent: list[int] = []

    def attach(self) -> None:
        if self._cygrpc is None:
            return
        new = _server_ids(self._cygrpc) - self._before
        if len(new) == 1:
            self._id = new.pop()
        else:
            log.warning("cannot tell this node's gRPC server in channelz (%d new): calls answered without a "
                        "handler are not counted", len(new))  # fmt: skip

    def arrived(self) -> int | None:
        """Calls that have reached this server's gRPC core, whatever came of them."""
        if self._id is None:
            return None
        data = json.loads(self._cygrpc.channelz_get_server(self._id)).get("server", {}).get("data", {})
        return int(data.get("callsStarted", 0))

    def update(self, handlers_run: int) -> int:
        """One reading, given the calls whose handler has run so far; returns
        the count so far."""
        arrived = self.arrived()
        if arrived is None:
            return self._counted
        self._recent = [*self._recent[-2:], arrived - handlers_run]
        settled = min(self._recent)
        if settled > self._counted:
            metrics.record_calls_without_handler(settled - self._counted)
            self._counted = settled
        return self._counted

    async def watch(self, handlers_run: Callable[[], int], every_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            try:
                self.update(handlers_run())
            except (ValueError, KeyError, TypeError) as e:  # channelz's JSON not as expected
                log.warning("channelz unreadable, calls answered without a handler no longer counted: %s", e)
                return


class _Limits:
    def __init__(self, total: int, per_caller: int) -> None:
        self.total, self.per_caller = total, per_caller
        self.in_flight = 0
        self.by_caller: dict[str, int] = {}

    def enter(self, caller: str) -> str | None:
        """None if admitted (then leave() once done), else why not."""
        if self.in_flight >= self.total:
            return f"the node is at its limit of {self.total} calls in progress"
        mine = self.by_caller.get(caller, 0)
        if mine >= self.per_caller:
            return f"{caller or 'this caller'} has {mine} calls in progress, the most one caller may have"
        self.in_flight += 1
        self.by_caller[caller] = mine + 1
        return None

    def leave(self, caller: str) -> None:
        self.in_flight -= 1
        left = self.by_caller[caller] - 1
        if left:
            self.by_caller[caller] = left
        else:
            del self.by_caller[caller]


def _caller(request: Any) -> str:
    code = getattr(request, "institution_code", None)
    if code is None:
        requests = getattr(request, "requests", None)
        code = getattr(requests[0], "institution_code", "") if requests else ""
    return code[:12] if isinstance(code, str) else ""


def _refusal(why: str) -> grpc.Status:
    return rich_status(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{why}; retry with backoff", "OVERLOADED")


class AdmissionInterceptor(grpc.aio.ServerInterceptor):
    """Limits the unary calls and the streams of the yibao services (health
    checks and reflection are never refused)."""

    def __init__(self, max_in_flight: int, max_per_caller: int) -> None:
        self._limits = _Limits(max_in_flight, max_per_caller)
        self._handlers = WrappedHandlers(lambda _path, handler: self._wrap(handler))

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        path = handler_call_details.method
        if handler is None or not path.startswith("/yibao."):
            return handler
        return self._handlers.get(path, handler)

    def _wrap(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        limits = self._limits
        de, se = handler.request_deserializer, handler.response_serializer
        if handler.unary_unary is not None and inspect.iscoroutinefunction(handler.unary_unary):
            unary = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                caller = _caller(request)
                refused = limits.enter(caller)
                if refused is not None:
                    await context.abort_with_status(_refusal(refused))
                try:
                    return await unary(request, context)
                finally:
                    limits.leave(caller)

            return grpc.unary_unary_rpc_method_handler(unary_unary, de, se)
        if handler.stream_stream is not None and inspect.isasyncgenfunction(handler.stream_stream):
            streaming = handler.stream_stream

            async def stream_stream(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                # A stream counts as one call, before its requests are read: the
                # streams share one caller's allowance.
                refused = limits.enter(_STREAMS)
                if refused is not None:
                    await context.abort_with_status(_refusal(refused))
                try:
                    async for response in streaming(requests, context):
                        yield response
                finally:
                    limits.leave(_STREAMS)

            return grpc.stream_stream_rpc_method_handler(stream_stream, de, se)
        return handler
