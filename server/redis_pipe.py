"""One pipelined connection to a standalone Redis for the hot path's single
command, the replay script of each batch.

redis-py spends some 150 µs of the event loop per command (pool checkout,
locks, timeouts, response callbacks) — under unary Verify, where batches are
a few codes, a tenth of the node's CPU. Here a command is packed by hiredis
and written without waiting for earlier replies; the commands issued during
one turn of the event loop go out in one write (a write to a loopback
socket, which wakes Redis, costs tens of µs on a VM, so concurrent Settles
share it); replies are matched to a FIFO of futures as hiredis parses them
in order; one timer per connection enforces the timeout. What it does not do: Cluster, TLS, RESP3,
pub/sub. ``NationalStore`` uses it for redis:// and unix:// URLs and keeps
redis-py for everything else.

Failures surface as the exceptions the callers already handle: OSError
(ConnectionError, TimeoutError) when the connection breaks or a reply is
late, redis.exceptions.ResponseError for an error reply. A broken connection
fails every command in flight on it; the next command connects again.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from typing import Any

import hiredis
from redis.asyncio.connection import UnixDomainSocketConnection, parse_url
from redis.exceptions import ResponseError

__all__ = ["RedisPipe", "Script", "supports"]


def supports(url: str) -> bool:
    """Whether `url` is one this module speaks to (plain TCP or a Unix socket)."""
    return url.startswith(("redis://", "unix://"))


class _Protocol(asyncio.Protocol):
    def __init__(self, pipe: RedisPipe) -> None:
        self._pipe = pipe
        self._reader = hiredis.Reader()
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        pending = self._pipe._pending
        while (reply := reader.gets()) is not False:
            if not pending:
                # A reply nobody asked for: the stream is out of step.
                self._pipe._break(ConnectionError("Redis sent a reply to no command"))
                return
            fut = pending.popleft()[0]
            if fut.done():  # its caller was cancelled; the reply still had to be read
                continue
            if isinstance(reply, hiredis.ReplyError):
                fut.set_exception(ResponseError(str(reply)))
            else:
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._pipe._transport is not self._transport:
            return  # an old connection, already dropped
        self._pipe._break(ConnectionError(f"connection to Redis lost: {exc or 'closed by the server'}"))


class RedisPipe:
    def __init__(self, url: str, *, timeout_s: float = 1.0, connect_timeout_s: float = 1.0) -> None:
        if not supports(url):
            raise ValueError(f"RedisPipe: unsupported URL {url!r} (redis:// or unix:// only)")
        opts = parse_url(url)
        self._path: str | None = opts.get("path") if opts.get("connection_class") is UnixDomainSocketConnection else None
        self._host: str = opts.get("host", "127.0.0.1")
        self._port: int = int(opts.get("port", 6379))
        self._setup: list[tuple[Any, ...]] = []
        if opts.get("password") is not None:
            user = opts.get("username")
            self._setup.append(("AUTH", user, opts["password"]) if user else ("AUTH", opts["password"]))
        if int(opts.get("db", 0)):
            self._setup.append(("SELECT", int(opts["db"])))
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._transport: asyncio.Transport | None = None
        self._connecting: asyncio.Future[None] | None = None
        # (future, monotonic time sent) per command in flight, oldest first.
        self._pending: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        # Packed commands not written yet, and whether a write is scheduled.
        self._out: list[bytes] = []
        self._flush_scheduled = False

    async def execute(self, *args: Any) -> Any:
        """Send one command and return its reply."""
        if self._transport is None:
            await self._connect()
        return await self._send(args)

    def _send(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionError("not connected to Redis")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append((fut, time.monotonic()))
        self._out.append(hiredis.pack_command(args))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        if self._timer is None:
            self._timer = loop.call_later(self._timeout_s, self._check_late)
        return fut

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._transport is not None and self._out:
            self._transport.write(b"".join(self._out))
        self._out.clear()

    async def _connect(self) -> None:
        if self._connecting is not None:
            return await asyncio.shield(self._connecting)
        loop = asyncio.get_running_loop()
        self._connecting = loop.create_future()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                if self._path is not None:
                    transport, _ = await loop.create_unix_connection(lambda: _Protocol(self), self._path)
                else:
                    transport, _ = await loop.create_connection(lambda: _Protocol(self), self._host, self._port)
            self._transport = transport  # type: ignore[assignment]
            # AUTH and SELECT are queued together, before anything another
            # caller sends once this one yields: no command can reach Redis
            # between them and run in the wrong database.
            setup = [self._send(command) for command in self._setup]
            try:
                for error in await asyncio.gather(*setup, return_exceptions=True):
                    if isinstance(error, BaseException):
                        raise error
            except BaseException:
                self._break(ConnectionError("Redis refused the connection's AUTH or SELECT"))
                raise
        except BaseException as e:
            self._connecting.set_exception(e if isinstance(e, Exception) else ConnectionError(str(e)))
            self._connecting.exception()  # retrieved: only concurrent waiters care
            raise
        else:
            self._connecting.set_result(None)
        finally:
            self._connecting = None

    def _check_late(self) -> None:
        self._timer = None
        if not self._pending:
            return
        late_by = time.monotonic() - self._pending[0][1]
        if late_by >= self._timeout_s:
            self._break(TimeoutError(f"Redis did not answer within {self._timeout_s:g} s"))
        else:
            self._timer = asyncio.get_running_loop().call_later(self._timeout_s - late_by, self._check_late)

    def _break(self, error: Exception) -> None:
        """Drop the connection and fail every command in flight on it."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.abort()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._out.clear()
        pending, self._pending = self._pending, deque()
        for fut, _ in pending:
            if not fut.done():
                fut.set_exception(error)

    async def aclose(self) -> None:
        self._break(ConnectionError("closed"))


class Script:
    """A Lua script run by EVALSHA, loaded again when Redis has forgotten it
    (a restart, SCRIPT FLUSH)."""

    def __init__(self, pipe: RedisPipe, source: str) -> None:
        self._pipe = pipe
        self._source = source
        self._sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, keys: list[Any], args: list[Any]) -> Any:
        try:
            return await self._pipe.execute("EVALSHA", self._sha, len(keys), *keys, *args)
        except ResponseError as e:
            if not str(e).startswith("NOSCRIPT"):
                raise
        # EVAL also caches the script, so the next EVALSHA finds it.
        return await self._pipe.execute("EVAL", self._source, len(keys), *keys, *args)
