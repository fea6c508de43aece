"""server.metrics and server.interceptor against a real grpc.aio server and
a real scrape of the /metrics endpoint (no mocks).

Counters of the default registry live for the whole pytest process, so the
single-process tests compare a scrape after with a scrape before. The
multi-process test runs its node parent in a fresh interpreter: switching
prometheus-client to multi-process mode is for the life of a process.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server import metrics
from server.interceptor import MetricsInterceptor

REPO = Path(__file__).resolve().parents[2]
SERVICE = "test.v1.Probe"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def scrape(port: int, host: str = "127.0.0.1") -> Samples:
    url = f"http://{host}:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        text = response.read().decode("utf-8")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def grpc_labels(grpc_type: str, method: str, code: str | None = None) -> dict[str, str]:
    labels = {"grpc_type": grpc_type, "grpc_service": SERVICE, "grpc_method": method}
    if code is not None:
        labels["grpc_code"] = code
    return labels


@pytest.fixture
def endpoint() -> Iterator[int]:
    port = metrics.serve("127.0.0.1:0")
    try:
        yield port
    finally:
        metrics.shutdown()


# --------------------------------------------------------------------------
# a tiny servicer: raw bytes in and out (no (de)serializers)
# --------------------------------------------------------------------------
async def ok(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def invalid(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request_id missing")
    raise AssertionError("abort returned")


async def boom(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise RuntimeError("a bug in the handler")


async def not_found(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    context.set_code(grpc.StatusCode.NOT_FOUND)
    context.set_details("no such settlement")
    return b""


async def slow(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await asyncio.sleep(30)
    return b""


async def count(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    for i in range(int(request)):
        yield str(i).encode()


async def count_then_abort(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    yield b"0"
    yield b"1"
    await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "trust list not loaded")


async def endless(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    i = 0
    while True:
        yield str(i).encode()
        i += 1
        await asyncio.sleep(0.01)


async def written(request: bytes, context: grpc.aio.ServicerContext) -> None:
    # unary_stream written as a coroutine with context.write()
    for part in (b"a", b"b", b"c"):
        await context.write(part)


async def total(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
    return str(sum([int(r) async for r in requests])).encode()


async def echo(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    async for r in requests:
        yield r


def sync_ok(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    # a plain function: grpc.aio runs it in its migration thread pool
    return request.upper()


def sync_invalid(request: bytes, context: grpc.ServicerContext) -> bytes:
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad institution_code")
    raise AssertionError("abort returned")


def sync_count(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    yield b"0"
    yield b"1"


HANDLERS = {
    "Ok": grpc.unary_unary_rpc_method_handler(ok),
    "Invalid": grpc.unary_unary_rpc_method_handler(invalid),
    "Boom": grpc.unary_unary_rpc_method_handler(boom),
    "NotFound": grpc.unary_unary_rpc_method_handler(not_found),
    "Slow": grpc.unary_unary_rpc_method_handler(slow),
    "SyncOk": grpc.unary_unary_rpc_method_handler(sync_ok),
    "SyncInvalid": grpc.unary_unary_rpc_method_handler(sync_invalid),
    "SyncCount": grpc.unary_stream_rpc_method_handler(sync_count),
    "Count": grpc.unary_stream_rpc_method_handler(count),
    "CountThenAbort": grpc.unary_stream_rpc_method_handler(count_then_abort),
    "Endless": grpc.unary_stream_rpc_method_handler(endless),
    "Written": grpc.unary_stream_rpc_method_handler(written),
    "Total": grpc.stream_unary_rpc_method_handler(total),
    "Echo": grpc.stream_stream_rpc_method_handler(echo),
}


async def _requests(*items: bytes) -> AsyncIterator[bytes]:
    for item in items:
        yield item


async def exercise_server() -> dict[str, object]:
    """Start a server with the interceptor, make one call of each kind and
    return what the client saw (status code name, or the responses)."""
    pool = ThreadPoolExecutor(max_workers=1)
    server = grpc.aio.server(interceptors=[MetricsInterceptor()], migration_thread_pool=pool)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, HANDLERS),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    seen: dict[str, object] = {}
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:

            def path(method: str) -> str:
                return f"/{SERVICE}/{method}"

            for method in ("Ok", "Invalid", "Boom", "NotFound", "SyncOk", "SyncInvalid"):
                try:
                    await channel.unary_unary(path(method))(b"x", timeout=10)
                    seen[method] = "OK"
                except grpc.aio.AioRpcError as e:
                    seen[method] = e.code().name
            try:
                await channel.unary_unary(path("Slow"))(b"", timeout=0.2)
            except grpc.aio.AioRpcError as e:
                seen["Slow/deadline"] = e.code().name
            call = channel.unary_unary(path("Slow"))(b"", timeout=10)
            await asyncio.sleep(0.2)  # let the server start the handler
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            seen["Slow/cancel"] = "CANCELLED"

            seen["Count"] = [r async for r in channel.unary_stream(path("Count"))(b"3", timeout=10)]
            got: list[bytes] = []
            try:
                async for r in channel.unary_stream(path("CountThenAbort"))(b"", timeout=10):
                    got.append(r)
            except grpc.aio.AioRpcError as e:
                seen["CountThenAbort"] = (got, e.code().name)
            stream = channel.unary_stream(path("Endless"))(b"", timeout=10)
            async for r in stream:
                if r == b"2":
                    stream.cancel()  # the client walks away mid-stream
                    break
            seen["Endless"] = "CANCELLED"
            seen["SyncCount"] = [r async for r in channel.unary_stream(path("SyncCount"))(b"", timeout=10)]
            seen["Written"] = [r async for r in channel.unary_stream(path("Written"))(b"", timeout=10)]
            seen["Total"] = await channel.stream_unary(path("Total"))(_requests(b"1", b"2", b"3"), timeout=10)
            seen["Echo"] = [r async for r in channel.stream_stream(path("Echo"))(_requests(b"p", b"q"), timeout=10)]
            try:
                await channel.unary_unary(path("Nope"))(b"", timeout=10)
            except grpc.aio.AioRpcError as e:
                seen["Nope"] = e.code().name
    finally:
        await server.stop(None)
        pool.shutdown(wait=True)
    return seen


def wait_for(port: int, condition, timeout: float = 5.0) -> Samples:
    """Scrape until ``condition(samples)``: a cancelled call is counted when
    the server has seen the cancellation, a moment after the client did."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(port)
        if condition(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


# --------------------------------------------------------------------------
# single process
# --------------------------------------------------------------------------
def test_grpc_server_metrics_follow_the_status_the_client_sees(endpoint: int) -> None:
    before = scrape(endpoint)
    seen = asyncio.run(exercise_server())

    assert seen == {
        "Ok": "OK",
        "Invalid": "INVALID_ARGUMENT",
        "Boom": "UNKNOWN",
        "NotFound": "NOT_FOUND",
        "SyncOk": "OK",
        "SyncInvalid": "INVALID_ARGUMENT",
        "SyncCount": [b"0", b"1"],
        "Endless": "CANCELLED",
        "Slow/deadline": "DEADLINE_EXCEEDED",
        "Slow/cancel": "CANCELLED",
        "Count": [b"0", b"1", b"2"],
        "CountThenAbort": ([b"0", b"1"], "FAILED_PRECONDITION"),
        "Written": [b"a", b"b", b"c"],
        "Total": b"6",
        "Echo": [b"p", b"q"],
        "Nope": "UNIMPLEMENTED",
    }

    expected_handled = [
        ("unary", "Ok", "OK", 1),
        ("unary", "Invalid", "INVALID_ARGUMENT", 1),
        ("unary", "Boom", "UNKNOWN", 1),
        ("unary", "NotFound", "NOT_FOUND", 1),
        ("unary", "SyncOk", "OK", 1),
        ("unary", "SyncInvalid", "INVALID_ARGUMENT", 1),
        ("server_stream", "SyncCount", "OK", 1),
        ("server_stream", "Endless", "CANCELLED", 1),
        ("unary", "Slow", "DEADLINE_EXCEEDED", 1),
        ("unary", "Slow", "CANCELLED", 1),
        ("server_stream", "Count", "OK", 1),
        ("server_stream", "CountThenAbort", "FAILED_PRECONDITION", 1),
        ("server_stream", "Written", "OK", 1),
        ("client_stream", "Total", "OK", 1),
        ("bidi_stream", "Echo", "OK", 1),
    ]

    def delta(samples: Samples, name: str, **labels: str) -> float:
        return value(samples, name, **labels) - value(before, name, **labels)

    def all_counted(samples: Samples) -> bool:
        return all(
            delta(samples, "grpc_server_handled_total", **grpc_labels(t, m, c)) == n
            for t, m, c, n in expected_handled
        )

    after = wait_for(endpoint, all_counted)
    for grpc_type, method, code, n in expected_handled:
        labels = grpc_labels(grpc_type, method, code)
        assert delta(after, "grpc_server_handled_total", **labels) == n, (method, code)
        assert delta(after, "grpc_server_handling_seconds_count", **labels) == n, (method, code)
        assert delta(after, "grpc_server_handling_seconds_bucket", le="+Inf", **labels) == n
    started = {
        (t, m): sum(n for t2, m2, _, n in expected_handled if (t2, m2) == (t, m))
        for t, m, _, _ in expected_handled
    }
    for (grpc_type, method), n in started.items():
        assert delta(after, "grpc_server_started_total", **grpc_labels(grpc_type, method)) == n, method

    # Slow's deadline call took at least its 0.2 s timeout.
    slow = grpc_labels("unary", "Slow", "DEADLINE_EXCEEDED")
    assert delta(after, "grpc_server_handling_seconds_sum", **slow) >= 0.15
    # Unknown methods are not counted: their names come from the client.
    assert not any(dict(labels).get("grpc_method") == "Nope" for _, labels in after)
    # started carries no grpc_code; handled always does.
    for name, labels in after:
        keys = {k for k, _ in labels}
        if name == "grpc_server_started_total":
            assert "grpc_code" not in keys
        if name == "grpc_server_handled_total":
            assert {"grpc_type", "grpc_service", "grpc_method", "grpc_code"} == keys


def test_yibao_metrics_have_the_contract_names_and_labels(endpoint: int) -> None:
    before = scrape(endpoint)
    batch = [("VALID", 2, "44")] * 3 + [("REVOKED", 5, "11"), ("MALFORMED", None, None)]
    # Junk from a malformed payload maps to "" instead of new series.
    batch += [("MALFORMED", 9, "ZZ"), ("MALFORMED", 0, "99")]
    metrics.record_verifications(batch)
    metrics.record_verifications(iter([("VALID", 2, "44")]))  # any iterable, e.g. a generator
    metrics.record_verifications([])
    metrics.record_verification("VALID", 2, "44")
    metrics.observe_verify_duration(0.00007)
    metrics.observe_verify_duration(0.02)
    metrics.record_degraded_verifications(4)
    metrics.record_settlement("SETTLED", account_pay_fen=12_345)
    metrics.record_settlement("SETTLED", account_pay_fen=55)
    metrics.record_settlement("INSUFFICIENT_BALANCE")
    metrics.record_forward("11", grpc.StatusCode.OK)
    metrics.record_forward("11", "UNAVAILABLE")
    metrics.record_redis_error("regional")
    metrics.set_revocations_loaded(1234)
    metrics.set_trust_keys_loaded(2)
    metrics.set_revocation_sync_age(2.0)
    metrics.set_national_store_up(True)
    # attribute access, as off-hot-path code uses it
    metrics.REDIS_ERRORS.labels(store="national").inc()
    metrics.DEGRADED_VERIFICATIONS.inc(1)
    with pytest.raises(ValueError):
        metrics.record_redis_error("elsewhere")  # type: ignore[arg-type]
    after = scrape(endpoint)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("yibao_verifications_total", outcome="VALID", channel="2", province="44") == 5
    assert delta("yibao_verifications_total", outcome="REVOKED", channel="5", province="11") == 1
    assert delta("yibao_verifications_total", outcome="MALFORMED", channel="", province="") == 3
    assert not any(dict(labels).get("province") in ("ZZ", "99") for _, labels in after)
    assert delta("yibao_verify_duration_seconds_count") == 2
    assert delta("yibao_verify_duration_seconds_bucket", le="0.0001") == 1
    assert delta("yibao_degraded_verifications_total") == 5
    assert delta("yibao_settlements_total", outcome="SETTLED") == 2
    assert delta("yibao_settlements_total", outcome="INSUFFICIENT_BALANCE") == 1
    assert delta("yibao_settled_fen_total") == 12_400
    assert delta("yibao_forward_requests_total", peer="11", code="OK") == 1
    assert delta("yibao_forward_requests_total", peer="11", code="UNAVAILABLE") == 1
    assert delta("yibao_redis_errors_total", store="regional") == 1
    assert delta("yibao_redis_errors_total", store="national") == 1
    assert value(after, "yibao_revocations_loaded") == 1234
    assert value(after, "yibao_trust_keys_loaded") == 2
    assert 2.0 <= value(after, "yibao_revocation_sync_age_seconds") < 10.0
    assert value(after, "yibao_revocation_last_sync_timestamp_seconds") > 1.7e9
    assert value(after, "yibao_national_store_up") == 1

    # every name api.md lists is exposed
    names = {name for name, _ in after}
    for name in (
        "grpc_server_handled_total",
        "grpc_server_handling_seconds_bucket",
        "yibao_verifications_total",
        "yibao_verify_duration_seconds_bucket",
        "yibao_settlements_total",
        "yibao_settled_fen_total",
        "yibao_revocations_loaded",
        "yibao_revocation_sync_age_seconds",
        "yibao_trust_keys_loaded",
        "yibao_forward_requests_total",
        "yibao_redis_errors_total",
        "yibao_degraded_verifications_total",
        "yibao_national_store_up",
    ):
        assert name in names, name


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("[::1]:9464", ("::1", 9464)),
        ("[::]:0", ("::", 0)),
        (":9464", ("0.0.0.0", 9464)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert metrics.parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["9464", "::1:9464", "host:", "host:port", "host:70000"])
def test_parse_listen_refuses(listen: str) -> None:
    with pytest.raises(ValueError):
        metrics.parse_listen(listen)


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this host")
def test_serve_on_ipv6_and_stop() -> None:
    port = metrics.serve("[::1]:0")
    try:
        assert port > 0
        assert scrape(port, host="[::1]")
        with pytest.raises(RuntimeError):
            metrics.serve("127.0.0.1:0")  # one endpoint per process
    finally:
        metrics.shutdown()
    metrics.shutdown()  # idempotent
    with pytest.raises(OSError), socket.create_connection(("::1", port), timeout=2):
        pass


# --------------------------------------------------------------------------
# multi-process: a node parent (fresh interpreter) forking two workers
# --------------------------------------------------------------------------
NODE_PARENT = textwrap.dedent(
    """
    import multiprocessing, os, sys
    from server import metrics  # imported before the mode is chosen, as cli.py does

    metrics.prepare_multiprocess(sys.argv[1])

    def worker(n, ready, leave):
        metrics.record_verifications([("VALID", 2, "44")] * n + [("MALFORMED", None, None)])
        metrics.observe_verify_duration(0.0004)
        metrics.set_revocations_loaded(100 + n)
        metrics.set_revocation_sync_age(10 * n)
        metrics.set_national_store_up(n == 3)
        ready.set()
        if leave is not None:
            leave.wait(60)

    ctx = multiprocessing.get_context("fork")
    ready_a, ready_b, leave = ctx.Event(), ctx.Event(), ctx.Event()
    # forked before the HTTP thread exists: nothing but this thread to copy
    a = ctx.Process(target=worker, args=(3, ready_a, leave))
    b = ctx.Process(target=worker, args=(4, ready_b, None))
    a.start(); b.start()
    b.join()
    assert b.exitcode == 0 and ready_a.wait(60)
    port = metrics.serve("127.0.0.1:0")
    print(port, a.pid, b.pid, flush=True)
    for line in sys.stdin:
        if line.strip() == "mark-dead":
            metrics.mark_worker_dead(b.pid)
            print("marked", flush=True)
    leave.set()
    a.join()
    metrics.mark_worker_dead(a.pid)
    metrics.shutdown()
    sys.exit(a.exitcode)
    """
)


def test_multiprocess_endpoint_sums_forked_workers(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    mp_dir = tmp_path / "metrics"
    mp_dir.mkdir()
    (mp_dir / "counter_999999.db").write_bytes(b"stale from a previous run")
    (mp_dir / "keep.txt").write_text("not a metrics file")
    with subprocess.Popen(
        [sys.executable, "-c", NODE_PARENT, str(mp_dir)],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            port, pid_a, pid_b = map(int, proc.stdout.readline().split())

            both = scrape(port)
            assert value(both, "yibao_verifications_total", outcome="VALID", channel="2", province="44") == 7
            assert value(both, "yibao_verifications_total", outcome="MALFORMED", channel="", province="") == 2
            assert value(both, "yibao_verify_duration_seconds_count") == 2
            assert value(both, "yibao_redis_errors_total", store="national") == 0  # pre-initialised
            # gauges: the worst live worker (b has exited but is not marked dead yet)
            assert value(both, "yibao_revocations_loaded") == 103
            assert value(both, "yibao_national_store_up") == 0
            assert 40 <= value(both, "yibao_revocation_sync_age_seconds") < 49  # b's

            proc.stdin.write("mark-dead\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "marked"
            only_a = scrape(port)
            # b's counts stay (totals never go back), its gauges are gone
            assert value(only_a, "yibao_verifications_total", outcome="VALID", channel="2", province="44") == 7
            assert value(only_a, "yibao_revocations_loaded") == 103
            assert value(only_a, "yibao_national_store_up") == 1
            assert 30 <= value(only_a, "yibao_revocation_sync_age_seconds") < 39  # a's

            # the parent touched no metric, so it wrote no file; the stale
            # file went, the unrelated one stayed
            files = {f.name for f in mp_dir.iterdir()}
            assert not any(f.endswith(f"_{proc.pid}.db") for f in files), files
            assert "counter_999999.db" not in files and "keep.txt" in files
            assert f"counter_{pid_a}.db" in files and f"counter_{pid_b}.db" in files
        finally:
            proc.stdin.close()
            assert proc.wait(timeout=60) == 0


def test_sync_age_is_infinite_before_any_sync() -> None:
    # a fresh interpreter: in this one earlier tests have already synced
    script = textwrap.dedent(
        """
        import math, urllib.request
        from prometheus_client.parser import text_string_to_metric_families
        from server import metrics
        port = metrics.serve("127.0.0.1:0")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
        metrics.shutdown()
        ages = [s.value for f in text_string_to_metric_families(text) for s in f.samples
                if s.name == "yibao_revocation_sync_age_seconds"]
        assert ages == [math.inf], ages
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, check=True, timeout=60)
