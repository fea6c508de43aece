"""Verification of a batch of requests: the core's checks off the event
loop with the GIL released, then the replay record in one Redis round trip
for the whole batch, then the responses. Unary calls and streams feed the
same path through `Batcher`, so load turns into larger batches, not more
round trips."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from google.protobuf import timestamp_pb2
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from redis.exceptions import RedisError

import yibao_core
from server import metrics, tokens
from server.config import Config
from server.national import CONTACT_LOST_S, NationalStore, replay_key
from server.state import NodeState
from yibao.v1 import common_pb2, verifier_pb2

_OUTCOME = {name: verifier_pb2.Outcome.Value("OUTCOME_" + name) for name in yibao_core.OUTCOMES}
_REASON = {
    name: common_pb2.RevocationReason.Value("REVOCATION_REASON_" + name)
    for name in ("LOST", "FROZEN", "CANCELLED", "DECEASED")
}
_DETAIL = yibao_core.OUTCOME_DETAILS
# Batches up to this size are checked on the event loop itself: a code costs
# the core ~25 µs, less than handing the batch to a thread and back (and the
# core would not split fewer than 16 codes over its threads anyway). Unary
# Verify under load mostly makes batches this small.
INLINE_BATCH = 8
# The range google.protobuf.Timestamp accepts (years 1 to 9999), in ms.
_MIN_MS, _MAX_MS = -62_135_596_800_000, 253_402_300_799_999


class Unavailable(Exception):
    """The national store has been away longer than --max-staleness-s."""

    reason = "NATIONAL_STORE_STALE"


class RevocationUnconfirmed(Unavailable):
    """The revocation snapshot may hold this credential and the national
    store, which alone can say, cannot be reached: neither VALID nor
    REVOKED would be sure."""

    reason = "REVOCATION_UNCONFIRMED"


def _fingerprint(req: verifier_pb2.VerifyRequest) -> str:
    """Identifies a request for the retry rule: same institution, request id and code."""
    data = f"{req.institution_code}\0{req.request_id}\0{req.code.strip()}".encode()
    return hashlib.blake2b(data, digest_size=12).hexdigest()


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

    async def verify(
        self,
        reqs: Sequence[verifier_pb2.VerifyRequest],
        into: RepeatedCompositeFieldContainer[verifier_pb2.VerifyResponse] | None = None,
    ) -> list[verifier_pb2.VerifyResponse | RevocationUnconfirmed]:
        """The answers, in order. With `into` (a VerifyBatchResponse's
        responses) they are built in place there, not copied in after. A
        code the revocation snapshot may hold, while the national store
        cannot be asked, gets RevocationUnconfirmed in its place."""
        started = time.perf_counter()
        store, state = self._store, self._state
        stale_for = store.since_contact()
        if stale_for > self._cfg.max_staleness_s:
            raise Unavailable(
                f"the national store has been unreachable for {stale_for:.0f} s "
                f"(limit {self._cfg.max_staleness_s:g} s); retry"
            )
        degraded = stale_for > CONTACT_LOST_S
        now_ms = time.time_ns() // 1_000_000
        codes = [r.code for r in reqs]
        trust, mirror, skew_ms = state.trust_list, state.mirror, self._cfg.skew_ms
        if len(codes) <= INLINE_BATCH:
            check = yibao_core.check
            results = [check(c, trust, now_ms, skew_ms=skew_ms, revocations=mirror) for c in codes]
        else:
            batch = partial(yibao_core.check_batch, codes, trust, now_ms, skew_ms=skew_ms, revocations=mirror)
            results = await asyncio.get_running_loop().run_in_executor(self._executor, batch)
        outcomes = [r.outcome for r in results]
        reasons: list[str | None] = [r.revocation_reason for r in results]
        unconfirmable: set[int] = set()
        unconfirmed = [i for i, r in enumerate(results) if r.revocation_unconfirmed]
        if unconfirmed:
            unconfirmable = await self._confirm_revocations(results, unconfirmed, outcomes, reasons)
            degraded |= bool(unconfirmable)
        verified_at = [now_ms] * len(reqs)
        valid = [i for i, o in enumerate(outcomes) if o == "VALID" and i not in unconfirmable]
        if valid:
            degraded |= await self._record_replays(reqs, results, valid, outcomes, verified_at, now_ms)
        new = verifier_pb2.VerifyResponse if into is None else into.add
        responses: list[verifier_pb2.VerifyResponse | RevocationUnconfirmed] = [
            self._response(new, q, r, o, t, why)
            if i not in unconfirmable
            else RevocationUnconfirmed(
                f"credential {r.credential_id} may be revoked and the national store, which alone can say, "
                "is unreachable; retry"
            )
            for i, (q, r, o, t, why) in enumerate(zip(reqs, results, outcomes, verified_at, reasons))
        ]
        metrics.record_verifications(
            (o, r.channel, r.province) for o, r in zip(outcomes, results)
        )
        if degraded:
            metrics.record_degraded_verifications(len(reqs))
        metrics.observe_verify_duration(time.perf_counter() - started)
        return responses

    async def _confirm_revocations(
        self,
        results: Sequence[yibao_core.CheckResult],
        unconfirmed: list[int],
        outcomes: list[str],
        reasons: list[str | None],
    ) -> set[int]:
        """Step 6 for the codes the revocation snapshot may hold: the stored
        reason decides. Returns those the store could not be asked about."""
        ids = [bytes.fromhex(results[i].credential_id) for i in unconfirmed]  # type: ignore[arg-type]
        try:
            stored = await self._store.revocation_reasons(ids)
        except (RedisError, OSError):
            self._store.failed()
            return set(unconfirmed)
        for i, reason in zip(unconfirmed, stored):
            if reason is not None:
                outcomes[i], reasons[i] = "REVOKED", reason
        return set()

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
        skew_ms = self._cfg.skew_ms
        # Per valid code, in one pass: the replay key, the script's value and
        # ttl, and what the local record needs after the round trip.
        keys: list[str] = []
        args: list[str | int] = []
        fingerprints: list[str] = []
        dead_at: list[int] = []
        for i in valid:
            r = results[i]
            fingerprint = _fingerprint(reqs[i])
            dead = r.expires_at_ms + skew_ms  # type: ignore[operator]
            keys.append(replay_key(r.credential_id, r.nonce))  # type: ignore[arg-type]
            args += (f"{fingerprint}|{now_ms}", max(1, dead - now_ms))
            fingerprints.append(fingerprint)
            dead_at.append(dead)
        try:
            firsts: list[bytes | None] = await self._store.admit(keys, args)
            degraded = False
        except (RedisError, OSError):
            self._store.failed()
            firsts = [None] * len(valid)
            degraded = True
        local = self._state.local_replay
        for i, first, fingerprint, dead in zip(valid, firsts, fingerprints, dead_at):
            r = results[i]
            mine = local.admit(
                r.credential_id,  # type: ignore[arg-type]
                r.nonce,  # type: ignore[arg-type]
                retry_key=fingerprint.encode(),
                dead_at_ms=dead,
                now_ms=now_ms,
            )
            if first is None:
                # New to the national record; the local one still knows codes
                # accepted here while the national store was away.
                if mine == "REPLAYED":
                    outcomes[i] = "REPLAYED"
                continue
            first_fingerprint, _, at = first.decode().rpartition("|")
            if first_fingerprint == fingerprint:
                verified_at[i] = int(at)  # a retry: the first answer, token included
            else:
                outcomes[i] = "REPLAYED"
        return degraded

    def _response(
        self,
        new: Callable[..., verifier_pb2.VerifyResponse],
        req: verifier_pb2.VerifyRequest,
        r: yibao_core.CheckResult,
        outcome: str,
        verified_at_ms: int,
        revocation_reason: str | None,
    ) -> verifier_pb2.VerifyResponse:
        # Runs once per code: fields are set one by one on the message
        # (cheaper with upb than building sub-messages and copying them in),
        # timestamps without Timestamp.FromMilliseconds' Python layers.
        resp = new(request_id=req.request_id, outcome=_OUTCOME[outcome], detail=_DETAIL[outcome])
        credential_id = r.credential_id
        if credential_id is None:
            return resp
        c = resp.credential
        c.credential_id = credential_id
        c.presenter_id = r.presenter_id or ""
        c.insured_region = insured_region = r.insured_region or ""
        c.province = province = r.province or ""
        c.channel = channel = r.channel or 0
        _set_ms(c.issued_at, r.issued_at_ms or 0)
        _set_ms(c.expires_at, r.expires_at_ms or 0)
        c.key_id = r.key_id or ""
        c.family = family = bool(r.family)
        c.nonce = nonce = r.nonce or ""
        resp.cross_province = province != req.institution_code[1:3]
        if outcome == "REVOKED" and revocation_reason:
            resp.revocation_reason = _REASON[revocation_reason]
        elif outcome == "VALID":
            expires = verified_at_ms + 1000 * self._cfg.token_ttl_s
            resp.ec_token = tokens.mint_fields(
                self._token_key, credential_id, nonce, req.institution_code, insured_region, channel, family, expires
            )
            _set_ms(resp.token_expires_at, expires)
        return resp


def _set_ms(ts: timestamp_pb2.Timestamp, ms: int) -> None:
    """Set a Timestamp from milliseconds. A time beyond Timestamp's range
    (year 9999) can only come from a code that failed its checks (a forged
    issued_at, say): it is left unset rather than failing the answer, and
    with it every other code of the batch."""
    if _MIN_MS <= ms <= _MAX_MS:
        ts.seconds = ms // 1000
        ts.nanos = ms % 1000 * 1_000_000


class Batcher:
    """Gathers single requests into batches. Each batch costs a Redis round
    trip, some 200 µs of the event loop's CPU whatever its size, so under
    load the batches must grow: when requests come faster than one per
    `linger_s` on average, a runner that finds fewer than `min_batch` waiting
    gives them up to `linger_s` (2 ms) to gather. A node that is not that
    busy adds no waiting: a lone request is checked at once."""

    def __init__(
        self,
        engine: VerifyEngine,
        *,
        max_batch: int = 1000,
        concurrency: int = 2,
        linger_s: float = 0.002,
        min_batch: int = 32,
    ) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._min_batch = min_batch
        self._queue: list[tuple[verifier_pb2.VerifyRequest, asyncio.Future[verifier_pb2.VerifyResponse]]] = []
        self._ready = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        # Mean time between two submissions (exponentially weighted), from
        # idle: nobody waits until the load is real.
        self._gap_s = 1.0
        self._last_s = self._loop.time()
        self._tasks = [asyncio.create_task(self._run()) for _ in range(concurrency)]

    async def submit(self, req: verifier_pb2.VerifyRequest) -> verifier_pb2.VerifyResponse:
        now = self._loop.time()
        self._gap_s += (now - self._last_s - self._gap_s) / 16
        self._last_s = now
        fut: asyncio.Future[verifier_pb2.VerifyResponse] = self._loop.create_future()
        self._queue.append((req, fut))
        self._ready.set()
        return await fut

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            if len(self._queue) < self._min_batch and self._gap_s < self._linger_s:
                await asyncio.sleep(self._linger_s)
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
                    if fut.done():
                        continue
                    if isinstance(resp, RevocationUnconfirmed):
                        fut.set_exception(resp)
                    else:
                        fut.set_result(resp)

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
