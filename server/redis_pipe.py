"""One pipelined connection to a standalone Redis for the hot path's single
command, the replay script of each batch.

redis-py spends some 150 µs of the event loop per command (pool checkout,
locks, timeouts, response callbacks) — under unary Verify, where batches are
a few codes, a tenth of the node's CPU. Here a command is packed by hiredis
and written without waiting for earlier replies; the commands issued during
one turn of the event loop go out in one write (a write to a loopback
socket, which wakes Redis, costs tens of µs on a VM, so concurrent Settles
share it); replies are matched to a FIFO of futures as hiredis parses them
in order; one timer per connection enforces the timeout. What it does not do: TLS, RESP3,
pub/sub, and of a Redis Cluster only the one slot that ``slot_key`` hashes
to (every key of a province's ledger, or of the national revocations,
shares one hash tag): the pipe connects to that slot's primary, found with
CLUSTER SLOTS, and looks again after MOVED or a lost connection.

Durable writes (``execute_durable``): a write is answered only once
``min_replicas`` replicas hold it, by ``WAIT`` on the same connection (WAIT
counts the replication offset of this connection's own last write; on any
other connection it proves nothing). The writes queued in one turn of the
event loop share one WAIT, sent after them: a group commit. When fewer
replicas acknowledge in time, NotReplicated: the write ran on the primary
and may or may not survive a failover; the caller answers UNAVAILABLE and a
retry (idempotent by its key) settles which. While a WAIT is out, what
follows is held and sent when it returns, so WAITs never queue up behind one
another when a replica is slow: there is at most one per connection, and it
covers everything written before it.

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
from collections.abc import Callable
from typing import Any

import hiredis
from redis.asyncio.connection import UnixDomainSocketConnection, parse_url
from redis.crc import key_slot
from redis.exceptions import RedisError, ResponseError

__all__ = ["CLUSTER_SCHEME", "NotReplicated", "RedisPipe", "Script", "supports"]

CLUSTER_SCHEME = "redis+cluster://"
# Error replies that mean "not here, not now" in a cluster (the slot moved,
# a failover is under way): the command did not run; find the slot's primary again.
_CLUSTER_REDIRECTS = ("MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN", "READONLY", "MASTERDOWN", "LOADING")


def supports(url: str, *, slot_key: str | None = None) -> bool:
    """Whether `url` is one this module speaks to: plain TCP or a Unix
    socket, or a Redis Cluster when the pipe is for one slot (`slot_key`)."""
    if url.startswith(CLUSTER_SCHEME):
        return slot_key is not None
    return url.startswith(("redis://", "unix://"))


class NotReplicated(RedisError):
    """A write ran on the primary but fewer replicas than required
    acknowledged it in time: it may or may not survive a failover."""


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
        redirected: str | None = None
        while (reply := reader.gets()) is not False:
            if not pending:
                # A reply nobody asked for: the stream is out of step.
                self._pipe._break(ConnectionError("Redis sent a reply to no command"))
                return
            fut = pending.popleft()[0]
            if fut is self._pipe._wait_sent:
                self._pipe._wait_returned()
            if isinstance(reply, hiredis.ReplyError) and str(reply).startswith(_CLUSTER_REDIRECTS):
                redirected = str(reply)
            if fut.done():  # its caller was cancelled; the reply still had to be read
                continue
            if redirected is not None and isinstance(reply, hiredis.ReplyError):
                fut.set_exception(ConnectionError(f"Redis Cluster: the slot is not served here now ({reply})"))
            elif isinstance(reply, hiredis.ReplyError):
                fut.set_exception(ResponseError(str(reply)))
            else:
                fut.set_result(reply)
        if redirected is not None:
            # The next command looks for the slot's primary again.
            self._pipe._break(ConnectionError(f"Redis Cluster: the slot is not served here now ({redirected})"))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._pipe._transport is not self._transport:
            return  # an old connection, already dropped
        self._pipe._break(ConnectionError(f"connection to Redis lost: {exc or 'closed by the server'}"))


class RedisPipe:
    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 1.0,
        connect_timeout_s: float = 1.0,
        slot_key: str | None = None,
        min_replicas: int = 0,
        replica_timeout_ms: int = 500,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        """`slot_key`: for a redis+cluster:// URL, a key of the one slot this
        pipe serves. `min_replicas`: how many replicas must hold a durable
        write before it is answered, waiting at most `replica_timeout_ms`
        (a command's reply is late after `timeout_s` plus twice that).
        `observe` is given each command's seconds from send to answer."""
        if not supports(url, slot_key=slot_key):
            raise ValueError(
                f"RedisPipe: unsupported URL {url!r} (redis://, unix://, or redis+cluster:// with a slot_key)"
            )
        if min_replicas < 0 or replica_timeout_ms < 1:
            raise ValueError(
                f"RedisPipe: min_replicas {min_replicas} must be at least 0 and replica_timeout_ms "
                f"{replica_timeout_ms} at least 1"
            )
        self._slot: int | None = None
        if url.startswith(CLUSTER_SCHEME):
            url = "redis://" + url.removeprefix(CLUSTER_SCHEME)
            self._slot = key_slot(slot_key.encode())  # type: ignore[union-attr]
        opts = parse_url(url)
        self._path: str | None = opts.get("path") if opts.get("connection_class") is UnixDomainSocketConnection else None
        self._host: str = opts.get("host", "127.0.0.1")
        self._port: int = int(opts.get("port", 6379))
        # Every cluster node seen so far: the seed may be the one that died.
        self._nodes: list[tuple[str, int]] = [(self._host, self._port)]
        self._auth: tuple[Any, ...] | None = None
        self._setup: list[tuple[Any, ...]] = []
        if opts.get("password") is not None:
            user = opts.get("username")
            self._auth = ("AUTH", user, opts["password"]) if user else ("AUTH", opts["password"])
            self._setup.append(self._auth)
        if int(opts.get("db", 0)) and self._slot is None:
            self._setup.append(("SELECT", int(opts["db"])))
        # A command may be held behind one WAIT, then wait for its own.
        self._timeout_s = timeout_s + (2 * replica_timeout_ms / 1000 if min_replicas else 0)
        self._connect_timeout_s = connect_timeout_s
        self._min_replicas = min_replicas
        self._replica_timeout_ms = replica_timeout_ms
        # The WAIT that will follow the durable writes queued so far, and the
        # one sent and not answered yet (what comes after it is held).
        self._wait: asyncio.Future[Any] | None = None
        self._wait_sent: asyncio.Future[Any] | None = None
        self._observe = observe
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
        if self._observe is None:
            return await self._send(args)
        started = time.perf_counter()
        try:
            return await self._send(args)
        finally:
            self._observe(time.perf_counter() - started)

    async def ping(self) -> None:
        """PING the server (for a cluster: the slot's primary)."""
        await self.execute("PING")

    async def execute_durable(self, *args: Any) -> Any:
        """Send one write and return its reply once `min_replicas` replicas
        hold it; NotReplicated when they do not within the replica timeout."""
        if self._transport is None:
            await self._connect()
        if self._observe is None:
            return await self._durable(args)
        started = time.perf_counter()
        try:
            return await self._durable(args)
        finally:
            self._observe(time.perf_counter() - started)

    async def _durable(self, args: tuple[Any, ...]) -> Any:
        reply = self._send(args)
        if self._min_replicas == 0:
            return await reply
        wait = self._wait
        if wait is None:
            wait = self._wait = asyncio.get_running_loop().create_future()
            # Retrieved here: a caller whose write failed never awaits it.
            wait.add_done_callback(lambda f: f.cancelled() or f.exception())
        result = await reply
        acked = await asyncio.shield(wait)
        if acked < self._min_replicas:
            raise NotReplicated(
                f"{acked} of the {self._min_replicas} replicas required acknowledged the write within "
                f"{self._replica_timeout_ms} ms; it may or may not stand"
            )
        return result

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
        if self._transport is None:
            self._out.clear()
            return
        if self._wait_sent is not None:
            return  # held: sent when the WAIT out returns
        if self._wait is not None:
            # One WAIT after the writes queued so far covers them all.
            self._out.append(hiredis.pack_command(("WAIT", self._min_replicas, self._replica_timeout_ms)))
            self._pending.append((self._wait, time.monotonic()))
            self._wait_sent, self._wait = self._wait, None
        if self._out:
            self._transport.write(b"".join(self._out))
        self._out.clear()

    def _wait_returned(self) -> None:
        self._wait_sent = None
        self._flush()

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
                    host, port = (self._host, self._port) if self._slot is None else await self._slot_primary()
                    transport, _ = await loop.create_connection(lambda: _Protocol(self), host, port)
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

    async def _slot_primary(self) -> tuple[str, int]:
        """The address of the primary that serves this pipe's slot, asked of
        the cluster nodes known so far, in turn."""
        failures = []
        for host, port in list(self._nodes):
            try:
                slots = await _ask(host, port, self._auth, ("CLUSTER", "SLOTS"))
            except (OSError, ResponseError, asyncio.TimeoutError) as e:
                failures.append(f"{host}:{port}: {e}")
                continue
            primary = None
            for first, last, owner, *replicas in slots:
                for node in (owner, *replicas):
                    address = (node[0].decode() or host, int(node[1]))
                    if address not in self._nodes:
                        self._nodes.append(address)
                if first <= self._slot <= last:  # type: ignore[operator]
                    primary = (owner[0].decode() or host, int(owner[1]))
            if primary is not None:
                return primary
            failures.append(f"{host}:{port}: no node serves slot {self._slot}")
        raise ConnectionError(f"Redis Cluster: no primary found for slot {self._slot} ({'; '.join(failures)})")

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
        if self._wait is not None:
            pending.append((self._wait, 0.0))
        self._wait = self._wait_sent = None
        for fut, _ in pending:
            if not fut.done():
                fut.set_exception(error)

    async def aclose(self) -> None:
        self._break(ConnectionError("closed"))


async def _ask(host: str, port: int, auth: tuple[Any, ...] | None, command: tuple[Any, ...]) -> Any:
    """One command on a short-lived connection of its own (cluster discovery)."""
    async with asyncio.timeout(1.0):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            parser = hiredis.Reader()
            writer.write(b"".join(hiredis.pack_command(c) for c in (*([auth] if auth else []), command)))
            replies = []
            while len(replies) < (2 if auth else 1):
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("closed by the server")
                parser.feed(data)
                while (reply := parser.gets()) is not False:
                    if isinstance(reply, hiredis.ReplyError):
                        raise ResponseError(str(reply))
                    replies.append(reply)
            return replies[-1]
        finally:
            writer.close()


class Script:
    """A Lua script run by EVALSHA, loaded again when Redis has forgotten it
    (a restart, SCRIPT FLUSH, a replica promoted). A `durable` script is
    answered only once the pipe's required replicas hold its writes."""

    def __init__(self, pipe: RedisPipe, source: str, *, durable: bool = False) -> None:
        self._pipe = pipe
        self._source = source
        self._sha = hashlib.sha1(source.encode()).hexdigest()
        self._execute = pipe.execute_durable if durable else pipe.execute

    async def __call__(self, keys: list[Any], args: list[Any]) -> Any:
        try:
            return await self._execute("EVALSHA", self._sha, len(keys), *keys, *args)
        except ResponseError as e:
            if not str(e).startswith("NOSCRIPT"):
                raise
        # EVAL also caches the script, so the next EVALSHA finds it.
        return await self._execute("EVAL", self._source, len(keys), *keys, *args)
