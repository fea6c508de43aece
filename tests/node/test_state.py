"""National state across nodes, trust list reloads, Redis faults and the
node's life cycle (api.md "Where state lives", "Running a node").

Nodes of one test share a Redis database no other test uses.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import grpc
import nodekit
import pytest
from nodekit import (
    Issuer,
    NodeFactory,
    TcpProxy,
    metric_sum,
    new_id,
    new_rid,
    poll,
    write_atomically,
)
from yibao.v1 import common_pb2, verifier_pb2  # noqa: E402

WECHAT, ALIPAY = common_pb2.CHANNEL_WECHAT, common_pb2.CHANNEL_ALIPAY
PROPAGATION_S = 1.0  # api.md: enforced by every node within one second


def oname(v: int) -> str:
    return verifier_pb2.Outcome.Name(v).removeprefix("OUTCOME_")


def fresh_outcome(node, issuer, cid, channel=WECHAT) -> str:
    return node.outcome(issuer.code(cid, channel=channel))


def until(node, issuer, cid, want, timeout, channel=WECHAT):
    """Poll ``node`` with fresh codes of ``cid`` until it answers ``want``.
    Returns (seconds after the start at which the good request was sent, or
    None; the outcomes seen)."""
    seen: list[str] = []

    def attempt():
        o = fresh_outcome(node, issuer, cid, channel)
        seen.append(o)
        return o == want

    _, sent_at = poll(attempt, timeout=timeout, interval=0.01, max_tries=2000)
    return sent_at, seen


def summary(seen: list[str]) -> str:
    out, prev, n = [], None, 0
    for s in seen + [None]:
        if s == prev:
            n += 1
            continue
        if prev is not None:
            out.append(f"{prev}x{n}")
        prev, n = s, 1
    return ", ".join(out)


# --------------------------------------------------------------------------
# Propagation between live nodes
# --------------------------------------------------------------------------
def test_revocation_propagates_within_one_second(node_factory, node_issuer):
    a, b = node_factory.start(), node_factory.start()
    cid = new_id()
    assert fresh_outcome(b, node_issuer, cid) == "VALID"
    a.revoke(cid, "LOST")
    sent_at, seen = until(b, node_issuer, cid, "REVOKED", PROPAGATION_S)
    late = fresh_outcome(b, node_issuer, cid) if sent_at is None else None
    assert sent_at is not None, f"B not REVOKED within {PROPAGATION_S}s: {summary(seen)}; a moment later: {late}"
    resp = b.verify(node_issuer.code(cid))
    assert resp.revocation_reason == common_pb2.REVOCATION_REASON_LOST


def test_restore_propagates_within_one_second(node_factory, node_issuer):
    a, b = node_factory.start(), node_factory.start()
    cid = new_id()
    a.revoke(cid, "FROZEN")
    sent_at, seen = until(b, node_issuer, cid, "REVOKED", 5.0)
    assert sent_at is not None, summary(seen)
    a.restore(cid)
    sent_at, seen = until(b, node_issuer, cid, "VALID", PROPAGATION_S)
    assert sent_at is not None, f"B still not VALID {PROPAGATION_S}s after Restore: {summary(seen)}"


def test_channel_withdrawal_propagates_within_one_second(node_factory, node_issuer):
    """Channel withdrawals are national state like revocations."""
    a, b = node_factory.start(), node_factory.start()
    cid = new_id()
    a.withdraw_channel(cid, WECHAT)
    sent_at, seen = until(b, node_issuer, cid, "CHANNEL_REVOKED", PROPAGATION_S)
    assert sent_at is not None, f"B not CHANNEL_REVOKED within {PROPAGATION_S}s: {summary(seen)}"
    assert fresh_outcome(b, node_issuer, cid, ALIPAY) == "VALID"
    a.restore_channel(cid, WECHAT)
    sent_at, seen = until(b, node_issuer, cid, "VALID", PROPAGATION_S)
    assert sent_at is not None, f"B not VALID within {PROPAGATION_S}s of RestoreChannel: {summary(seen)}"


def test_replay_record_is_national(node_factory, node_issuer):
    a, b = node_factory.start(), node_factory.start()
    code = node_issuer.code()
    assert a.outcome(code) == "VALID"
    assert b.outcome(code) == "REPLAYED"
    assert a.outcome(code) == "REPLAYED"


def test_retry_at_another_node_gets_the_first_answer(node_factory, node_issuer):
    """A retry (same institution, request id and code) that a load balancer
    sends to another node returns the first answer, not REPLAYED."""
    a, b = node_factory.start(), node_factory.start()
    code, rid = node_issuer.code(), new_rid("retry")
    first = a.verify(code, request_id=rid)
    assert oname(first.outcome) == "VALID"
    again = b.verify(code, request_id=rid)
    assert oname(again.outcome) == "VALID", again.detail
    assert again.ec_token == first.ec_token
    assert b.outcome(code) == "REPLAYED"


# --------------------------------------------------------------------------
# Catching up
# --------------------------------------------------------------------------
def _three_changes(a, b, issuer):
    """cid3 revoked and seen at b; returns (cid1, cid2, cid3)."""
    cid1, cid2, cid3 = new_id(), new_id(), new_id()
    a.revoke(cid3, "CANCELLED")
    sent_at, seen = until(b, issuer, cid3, "REVOKED", 5.0)
    assert sent_at is not None, summary(seen)
    assert fresh_outcome(b, issuer, cid1) == "VALID"
    return cid1, cid2, cid3


def _caught_up(node, issuer, cid1, cid2, cid3):
    state = (
        fresh_outcome(node, issuer, cid1),
        fresh_outcome(node, issuer, cid2, WECHAT),
        fresh_outcome(node, issuer, cid3),
    )
    return state == ("REVOKED", "CHANNEL_REVOKED", "VALID"), state


def test_stopped_node_catches_up_when_it_comes_back(node_factory, node_issuer):
    a, b = node_factory.start(), node_factory.start()
    cid1, cid2, cid3 = _three_changes(a, b, node_issuer)
    assert b.stop() == 0
    a.revoke(cid1, "DECEASED")
    a.withdraw_channel(cid2, WECHAT)
    a.restore(cid3)
    b2 = node_factory.start()
    states = []

    def check():
        ok, state = _caught_up(b2, node_issuer, cid1, cid2, cid3)
        states.append(state)
        return ok

    _, sent_at = poll(check, timeout=5.0, interval=0.05, max_tries=200)
    assert sent_at is not None, f"restarted node never caught up; states seen: {states[:3]} ... {states[-1:]}"
    assert b2.verify(node_issuer.code(cid1)).revocation_reason == common_pb2.REVOCATION_REASON_DECEASED


@pytest.mark.timeout(120)
def test_disconnected_node_catches_up_when_reconnected(node_factory, node_issuer, redis_server):
    """A running node cut off from Redis (its connections dropped, so it
    misses messages) catches up once it can reach Redis again."""
    proxy = TcpProxy(redis_server.port)
    try:
        a = node_factory.start()
        b = node_factory.start(redis_url=f"redis://127.0.0.1:{proxy.port}/{node_factory.db}")
        cid1, cid2, cid3 = _three_changes(a, b, node_issuer)
        proxy.sever()
        time.sleep(1.0)
        a.revoke(cid1, "LOST")
        a.withdraw_channel(cid2, WECHAT)
        a.restore(cid3)
        time.sleep(1.5)
        # cut off, B answers from its mirror (default staleness limit: 30 s) and cannot know yet
        assert fresh_outcome(b, node_issuer, cid1) == "VALID", "B was not cut off from Redis"
        proxy.heal()
        states = []

        def check():
            try:
                ok, state = _caught_up(b, node_issuer, cid1, cid2, cid3)
            except grpc.RpcError as e:  # UNAVAILABLE is allowed while reconnecting
                assert e.code() == grpc.StatusCode.UNAVAILABLE, e
                ok, state = False, e.code().name
            states.append(state)
            return ok

        _, sent_at = poll(check, timeout=15.0, interval=0.1, max_tries=300)
        assert sent_at is not None, f"never caught up after reconnecting; states: {states[:2]} ... {states[-2:]}"
        print(f"caught up {sent_at:.2f}s after Redis was reachable again")
    finally:
        proxy.close()


# --------------------------------------------------------------------------
# Trust list
# --------------------------------------------------------------------------
def test_load_trust_list_is_shared_through_redis(node_factory, node_issuer, base_trust_entries):
    a, b = node_factory.start(), node_factory.start()
    fresh = Issuer(name="loaded at runtime")
    assert b.outcome(fresh.code()) == "UNKNOWN_KEY"
    entries = [*base_trust_entries, fresh.entry()]
    r = a.load_trust_list(nodekit.trust_list_json(entries))
    assert r.keys_loaded == len(entries)
    assert list(r.key_ids) == [e["key_id"] for e in entries]
    assert a.outcome(fresh.code()) == "VALID"
    seen: list[str] = []

    def at_b():
        seen.append(b.outcome(fresh.code()))
        return seen[-1] == "VALID"

    _, sent_at = poll(at_b, timeout=5.0, interval=0.05, max_tries=500)
    assert sent_at is not None, f"B never accepted the new key: {summary(seen)}"
    assert b.outcome(node_issuer.code()) == "VALID"


@pytest.mark.parametrize("fault", ["key-id-mismatch", "not-on-curve"])
def test_load_trust_list_refuses_a_bad_key(node_factory, node_issuer, base_trust_entries, fault):
    a = node_factory.start()
    good_new = Issuer(name="good but in a refused list")
    bad = Issuer(name="bad").entry()
    if fault == "key-id-mismatch":
        bad["key_id"] = "DEADBEEF" if bad["key_id"] != "DEADBEEF" else "FEEDFACE"
    else:
        import yibao_core

        point = bytes.fromhex("04" + "11" * 64)
        bad["public_key"] = point.hex()
        bad["key_id"] = yibao_core.sm3(point)[:4].hex().upper()
    text = nodekit.trust_list_json([*base_trust_entries, good_new.entry(), bad])
    with pytest.raises(grpc.RpcError) as ei:
        a.load_trust_list(text)
    err = ei.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    named = err.details() + " " + " ".join(
        " ".join(i.metadata.values()) for i in nodekit.error_infos(err)
    )
    assert bad["key_id"] in named.upper(), f"error does not name the key {bad['key_id']}: {named}"
    # the old list stays in force
    assert a.outcome(node_issuer.code()) == "VALID"
    assert a.outcome(good_new.code()) == "UNKNOWN_KEY"
    # ... at other nodes too
    b = node_factory.start()
    assert b.outcome(good_new.code()) == "UNKNOWN_KEY"
    assert b.outcome(node_issuer.code()) == "VALID"


@pytest.mark.timeout(120)
def test_trust_list_file_is_reloaded(node_factory, node_issuer, shared_trust_list, base_trust_entries, tmp_path):
    path = tmp_path / "trust.json"
    path.write_text(nodekit.trust_list_json(base_trust_entries), encoding="utf-8")
    node = node_factory.start(trust_list=path)
    fresh = Issuer(name="added to the file")
    assert node.outcome(fresh.code()) == "UNKNOWN_KEY"
    assert metric_sum(node.metrics(), "yibao_trust_keys_loaded") == len(base_trust_entries)

    write_atomically(path, nodekit.trust_list_json([*base_trust_entries, fresh.entry()]))
    seen: list[str] = []

    def accepted():
        seen.append(node.outcome(fresh.code()))
        return seen[-1] == "VALID"

    _, sent_at = poll(accepted, timeout=10.0, interval=0.1, max_tries=200)
    assert sent_at is not None, f"new key in the file not accepted within 10s: {summary(seen)}"
    keys, _ = poll(lambda: metric_sum(node.metrics(), "yibao_trust_keys_loaded") == len(base_trust_entries) + 1,
                   timeout=5.0, interval=0.1)
    assert keys, metric_sum(node.metrics(), "yibao_trust_keys_loaded")

    # a key removed from the file is no longer trusted (the list is replaced, not merged)
    write_atomically(path, nodekit.trust_list_json([*shared_trust_list["keys"], fresh.entry()]))
    seen.clear()

    def removed():
        seen.append(node.outcome(node_issuer.code()))
        return seen[-1] == "UNKNOWN_KEY"

    _, sent_at = poll(removed, timeout=10.0, interval=0.1, max_tries=200)
    assert sent_at is not None, f"key removed from the file still trusted after 10s: {summary(seen)}"

    # a broken file is refused: the node stays up with the list it has
    write_atomically(path, '{"version": 1, "keys": [')
    time.sleep(3.0)
    assert node.alive()
    assert node.outcome(fresh.code()) == "VALID"
    assert node.outcome(node_issuer.code()) == "UNKNOWN_KEY"


# --------------------------------------------------------------------------
# Redis faults
# --------------------------------------------------------------------------
class Load:
    """Light background load: one Verify of a fresh code every 100 ms."""

    def __init__(self, node, issuer):
        self.node, self.issuer = node, issuer
        self.records: list[tuple[float, str]] = []  # (monotonic send time, outcome or status code)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        for _ in range(3000):
            if self._stop.is_set():
                return
            sent = time.monotonic()
            try:
                res = self.node.outcome(self.issuer.code(), timeout=5)
            except grpc.RpcError as e:
                res = e.code().name
            self.records.append((sent, res))
            self._stop.wait(0.1)

    def start(self):
        self._t.start()

    def stop(self):
        self._stop.set()
        self._t.join(15)


@pytest.mark.timeout(150)
def test_redis_loss_degrades_then_unavailable_then_recovers(tmp_path, private_redis, trust_list_path, node_issuer):
    staleness = 3.0
    factory = NodeFactory(tmp_path / "nodes", private_redis, trust_list_path, db=0)
    load = None
    try:
        node = factory.start(max_staleness_s=staleness)
        revoked = new_id()
        node.revoke(revoked, "LOST")
        assert node.outcome(node_issuer.code()) == "VALID"
        load = Load(node, node_issuer)
        load.start()
        time.sleep(0.5)

        private_redis.kill9()
        t_kill = time.monotonic()

        # Within the staleness limit: answers from the mirror, replays recorded locally.
        code = node_issuer.code()
        assert node.outcome(code, timeout=5) == "VALID"
        assert node.outcome(code, timeout=5) == "REPLAYED"
        assert node.outcome(node_issuer.code(revoked), timeout=5) == "REVOKED"
        in_window = time.monotonic() - t_kill
        assert in_window < staleness, f"degraded answers took {in_window:.2f}s"

        # After it: UNAVAILABLE.
        def unavailable():
            try:
                node.verify(node_issuer.code(), timeout=5)
                return False
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.UNAVAILABLE, (e.code(), e.details())
                return True

        _, at = poll(unavailable, timeout=staleness + 7.0, interval=0.1, max_tries=500)
        assert at is not None, "Verify never answered UNAVAILABLE with Redis down"
        t_unavail = time.monotonic() - t_kill
        assert t_unavail <= staleness + 2.0, f"still answering {t_unavail:.1f}s after Redis died"

        samples = node.metrics()
        degraded = metric_sum(samples, "yibao_degraded_verifications_total")
        errors = metric_sum(samples, "yibao_redis_errors_total", store="national")
        age = metric_sum(samples, "yibao_revocation_sync_age_seconds")
        assert degraded is not None and degraded > 0, f"yibao_degraded_verifications_total = {degraded}"
        assert errors is not None and errors > 0, f'yibao_redis_errors_total{{store="national"}} = {errors}'
        assert age is not None and age >= staleness - 1.0, f"yibao_revocation_sync_age_seconds = {age}"

        # Stay down a while: the node keeps refusing (checked on the background load below).
        time.sleep(max(0.0, staleness + 4.0 - (time.monotonic() - t_kill)))

        # Redis back: the node recovers.
        t_restart = time.monotonic() - t_kill
        private_redis.restart()
        seen: list[str] = []

        def valid_again():
            try:
                seen.append(node.outcome(node_issuer.code(), timeout=5))
            except grpc.RpcError as e:
                seen.append(e.code().name)
            return seen[-1] == "VALID"

        _, at = poll(valid_again, timeout=10.0, interval=0.1, max_tries=500)
        assert at is not None, f"not VALID within 10s of Redis coming back: {summary(seen)}"
        load.stop()

        bad = [(round(t - t_kill, 2), r) for t, r in load.records if r in ("INTERNAL", "UNKNOWN", "DEADLINE_EXCEEDED")]
        assert not bad, f"background calls failed badly: {bad}"
        early = [(round(t - t_kill, 2), r) for t, r in load.records if t - t_kill < staleness - 1.0 and r != "VALID"]
        assert not early, f"refused within the staleness limit: {early}"
        late = [(round(t - t_kill, 2), r) for t, r in load.records
                if staleness + 1.5 < t - t_kill < t_restart - 0.5]
        assert len(late) >= 5, f"background load too thin to judge: {late}"
        assert all(r == "UNAVAILABLE" for _, r in late), f"past the staleness limit with Redis down: {late}"
        print(f"UNAVAILABLE {t_unavail:.2f}s after Redis died; Redis restarted at {t_restart:.2f}s; "
              f"VALID again {at:.2f}s later")
        assert node.alive()
    finally:
        if load is not None:
            load.stop()
        factory.close()


def test_unreachable_redis_at_start_exits_with_one_line(node_factory):
    dead = nodekit.free_port()
    node = node_factory.spawn(redis_url=f"redis://127.0.0.1:{dead}/0")
    rc = node.wait_exit(10)
    assert rc is not None, "node still running 10s after start with an unreachable Redis"
    assert rc != 0
    lines = [ln for ln in node.stderr_text().splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n" + "\n".join(lines[:20])
    assert "redis" in lines[0].lower(), lines[0]


# --------------------------------------------------------------------------
# Life cycle
# --------------------------------------------------------------------------
def test_sigterm_exits_zero_promptly(node_factory, node_issuer):
    node = node_factory.start()
    assert node.outcome(node_issuer.code()) == "VALID"
    t0 = time.monotonic()
    node.signal(signal.SIGTERM)
    rc = node.wait_exit(10)
    assert rc == 0, f"exit code {rc} ({time.monotonic() - t0:.1f}s after SIGTERM)"
    assert "Traceback" not in node.stderr_text()


@pytest.mark.timeout(120)
def test_sigterm_not_serving_and_in_flight_finished(node_factory, node_issuer):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    node = node_factory.start()
    statuses: list[int] = []
    watch_channel = node.new_channel()
    watch = health_pb2_grpc.HealthStub(watch_channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=60)

    def read_watch():
        try:
            for r in watch:
                statuses.append(r.status)
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=read_watch, daemon=True)
    reader.start()
    try:
        ok, _ = poll(lambda: health_pb2.HealthCheckResponse.SERVING in statuses, timeout=5.0, interval=0.05)
        assert ok, statuses

        reqs = [verifier_pb2.VerifyRequest(code=node_issuer.code(ttl_s=300), institution_code="H44030000001",
                                           request_id=f"inflight-{i}") for i in range(2000)]
        done = threading.Event()

        def gen():
            yield from reqs
            done.set()

        call = node.verifier.VerifyStream(gen(), timeout=60)
        first = next(call)
        assert done.wait(30), "the client could not hand over its requests"
        node.signal(signal.SIGTERM)
        t_term = time.monotonic()
        rest = list(call)
        resps = [first, *rest]
        assert len(resps) == len(reqs), f"{len(resps)} answers to {len(reqs)} in-flight requests"
        assert [r.request_id for r in resps] == [r.request_id for r in reqs]
        assert all(oname(r.outcome) == "VALID" for r in resps)

        ok, _ = poll(lambda: health_pb2.HealthCheckResponse.NOT_SERVING in statuses, timeout=5.0, interval=0.05)
        assert ok, f"health never went NOT_SERVING after SIGTERM: {statuses}"
        watch.cancel()
        rc = node.wait_exit(max(1.0, 15.0 - (time.monotonic() - t_term)))
        assert rc == 0, f"exit code {rc}"
    finally:
        watch.cancel()
        reader.join(10)
        watch_channel.close()


@pytest.mark.timeout(120)
def test_two_workers_share_port_state_and_metrics(node_factory, node_issuer):
    node = node_factory.start(workers=2)
    members = nodekit.process_group_members(node.pid)
    assert len(members) >= 2, f"--workers 2: processes in the node's group: {members}"

    calls = 40
    outcomes = []
    for _ in range(calls):  # one connection each, so the kernel spreads them over the workers
        ch = node.new_channel()
        try:
            stub = nodekit.stubs()[4].VerifierStub(ch)
            r = stub.Verify(verifier_pb2.VerifyRequest(code=node_issuer.code(), institution_code="H44030000001",
                                                       request_id=new_rid()), timeout=10)
            outcomes.append(oname(r.outcome))
        finally:
            ch.close()
    assert outcomes == ["VALID"] * calls

    # one national state: a code is accepted once whichever worker answers
    code = node_issuer.code()
    same = []
    for i in range(10):
        ch = node.new_channel()
        try:
            stub = nodekit.stubs()[4].VerifierStub(ch)
            r = stub.Verify(verifier_pb2.VerifyRequest(code=code, institution_code="H44030000001",
                                                       request_id=f"w-{i}"), timeout=10)
            same.append(oname(r.outcome))
        finally:
            ch.close()
    assert same.count("VALID") == 1 and same.count("REPLAYED") == 9, same

    want = calls + 10
    total, _ = poll(lambda: (metric_sum(node.metrics(), "yibao_verifications_total") or 0) >= want,
                    timeout=5.0, interval=0.2)
    got = metric_sum(node.metrics(), "yibao_verifications_total")
    assert total, f"yibao_verifications_total = {got}, expected >= {want} (both workers' verifications)"
    handled = metric_sum(node.metrics(), "grpc_server_handled_total",
                         grpc_service="yibao.v1.Verifier", grpc_method="Verify", grpc_code="OK")
    assert handled is not None and handled >= want, handled

    pgid = node.pid
    assert node.stop() == 0
    ok, _ = poll(lambda: not nodekit.process_group_members(pgid), timeout=10.0, interval=0.1)
    assert ok, f"worker processes left after exit: {nodekit.process_group_members(pgid)}"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("after_s", [0.0, 0.3, 0.8])
def test_a_node_stopped_while_its_workers_start_exits_cleanly(node_factory, after_s):
    """SIGTERM while the workers are still starting (a worker has no
    handler yet and dies of it): exit 0, no process left."""
    node = node_factory.spawn(workers=2)
    ok, _ = poll(lambda: len(nodekit.process_group_members(node.pid)) >= 3, timeout=10.0, interval=0.01)
    assert ok, f"the workers were never forked: {nodekit.process_group_members(node.pid)}"
    time.sleep(after_s)
    pgid = node.pid
    assert node.stop() == 0
    ok, _ = poll(lambda: not nodekit.process_group_members(pgid), timeout=10.0, interval=0.1)
    assert ok, f"processes left after exit: {nodekit.process_group_members(pgid)}"


@pytest.mark.timeout(60)
def test_workers_end_with_a_killed_supervisor(node_factory):
    """A supervisor killed outright (SIGKILL runs no handler) takes its
    workers with it: none is left holding the port."""
    node = node_factory.start(workers=2)
    workers = [p for p in nodekit.process_group_members(node.pid) if p != node.pid]
    assert len(workers) >= 2, workers
    os.kill(node.pid, signal.SIGKILL)
    ok, _ = poll(lambda: not set(workers) & set(nodekit.process_group_members(node.pid)), timeout=15.0, interval=0.1)
    assert ok, f"workers left after their supervisor was killed: {nodekit.process_group_members(node.pid)}"


def test_options_from_environment(node_factory, node_issuer, trust_list_path):
    port, mport = nodekit.free_port(), nodekit.free_port()
    env = {
        "YIBAO_LISTEN": f"127.0.0.1:{port}",
        "YIBAO_METRICS_LISTEN": f"127.0.0.1:{mport}",
        "YIBAO_REDIS_URL": node_factory.redis_url,
        "YIBAO_REGION": "44",
        "YIBAO_TRUST_LIST": str(trust_list_path),
        "YIBAO_MAX_STALENESS_S": "30",
        "YIBAO_WORKERS": "1",
    }
    node = node_factory.spawn(args=["--insecure"], env=env, port=port, metrics_port=mport)
    node.wait_ready(60)
    assert node.outcome(node_issuer.code()) == "VALID"
    assert metric_sum(node.metrics(), "yibao_trust_keys_loaded") == len(json.loads(trust_list_path.read_text())["keys"])


def test_insecure_mode_is_logged(node_factory):
    node = node_factory.start()
    text = (node.stderr_text() + node.stdout_path.read_text(errors="replace")).lower()
    assert "authentication" in text, "the node must log that it runs without authentication"


def test_no_plaintext_port_unless_asked(node_factory, trust_list_path):
    """Without --insecure (and without certificates) there is no plain-text
    gRPC port: the node refuses to start, or at least does not answer in
    plain text."""
    from grpc_health.v1 import health_pb2

    port, mport = nodekit.free_port(), nodekit.free_port()
    node = node_factory.spawn(
        args=["--listen", f"127.0.0.1:{port}", "--metrics-listen", f"127.0.0.1:{mport}",
              "--redis-url", node_factory.redis_url, "--trust-list", str(trust_list_path)],
        port=port, metrics_port=mport,
    )
    rc = node.wait_exit(10)
    if rc is not None:
        assert rc != 0, "exited 0 without serving"
        return
    try:
        resp = node.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=3)
    except grpc.RpcError:
        return
    pytest.fail(f"answered in plain text without --insecure: {resp}")
