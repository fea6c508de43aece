"""Entry point: options, logging, one process or a supervisor of workers."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Coroutine, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from server import config


def _fail(message: str) -> None:
    print(f"yibao-verify: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def _run(cfg: config.Config, main: Coroutine[Any, Any, None]) -> None:
    if cfg.event_loop == "uvloop":
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)


def main(argv: Sequence[str] | None = None) -> None:
    cfg = config.parse(argv)
    if cfg.revocation_dir is None:
        private = tempfile.mkdtemp(prefix="yibao-revocations-")
        try:
            _main(dataclasses.replace(cfg, revocation_dir=Path(private)))
        finally:
            shutil.rmtree(private, ignore_errors=True)
    else:
        _main(cfg)


def _main(cfg: config.Config) -> None:
    from server import logs

    logs.configure(cfg.log_format)
    from server import app, metrics
    from server.national import StoreUnavailable

    if cfg.workers == 1:
        try:
            metrics.serve(cfg.metrics_listen)
        except OSError as e:
            _fail(f"cannot serve metrics on {cfg.metrics_listen}: {e}")
        try:
            _run(cfg, app.serve(cfg))
        except StoreUnavailable as e:
            _fail(str(e))
        return
    _supervise(cfg)


def _end_with(supervisor: int) -> None:
    """Make this worker get SIGTERM when its supervisor dies, however it
    dies (a SIGKILL runs no handler that could stop the workers), so no
    worker outlives its node holding the port. Linux only."""
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != supervisor:  # it died before the line above
        os._exit(1)


def _supervise(cfg: config.Config) -> None:
    """Fork the workers before any gRPC machinery exists (gRPC does not
    survive a fork), serve the combined metrics, and stop them all on
    SIGTERM. A worker that dies takes the node down with it, so the service
    manager restarts the whole rather than a node running short."""
    from server import app, metrics
    from server.national import NationalStore, StoreUnavailable

    async def reachable() -> None:
        store = NationalStore(cfg.redis_url)
        try:
            await store.ping()
        finally:
            await store.close()

    try:
        asyncio.run(reachable())
    except StoreUnavailable as e:
        _fail(str(e))

    # Before the fork: every worker then records into files the parent sums.
    metrics_dir = tempfile.mkdtemp(prefix="yibao-metrics-")
    metrics.prepare_multiprocess(metrics_dir)
    children: list[int] = []
    supervisor = os.getpid()
    for _ in range(cfg.workers):
        pid = os.fork()
        if pid == 0:
            _end_with(supervisor)
            code = 0
            try:
                _run(cfg, app.serve(cfg, shared_port=True))
            except StoreUnavailable as e:
                print(f"yibao-verify: {e}", file=sys.stderr, flush=True)
                code = 2
            except BaseException:  # noqa: BLE001 - reported, then the worker exits non-zero
                logging.getLogger("yibao.node").exception("worker failed")
                code = 1
            os._exit(code)
        children.append(pid)

    try:
        metrics.serve(cfg.metrics_listen)
    except OSError as e:
        logging.getLogger("yibao.node").error("cannot serve metrics on %s: %s", cfg.metrics_listen, e)

    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worst = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if pid not in children:
            continue
        children.remove(pid)
        metrics.mark_worker_dead(pid)
        code = os.waitstatus_to_exitcode(status)
        # A worker still starting when told to stop has no handler yet and
        # dies of the SIGTERM: nothing was in flight, a clean stop.
        if not (stopping and code == -signal.SIGTERM):
            worst = max(worst, abs(code))
        if not stopping:
            logging.getLogger("yibao.node").error("worker %d exited with %d: stopping the node", pid, code)
            stop(signal.SIGTERM, None)
    metrics.shutdown()
    shutil.rmtree(metrics_dir, ignore_errors=True)
    sys.exit(worst)
