"""What the node's interceptors share: each wraps a method's handler once
and hands out the wrapped form on every later call of that method."""

from __future__ import annotations

from collections.abc import Callable

import grpc

__all__ = ["WrappedHandlers"]


class WrappedHandlers:
    """Method path -> (the handler the rest of the chain returned, its
    wrapped form). A handler is wrapped again only if the chain returns
    another one for that path. Only paths with a handler get here, so the
    table is never larger than the methods the server has."""

    __slots__ = ("_wrap", "_cache")

    def __init__(self, wrap: Callable[[str, grpc.RpcMethodHandler], grpc.RpcMethodHandler]) -> None:
        self._wrap = wrap
        self._cache: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def get(self, path: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        cached = self._cache.get(path)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(path, handler)
        self._cache[path] = (handler, wrapped)
        return wrapped
