"""Verification of a batch of requests: the core's checks off the event
loop with the GIL released, then the replay record in one Redis round trip
for the whole batch, then the responses. Unary calls and streams feed the
same path through `Batcher`, so load turns into larger batches, not more
round trips."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from redis.exceptions import RedisError

import yibao_core
from server import metrics, tokens
from server.config import Config
from server.national import Admission, NationalStore, replay_key
from server.state import NodeState
from yibao.v1 import common_pb2, verifier_pb2

_OUTCOME = {name: verifier_pb2.Outcome.Value("OUTCOME_" + name) for name in yibao_core.OUTCOMES}
_REASON = {
    name: common_pb2.RevocationReason.Value("REVOCATION_REASON_" + name)
    for name in ("LOST", "FROZEN", "CANCELLED", "DECEASED")
}


class Unavailable(Exception):
    """The national store has been away longer than --max-staleness-s."""


def _fingerprint(req: verifier_pb2.VerifyRequest) -> str:
    """Identifies a request for the retry rule: same institution, request id and code."""
    h = hashlib.blake2b(digest_size=12)
    h.update(f"{req.institution_code}\0{req.request_id}\0{req.code.strip()}".encode())
    return h.hexdigest()


class VerifyEngine:
    def __init__(self, cfg: Config, store: NationalStore, state: NodeState, token_key: bytes) -> None:
        self._cfg = cfg
        self._store = store
        self._state = state
        self._token_key = token_key
        # check_batch releases the GIL and spreads a batch over the cores
        # itself; two threads let one batch be checked while another waits
        # on Redis.
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="yibao-verify")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def verify(self, reqs: Sequence[verifier_pb2.VerifyRequest]) -> list[verifier_pb2.VerifyResponse]:
        started = time.perf_counter()
        store, state = self._store, self._state
        stale_for = time.monotonic() - store.last_contact
        if stale_for > self._cfg.max_staleness_s:
            raise Unavailable(
                f"the national store has been unreachable for {stale_for:.0f} s "
                f"(limit {self._cfg.max_staleness_s:g} s); retry"
            )
        degraded = stale_for > 1.5  # the follower touches the store every 0.5 s when it is there
        now_ms = time.time_ns() // 1_000_000
        check = partial(
            yibao_core.check_batch,
            [r.code for r in reqs],
            state.trust_list,
            now_ms,
            skew_ms=self._cfg.skew_ms,
            revocations=state.mirror,
        )
        results = await asyncio.get_running_loop().run_in_executor(self._executor, check)
        outcomes = [r.outcome for r in results]
        verified_at = [now_ms] * len(reqs)
        valid = [i for i, o in enumerate(outcomes) if o == "VALID"]
        if valid:
            degraded |= await self._record_replays(reqs, results, valid, outcomes, verified_at, now_ms)
        responses = [self._response(q, r, o, t) for q, r, o, t in zip(reqs, results, outcomes, verified_at)]
        metrics.record_verifications(
            (o, r.channel, r.province) for o, r in zip(outcomes, results)
        )
        if degraded:
            metrics.record_degraded_verifications(len(reqs))
        metrics.observe_verify_duration(time.perf_counter() - started)
        return responses

    async def _record_replays(
        self,
        reqs: Sequence[verifier_pb2.VerifyRequest],
        results: Sequence[yibao_core.CheckResult],
        valid: list[int],
        outcomes: list[str],
        verified_at: list[int],
        now_ms: int,
    ) -> bool:
        """Step 7 for the codes that passed 1 to 6; True if answered from the
        local record alone (degraded)."""
        fingerprints = {i: _fingerprint(reqs[i]) for i in valid}
        dead_at = {i: results[i].expires_at_ms + self._cfg.skew_ms for i in valid}  # type: ignore[operator]
        admissions = [
            Admission(
                key=replay_key(results[i].credential_id, results[i].nonce),  # type: ignore[arg-type]
                value=f"{fingerprints[i]}|{now_ms}",
                ttl_ms=max(1, dead_at[i] - now_ms),
            )
            for i in valid
        ]
        try:
            firsts: list[bytes | None] = await self._store.admit(admissions)
            degraded = False
        except (RedisError, OSError):
            self._store.failed()
            firsts = [None] * len(valid)
            degraded = True
        local = self._state.local_replay
        for i, first in zip(valid, firsts):
            r = results[i]
            mine = local.admit(
                r.credential_id,  # type: ignore[arg-type]
                r.nonce,  # type: ignore[arg-type]
                retry_key=fingerprints[i].encode(),
                dead_at_ms=dead_at[i],
                now_ms=now_ms,
            )
            if first is None:
                # New to the national record; the local one still knows codes
                # accepted here while the national store was away.
                if mine == "REPLAYED":
                    outcomes[i] = "REPLAYED"
                continue
            fingerprint, _, at = first.decode().rpartition("|")
            if fingerprint == fingerprints[i]:
                verified_at[i] = int(at)  # a retry: the first answer, token included
            else:
                outcomes[i] = "REPLAYED"
        return degraded

    def _response(
        self, req: verifier_pb2.VerifyRequest, r: yibao_core.CheckResult, outcome: str, verified_at_ms: int
    ) -> verifier_pb2.VerifyResponse:
        resp = verifier_pb2.VerifyResponse(
            request_id=req.request_id, outcome=_OUTCOME[outcome], detail=yibao_core.OUTCOME_DETAILS[outcome]
        )
        if r.credential_id is None:
            return resp
        c = resp.credential
        c.credential_id = r.credential_id
        c.presenter_id = r.presenter_id or ""
        c.insured_region = r.insured_region or ""
        c.province = r.province or ""
        c.channel = r.channel or 0
        c.issued_at.FromMilliseconds(r.issued_at_ms or 0)
        c.expires_at.FromMilliseconds(r.expires_at_ms or 0)
        c.key_id = r.key_id or ""
        c.family = bool(r.family)
        c.nonce = r.nonce or ""
        resp.cross_province = r.province != req.institution_code[1:3]
        if outcome == "REVOKED" and r.revocation_reason:
            resp.revocation_reason = _REASON[r.revocation_reason]
        elif outcome == "VALID":
            expires = verified_at_ms + 1000 * self._cfg.token_ttl_s
            resp.ec_token = tokens.mint(
                self._token_key,
                tokens.Token(
                    credential_id=r.credential_id,
                    nonce=r.nonce or "",
                    institution_code=req.institution_code,
                    insured_region=r.insured_region or "",
                    channel=r.channel or 0,
                    family=bool(r.family),
                    expires_at_ms=expires,
                ),
            )
            resp.token_expires_at.FromMilliseconds(expires)
        return resp


class Batcher:
    """Gathers single requests that arrive while a batch is being checked
    into the next batch. No waiting is added: an idle node checks a lone
    request at once; a busy one checks hundreds per round trip."""

    def __init__(self, engine: VerifyEngine, *, max_batch: int = 1000, concurrency: int = 2) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: list[tuple[verifier_pb2.VerifyRequest, asyncio.Future[verifier_pb2.VerifyResponse]]] = []
        self._ready = asyncio.Event()
        self._tasks = [asyncio.create_task(self._run()) for _ in range(concurrency)]

    async def submit(self, req: verifier_pb2.VerifyRequest) -> verifier_pb2.VerifyResponse:
        fut: asyncio.Future[verifier_pb2.VerifyResponse] = asyncio.get_running_loop().create_future()
        self._queue.append((req, fut))
        self._ready.set()
        return await fut

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            if not self._queue:
                self._ready.clear()
                continue
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            if not self._queue:
                self._ready.clear()
            try:
                responses = await self._engine.verify([req for req, _ in batch])
            except Exception as e:  # noqa: BLE001 - handed to every waiting caller
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
            else:
                for (_, fut), resp in zip(batch, responses):
                    if not fut.done():
                        fut.set_result(resp)

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
