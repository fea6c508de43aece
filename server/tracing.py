"""OpenTelemetry tracing, off unless ``--otel-endpoint`` is given: a server
span per unary call (streams are not traced), exported over OTLP/HTTP in
batches, and the W3C trace context carried to the peer node when a call is
forwarded (异地就医), so one trace shows both provinces.

Off, it costs nothing: no interceptor is installed and forwarded calls carry
no extra metadata. The packages are the optional extra ``tracing``
(``pip install 'yibao-verify[tracing]'``)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

__all__ = ["TracingInterceptor", "forward_metadata", "setup", "shutdown"]

_provider: Any = None


def setup(endpoint: str, region: str) -> None:
    """Export spans to the OTLP/HTTP collector at `endpoint` (e.g.
    http://127.0.0.1:4318), as service yibao-node of province `region`."""
    global _provider
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as e:
        raise SystemExit(
            f"--otel-endpoint needs the tracing extra: pip install 'yibao-verify[tracing]' ({e})"
        ) from e
    provider = TracerProvider(resource=Resource.create({"service.name": "yibao-node", "yibao.region": region}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")))
    trace.set_tracer_provider(provider)
    _provider = provider


def shutdown() -> None:
    """Send what is buffered before the process ends."""
    if _provider is not None:
        _provider.shutdown()


def forward_metadata() -> tuple[tuple[str, str], ...] | None:
    """The current trace context as gRPC metadata for a forwarded call;
    None when tracing is off."""
    if _provider is None:
        return None
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return tuple(carrier.items())


class TracingInterceptor(grpc.aio.ServerInterceptor):
    """A SERVER span around each unary call, child of the caller's trace
    context when the call carries one (a forwarded call does)."""

    def __init__(self) -> None:
        from opentelemetry import trace

        self._tracer = trace.get_tracer("yibao.node")

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None or not inspect.iscoroutinefunction(handler.unary_unary):
            return handler
        from opentelemetry import propagate, trace

        behaviour, name, tracer = handler.unary_unary, handler_call_details.method.lstrip("/"), self._tracer
        carrier = {k: v for k, v in (handler_call_details.invocation_metadata or ()) if isinstance(v, str)}

        async def traced(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with tracer.start_as_current_span(
                name, context=propagate.extract(carrier), kind=trace.SpanKind.SERVER,
                attributes={"rpc.system": "grpc", "rpc.method": name},
            ) as span:  # fmt: skip
                try:
                    return await behaviour(request, context)
                finally:
                    code = context.code()
                    span.set_attribute("rpc.grpc.status_code", getattr(code, "value", (0,))[0] if code else 0)

        return grpc.unary_unary_rpc_method_handler(
            traced, handler.request_deserializer, handler.response_serializer
        )
