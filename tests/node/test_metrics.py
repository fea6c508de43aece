"""The node's Prometheus endpoint (api.md "Metrics"), scraped over HTTP and
parsed with prometheus_client.parser, after a known mix of calls to a fresh
node (so counts can be compared exactly)."""

from __future__ import annotations

import grpc
import pytest
from nodekit import metric_sum, new_id, new_rid, poll
from yibao.v1 import verifier_pb2  # noqa: E402

VERIFIER = "yibao.v1.Verifier"


def req(code, institution_code="H44030000001", request_id=None):
    return verifier_pb2.VerifyRequest(code=code, institution_code=institution_code,
                                      request_id=request_id if request_id is not None else new_rid())


def settle(node, check, timeout=3.0):
    """Metrics may trail the answer by a moment: scrape until ``check`` holds
    (bounded), return the last scrape."""
    box = {}

    def attempt():
        box["s"] = node.metrics()
        return check(box["s"])

    poll(attempt, timeout=timeout, interval=0.1, max_tries=100)
    return box["s"]


@pytest.fixture
def exercised(node_factory, node_issuer):
    """A fresh node after: 5 VALID codes from Guangdong (44), 3 from Beijing
    (11), 2 MALFORMED, 1 REPLAYED, 1 REVOKED (by Verify); 1 VerifyBatch of 4
    VALID (44); 3 bad Verify requests (INVALID_ARGUMENT); 2 revocations."""
    node = node_factory.start()
    counts = {"ok": 0, "bad": 0}
    for _ in range(5):
        assert node.outcome(node_issuer.code(insured_region="440300")) == "VALID"
    for _ in range(3):
        assert node.outcome(node_issuer.code(insured_region="110105", channel=1)) == "VALID"
    for junk in ("", "YB1:"):
        assert node.outcome(junk) == "MALFORMED"
    code = node_issuer.code()
    assert node.outcome(code) == "VALID"
    assert node.outcome(code) == "REPLAYED"
    counts["ok"] = 5 + 3 + 2 + 2
    revoked = [new_id(), new_id()]
    for cid in revoked:
        node.revoke(cid, "LOST")
    assert node.outcome(node_issuer.code(revoked[0])) == "REVOKED"
    counts["ok"] += 1
    batch = [req(node_issuer.code()) for _ in range(4)]
    out = node.verifier.VerifyBatch(verifier_pb2.VerifyBatchRequest(requests=batch), timeout=30).responses
    assert [verifier_pb2.Outcome.Name(r.outcome) for r in out] == ["OUTCOME_VALID"] * 4
    for bad in (req(node_issuer.code(), institution_code=""),
                req(node_issuer.code(), request_id=""),
                req("YB1:" + "A" * 5000)):
        with pytest.raises(grpc.RpcError) as ei:
            node.verifier.Verify(bad, timeout=10)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        counts["bad"] += 1
    return node, counts, revoked


def test_grpc_server_handled_total(exercised):
    node, counts, _ = exercised

    def handled(s, method, code):
        return metric_sum(s, "grpc_server_handled_total", grpc_service=VERIFIER, grpc_method=method, grpc_code=code)

    s = settle(node, lambda s: handled(s, "Verify", "OK") == counts["ok"]
               and handled(s, "Verify", "INVALID_ARGUMENT") == counts["bad"])
    assert handled(s, "Verify", "OK") == counts["ok"]
    assert handled(s, "Verify", "INVALID_ARGUMENT") == counts["bad"]
    assert handled(s, "VerifyBatch", "OK") == 1
    for code in ("INTERNAL", "UNKNOWN"):
        assert not handled(s, "Verify", code)
    # handling time histogram with the same labels
    count = metric_sum(s, "grpc_server_handling_seconds_count", grpc_service=VERIFIER, grpc_method="Verify")
    assert count is not None and count >= counts["ok"] + counts["bad"], count


def test_verifications_by_outcome_province(exercised):
    node, _, _ = exercised
    s = settle(node, lambda s: metric_sum(s, "yibao_verifications_total", outcome="VALID") == 13)
    assert metric_sum(s, "yibao_verifications_total", outcome="VALID") == 5 + 3 + 1 + 4
    assert metric_sum(s, "yibao_verifications_total", outcome="VALID", province="44") == 5 + 1 + 4
    assert metric_sum(s, "yibao_verifications_total", outcome="VALID", province="11") == 3
    assert metric_sum(s, "yibao_verifications_total", outcome="MALFORMED") == 2
    assert metric_sum(s, "yibao_verifications_total", outcome="REPLAYED") == 1
    assert metric_sum(s, "yibao_verifications_total", outcome="REVOKED") == 1
    labels = {k for x in s if x.name == "yibao_verifications_total" for k in x.labels}
    assert {"outcome", "channel", "province"} <= labels, labels
    dur = metric_sum(s, "yibao_verify_duration_seconds_count")
    assert dur is not None and dur >= 13, dur


def test_state_gauges(exercised, base_trust_entries):
    node, _, revoked = exercised
    s = settle(node, lambda s: metric_sum(s, "yibao_revocations_loaded") == len(revoked))
    assert metric_sum(s, "yibao_trust_keys_loaded") == len(base_trust_entries)
    assert metric_sum(s, "yibao_revocations_loaded") == len(revoked)
    age = metric_sum(s, "yibao_revocation_sync_age_seconds")
    assert age is not None and 0 <= age < 5, f"yibao_revocation_sync_age_seconds = {age} with Redis up"
    node.restore(revoked[0])
    s = settle(node, lambda s: metric_sum(s, "yibao_revocations_loaded") == len(revoked) - 1)
    assert metric_sum(s, "yibao_revocations_loaded") == len(revoked) - 1


def test_metrics_endpoint_lists_the_contract_metrics(exercised):
    node, _, _ = exercised
    names = {x.name for x in node.metrics()}
    wanted = [
        "grpc_server_handled_total",
        "grpc_server_handling_seconds_count",
        "yibao_verifications_total",
        "yibao_verify_duration_seconds_count",
        "yibao_revocations_loaded",
        "yibao_revocation_sync_age_seconds",
        "yibao_trust_keys_loaded",
    ]
    missing = [w for w in wanted if w not in names]
    assert not missing, missing


def test_revocations_loaded_counts_what_another_node_revoked(node_factory, node_issuer):
    a, b = node_factory.start(), node_factory.start()
    for _ in range(3):
        a.revoke(new_id(), "CANCELLED")
    s = settle(b, lambda s: metric_sum(s, "yibao_revocations_loaded") == 3, timeout=5.0)
    assert metric_sum(s, "yibao_revocations_loaded") == 3
    # a node started later loads them from Redis
    c = node_factory.start()
    s = settle(c, lambda s: metric_sum(s, "yibao_revocations_loaded") == 3, timeout=5.0)
    assert metric_sum(s, "yibao_revocations_loaded") == 3
