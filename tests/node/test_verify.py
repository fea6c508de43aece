"""Verifier over gRPC against a real node (python -m server) and a real Redis.

The contract: /work/shared/spec/api.md, credential-v1.md, protos/yibao/v1.
Every test uses fresh credential ids, so one node serves the whole module.
"""

from __future__ import annotations

import os
import queue
import threading
import time

import grpc
import nodekit
import pytest
from nodekit import (
    DEFAULT_INSTITUTION,
    SKEW_MS,
    error_fields,
    new_id,
    new_rid,
    now_ms,
    ts_ms,
)
from yibao.v1 import admin_pb2, common_pb2, verifier_pb2  # noqa: E402  (generated stubs)

WS = " \t\r\n\f"
#: Outcomes decided before the clock is consulted (credential-v1 section 4, steps 1-3).
TIME_INDEPENDENT = {"MALFORMED", "UNSUPPORTED_VERSION", "UNKNOWN_KEY", "KEY_NOT_VALID"}
UNDECODED = {"MALFORMED", "UNSUPPORTED_VERSION"}
#: How far inside an edge of the validity window a reissued edge case is put.
EDGE_MARGIN_MS = 3000
TEN_MINUTES_MS = 600_000


def oname(v: int) -> str:
    return verifier_pb2.Outcome.Name(v).removeprefix("OUTCOME_")


def req(code: str, institution_code: str = DEFAULT_INSTITUTION, request_id: str | None = None):
    return verifier_pb2.VerifyRequest(code=code, institution_code=institution_code,
                                      request_id=request_id or new_rid())


@pytest.fixture(scope="module")
def vnode(module_node_factory):
    return module_node_factory.start()


@pytest.fixture(scope="module")
def stranger():
    """An issuer whose key is in no trust list."""
    return nodekit.Issuer(name="not trusted")


# --------------------------------------------------------------------------
# Expectations
# --------------------------------------------------------------------------
def expect_credential(resp, ref, code: str, institution_code: str = DEFAULT_INSTITUTION) -> None:
    """resp.credential reports exactly what the code's payload says."""
    p = ref.parse_payload(ref.payload_of(code))
    assert resp.HasField("credential"), f"credential not set for {oname(resp.outcome)}"
    c = resp.credential
    family = bool(p["flags"] & 1)
    assert c.credential_id == p["credential_id"]
    assert c.presenter_id == (p["presenter_id"] if family else "")
    assert c.family is family
    assert c.insured_region == p["insured_region"]
    assert c.province == p["insured_region"][:2]
    assert c.channel == p["channel"]
    assert ts_ms(c.issued_at) == p["issued_at_ms"]
    assert ts_ms(c.expires_at) == p["issued_at_ms"] + 1000 * p["ttl_s"]
    assert c.key_id == p["key_id"]
    assert c.nonce == p["nonce"]
    assert resp.cross_province is (p["insured_region"][:2] != institution_code[1:3])


def expect_common(resp, outcome: str, request_id: str) -> None:
    assert oname(resp.outcome) == outcome, (outcome, oname(resp.outcome), resp.detail)
    assert resp.request_id == request_id
    assert resp.detail.strip(), "detail must be a sentence for the cashier"
    if outcome == "REVOKED":
        assert resp.revocation_reason != common_pb2.REVOCATION_REASON_UNSPECIFIED
    else:
        assert resp.revocation_reason == common_pb2.REVOCATION_REASON_UNSPECIFIED
    if outcome == "VALID":
        assert resp.ec_token, "VALID carries an ec_token"
        assert len(resp.ec_token) <= 256
        assert resp.HasField("token_expires_at")
    else:
        assert resp.ec_token == ""
        assert not resp.HasField("token_expires_at")
    if outcome in UNDECODED:
        assert not resp.HasField("credential")
        assert resp.cross_province is False


# --------------------------------------------------------------------------
# The shared vectors, live
# --------------------------------------------------------------------------
def _nearest_valid(payload: bytes, cases: list[dict], ref):
    """The VALID case whose payload differs least from ``payload``, and the XOR
    difference: how a BAD_SIGNATURE vector was made from a good code."""
    best = None
    for c in cases:
        if c["outcome"] != "VALID":
            continue
        p = ref.payload_of(c["code"])
        if len(p) != len(payload):
            continue
        diff = bytes(a ^ b for a, b in zip(p, payload, strict=True))
        n = sum(1 for d in diff if d)
        if best is None or n < best[0]:
            best = (n, c, diff)
    assert best is not None and 0 < best[0] <= 8, "cannot tell how this BAD_SIGNATURE vector was made"
    _, base, diff = best
    touched = {i for i, d in enumerate(diff) if d}
    assert not touched & set(range(2, 6)), "tamper touches key_id"
    assert not touched & set(range(45, 55)), "tamper touches the time fields"
    return base, diff


def live_code(case: dict, cases: list[dict], ref, issuer) -> tuple[str, bool]:
    """The code to send for ``case`` against the live clock, and whether it
    was reissued. Cases decided before the clock is read go as they are;
    the others are reissued now with the test key and the case's fields, at
    an issued_at that puts the live clock clearly inside the case's outcome
    (edge cases: EDGE_MARGIN_MS inside the edge), and tampered the same way."""
    outcome, code = case["outcome"], case["code"]
    if outcome in TIME_INDEPENDENT:
        return code, False
    lead = code[: len(code) - len(code.lstrip(WS))]
    trail = code[len(code.rstrip(WS)):]
    payload = ref.payload_of(code)
    diff = None
    if outcome == "BAD_SIGNATURE":
        base, diff = _nearest_valid(payload, cases, ref)
        f = ref.parse_payload(ref.payload_of(base["code"]))
        delta = 1000
    else:
        assert outcome in ("VALID", "EXPIRED", "NOT_YET_VALID"), outcome
        f = ref.parse_payload(payload)
        ttl_ms = 1000 * f["ttl_s"]
        delta = case["now_ms"] - f["issued_at_ms"]  # how old the code is in the case
        if outcome == "VALID":
            lo, hi = -SKEW_MS + EDGE_MARGIN_MS, ttl_ms + SKEW_MS - EDGE_MARGIN_MS
            delta = min(max(delta, lo), hi) if lo <= hi else 0
        elif outcome == "EXPIRED":
            delta = ttl_ms + SKEW_MS + TEN_MINUTES_MS
        else:
            delta = -(SKEW_MS + TEN_MINUTES_MS)
    fresh = issuer.code(
        f["credential_id"],
        insured_region=f["insured_region"],
        channel=f["channel"],
        issued_at_ms=now_ms() - delta,
        ttl_s=f["ttl_s"],
        presenter_id=f["presenter_id"] if f["flags"] & 1 else None,
    )
    if diff is not None:
        p = ref.payload_of(fresh)
        fresh = ref.code_of(bytes(a ^ b for a, b in zip(p, diff, strict=True)))
    return lead + fresh + trail, True


def test_vector_case(vector_case, vnode, node_issuer, cases, ref):
    code, reissued = live_code(vector_case, cases, ref, node_issuer)
    rid = new_rid("vec")
    resp = vnode.verifier.Verify(req(code, request_id=rid), timeout=10)
    expect_common(resp, vector_case["outcome"], rid)
    if vector_case["outcome"] in UNDECODED:
        return
    expect_credential(resp, ref, code)
    want = vector_case.get("credential")
    if want:
        c = resp.credential
        assert c.credential_id == want["credential_id"]
        assert c.presenter_id == want["presenter_id"]
        assert c.insured_region == want["insured_region"]
        assert c.province == want["province"]
        assert c.channel == want["channel"]
        assert c.family is want["family"]
        assert ts_ms(c.expires_at) - ts_ms(c.issued_at) == want["expires_at_ms"] - want["issued_at_ms"]
        if not reissued:
            assert ts_ms(c.issued_at) == want["issued_at_ms"]
            assert c.key_id == want["key_id"]


def test_shared_vectors_are_all_covered(cases):
    """Every outcome a vector names is one this module knows how to send live."""
    known = TIME_INDEPENDENT | {"VALID", "EXPIRED", "NOT_YET_VALID", "BAD_SIGNATURE"}
    assert {c["outcome"] for c in cases} <= known


# --------------------------------------------------------------------------
# VALID and the credential
# --------------------------------------------------------------------------
def test_valid_response(vnode, node_issuer, ref):
    cid = new_id()
    code = node_issuer.code(cid, insured_region="440305", channel=3)
    rid = new_rid()
    before = now_ms()
    resp = vnode.verifier.Verify(req(code, request_id=rid), timeout=10)
    after = now_ms()
    expect_common(resp, "VALID", rid)
    expect_credential(resp, ref, code)
    assert resp.credential.credential_id == cid
    assert resp.credential.presenter_id == ""
    assert resp.credential.family is False
    assert resp.credential.channel == common_pb2.CHANNEL_ALIPAY
    assert resp.credential.key_id == node_issuer.key_id
    assert resp.cross_province is False
    # token valid 10 minutes by default
    exp = ts_ms(resp.token_expires_at)
    assert before + TEN_MINUTES_MS - 30_000 <= exp <= after + TEN_MINUTES_MS + 30_000


def test_family_code(vnode, node_issuer, ref):
    cid, guardian = new_id(), new_id()
    code = node_issuer.code(cid, presenter_id=guardian, insured_region="110105", channel=1)
    resp = vnode.verifier.Verify(req(code), timeout=10)
    assert oname(resp.outcome) == "VALID", resp.detail
    expect_credential(resp, ref, code)
    assert resp.credential.family is True
    assert resp.credential.presenter_id == guardian
    assert resp.credential.credential_id == cid


def test_lower_case_ids_are_reported_upper_case(vnode, node_issuer):
    cid = new_id().lower()
    resp = vnode.verifier.Verify(req(node_issuer.code(cid)), timeout=10)
    assert resp.credential.credential_id == cid.upper()


def test_scanner_white_space_is_ignored(vnode, node_issuer):
    code = node_issuer.code()
    assert vnode.outcome("\r\n \t" + code + " \r\n") == "VALID"


@pytest.mark.parametrize(
    ("insured_region", "institution_code", "cross"),
    [
        ("440300", "H44030000001", False),
        ("440300", "P44190000001", False),  # same province, other city
        ("440300", "P11010500001", True),
        ("110105", "H44030000001", True),
        ("650102", "H65010200001", False),
        ("650102", "P31011500001", True),
    ],
)
def test_cross_province(vnode, node_issuer, ref, insured_region, institution_code, cross):
    code = node_issuer.code(insured_region=insured_region)
    resp = vnode.verifier.Verify(req(code, institution_code=institution_code), timeout=10)
    assert oname(resp.outcome) == "VALID", resp.detail
    assert resp.cross_province is cross
    assert resp.credential.province == insured_region[:2]
    expect_credential(resp, ref, code, institution_code)


@pytest.mark.parametrize("rid_len", [1, 64])
def test_request_id_length_limits_accepted(vnode, node_issuer, rid_len):
    rid = ("x" * 63 + os.urandom(4).hex())[-rid_len:]
    resp = vnode.verifier.Verify(req(node_issuer.code(), request_id=rid), timeout=10)
    assert oname(resp.outcome) == "VALID"
    assert resp.request_id == rid


def test_empty_code_is_malformed_not_an_error(vnode):
    rid = new_rid()
    resp = vnode.verifier.Verify(req("", request_id=rid), timeout=10)
    expect_common(resp, "MALFORMED", rid)


def test_code_of_4096_characters_is_an_answer(vnode):
    """4,096 characters is the longest code the node answers (not a Base45 text: MALFORMED)."""
    resp = vnode.verifier.Verify(req("YB1:" + "a" * 4092), timeout=10)
    assert oname(resp.outcome) == "MALFORMED"


# --------------------------------------------------------------------------
# REVOKED, CHANNEL_REVOKED
# --------------------------------------------------------------------------
@pytest.mark.parametrize("reason", ["LOST", "FROZEN", "CANCELLED", "DECEASED"])
def test_revoked_with_reason(vnode, node_issuer, ref, reason):
    cid = new_id()
    assert vnode.outcome(node_issuer.code(cid)) == "VALID"
    r = vnode.revoke(cid, reason)
    assert r.credential_id == cid
    assert r.reason == common_pb2.RevocationReason.Value("REVOCATION_REASON_" + reason)
    assert r.HasField("revoked_at")
    code = node_issuer.code(cid)
    rid = new_rid()
    resp = vnode.verifier.Verify(req(code, request_id=rid), timeout=10)
    expect_common(resp, "REVOKED", rid)
    assert resp.revocation_reason == common_pb2.RevocationReason.Value("REVOCATION_REASON_" + reason)
    expect_credential(resp, ref, code)


def test_revoke_accepts_lower_case_and_is_idempotent(vnode, node_issuer):
    cid = new_id()
    r1 = vnode.revoke(cid.lower(), "LOST")
    assert r1.credential_id == cid
    r2 = vnode.revoke(cid, "LOST")  # revoking again is not an error
    assert r2.credential_id == cid
    assert vnode.outcome(node_issuer.code(cid)) == "REVOKED"


def test_restore(vnode, node_issuer):
    cid = new_id()
    vnode.revoke(cid, "FROZEN")
    assert vnode.outcome(node_issuer.code(cid)) == "REVOKED"
    r = vnode.restore(cid.lower())
    assert r.credential_id == cid
    assert r.was_revoked is True
    assert vnode.outcome(node_issuer.code(cid)) == "VALID"
    assert vnode.restore(cid).was_revoked is False  # not an error


def test_revoked_code_is_not_recorded_as_used(vnode, node_issuer):
    """The replay record is written only for codes that passed everything else."""
    cid = new_id()
    code = node_issuer.code(cid)
    vnode.revoke(cid, "LOST")
    assert vnode.outcome(code) == "REVOKED"
    vnode.restore(cid)
    assert vnode.outcome(code) == "VALID"


def test_channel_revoked(vnode, node_issuer, ref):
    cid = new_id()
    w = vnode.withdraw_channel(cid, common_pb2.CHANNEL_WECHAT)
    assert w.credential_id == cid and w.channel == common_pb2.CHANNEL_WECHAT and w.was_withdrawn is False
    assert vnode.withdraw_channel(cid, common_pb2.CHANNEL_WECHAT).was_withdrawn is True
    code = node_issuer.code(cid, channel=common_pb2.CHANNEL_WECHAT)
    rid = new_rid()
    resp = vnode.verifier.Verify(req(code, request_id=rid), timeout=10)
    expect_common(resp, "CHANNEL_REVOKED", rid)
    expect_credential(resp, ref, code)
    # other channels still work
    assert vnode.outcome(node_issuer.code(cid, channel=common_pb2.CHANNEL_ALIPAY)) == "VALID"
    assert vnode.outcome(node_issuer.code(cid, channel=common_pb2.CHANNEL_NATIONAL_APP)) == "VALID"
    rc = vnode.restore_channel(cid, common_pb2.CHANNEL_WECHAT)
    assert rc.was_withdrawn is True
    assert vnode.outcome(node_issuer.code(cid, channel=common_pb2.CHANNEL_WECHAT)) == "VALID"


def test_admin_rejects_bad_credential_id(vnode):
    for bad in ("", "XYZ", new_id()[:31], new_id() + "0"):
        with pytest.raises(grpc.RpcError) as ei:
            vnode.revoke(bad, "LOST")
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (bad, ei.value.code())
        assert "credential_id" in error_fields(ei.value), (bad, error_fields(ei.value))


def test_revoke_needs_a_reason(vnode):
    with pytest.raises(grpc.RpcError) as ei:
        vnode.admin.Revoke(admin_pb2.RevokeRequest(credential_id=new_id()), timeout=10)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "reason" in error_fields(ei.value)


def test_checks_run_in_order(vnode, node_issuer):
    """A revoked credential's expired, future or forged codes say so, not
    REVOKED; REVOKED comes before CHANNEL_REVOKED."""
    cid = new_id()
    vnode.revoke(cid, "LOST")
    vnode.withdraw_channel(cid, common_pb2.CHANNEL_WECHAT)
    assert vnode.outcome(node_issuer.code(cid, age_ms=TEN_MINUTES_MS)) == "EXPIRED"
    assert vnode.outcome(node_issuer.code(cid, age_ms=-TEN_MINUTES_MS)) == "NOT_YET_VALID"
    good = nodekit.b45_payload(node_issuer.code(cid))
    forged = good[:-1] + bytes((good[-1] ^ 1,))
    assert vnode.outcome(nodekit.code_from_payload(forged)) == "BAD_SIGNATURE"
    assert vnode.outcome(node_issuer.code(cid, channel=common_pb2.CHANNEL_WECHAT)) == "REVOKED"


def test_unknown_key(vnode, stranger, ref):
    code = stranger.code()
    rid = new_rid()
    resp = vnode.verifier.Verify(req(code, request_id=rid), timeout=10)
    expect_common(resp, "UNKNOWN_KEY", rid)
    expect_credential(resp, ref, code)


# --------------------------------------------------------------------------
# REPLAYED and the retry rule
# --------------------------------------------------------------------------
def test_replayed_with_other_request_id(vnode, node_issuer, ref):
    code = node_issuer.code()
    assert vnode.outcome(code) == "VALID"
    rid = new_rid()
    resp = vnode.verifier.Verify(req(code, request_id=rid), timeout=10)
    expect_common(resp, "REPLAYED", rid)
    expect_credential(resp, ref, code)


def test_replayed_at_other_institution_same_request_id(vnode, node_issuer):
    code = node_issuer.code()
    rid = new_rid()
    assert vnode.outcome(code, institution_code="H44030000001", request_id=rid) == "VALID"
    assert vnode.outcome(code, institution_code="P44030000002", request_id=rid) == "REPLAYED"


def test_retry_gets_the_first_answer(vnode, node_issuer):
    code = node_issuer.code()
    rid = new_rid("retry")
    first = vnode.verifier.Verify(req(code, request_id=rid), timeout=10)
    assert oname(first.outcome) == "VALID"
    for _ in range(3):
        again = vnode.verifier.Verify(req(code, request_id=rid), timeout=10)
        assert oname(again.outcome) == "VALID", again.detail
        assert again.ec_token == first.ec_token
        assert again.token_expires_at == first.token_expires_at
        assert again.credential == first.credential
        assert again.request_id == rid
    # ... and anyone else still gets REPLAYED
    assert vnode.outcome(code) == "REPLAYED"


def test_nonce_makes_codes_distinct(vnode, node_issuer):
    """Two codes of one credential with different nonces are both accepted."""
    cid = new_id()
    assert vnode.outcome(node_issuer.code(cid)) == "VALID"
    assert vnode.outcome(node_issuer.code(cid)) == "VALID"


# --------------------------------------------------------------------------
# Bad requests: INVALID_ARGUMENT naming the field, never INTERNAL/UNKNOWN
# --------------------------------------------------------------------------
BAD_REQUESTS = [
    ("missing-institution-code", {"institution_code": ""}, "institution_code"),
    ("institution-letter", {"institution_code": "X12345678901"}, "institution_code"),
    ("institution-10-digits", {"institution_code": "H4403000000"}, "institution_code"),
    ("institution-12-digits", {"institution_code": "H440300000012"}, "institution_code"),
    ("institution-not-a-province", {"institution_code": "H99030000001"}, "institution_code"),
    ("institution-non-digit", {"institution_code": "H4403000000A"}, "institution_code"),
    ("empty-request-id", {"request_id": ""}, "request_id"),
    ("request-id-65", {"request_id": "r" * 65}, "request_id"),
    ("code-4097", {"code": "YB1:" + "A" * 4093}, "code"),
    ("code-1MB", {"code": "YB1:" + "A" * (1 << 20)}, "code"),
]


@pytest.mark.parametrize(("fields", "field"), [b[1:] for b in BAD_REQUESTS], ids=[b[0] for b in BAD_REQUESTS])
def test_bad_request(vnode, node_issuer, fields, field):
    r = {"code": node_issuer.code(), "institution_code": DEFAULT_INSTITUTION, "request_id": new_rid()}
    r.update(fields)
    with pytest.raises(grpc.RpcError) as ei:
        vnode.verifier.Verify(verifier_pb2.VerifyRequest(**r), timeout=30)
    err = ei.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert field in error_fields(err), (field, error_fields(err), err.details())


def test_bad_request_does_not_use_the_code(vnode, node_issuer):
    """A refused request does not consume the code: sent properly it is VALID."""
    code = node_issuer.code()
    with pytest.raises(grpc.RpcError):
        vnode.verifier.Verify(req(code, institution_code="X12345678901"), timeout=10)
    assert vnode.outcome(code) == "VALID"


# --------------------------------------------------------------------------
# VerifyBatch
# --------------------------------------------------------------------------
def mixed(n: int, issuer, stranger, prefix: str):
    """n requests of mixed outcomes (valid, expired, malformed, unknown key,
    not yet valid, a replay of an earlier code of the same batch) and the
    outcome each must get."""
    reqs, want, cids = [], [], []
    last_valid = None
    t = now_ms()
    for i in range(n):
        k = i % 8
        inst = "H44030000001" if i % 2 == 0 else "P11010500001"
        cid = new_id()
        if k in (0, 1, 2) or (k == 7 and last_valid is None):
            code, exp = issuer.code(cid, ttl_s=300, issued_at_ms=t), "VALID"
            last_valid = (code, cid)
        elif k == 3:
            code, exp = issuer.code(cid, issued_at_ms=t - TEN_MINUTES_MS), "EXPIRED"
        elif k == 4:
            code, exp, cid = f"not a code {i}", "MALFORMED", None
        elif k == 5:
            code, exp = stranger.code(cid, ttl_s=300, issued_at_ms=t), "UNKNOWN_KEY"
        elif k == 6:
            code, exp = issuer.code(cid, issued_at_ms=t + TEN_MINUTES_MS), "NOT_YET_VALID"
        else:
            (code, cid), exp = last_valid, "REPLAYED"
        reqs.append(verifier_pb2.VerifyRequest(code=code, institution_code=inst, request_id=f"{prefix}-{i}"))
        want.append(exp)
        cids.append(cid)
    return reqs, want, cids


def check_answers(reqs, resps, want, cids):
    assert len(resps) == len(reqs)
    for i, (rq, rs) in enumerate(zip(reqs, resps, strict=True)):
        assert rs.request_id == rq.request_id, (i, rs.request_id, rq.request_id)
        assert oname(rs.outcome) == want[i], (i, want[i], oname(rs.outcome), rs.detail)
        if cids[i] is not None:
            assert rs.credential.credential_id == cids[i], i
        if want[i] == "VALID":
            assert rs.ec_token


@pytest.mark.parametrize("size", [1, 500, 1000])
def test_batch(vnode, node_issuer, stranger, size):
    reqs, want, cids = mixed(size, node_issuer, stranger, f"b{size}-{os.urandom(4).hex()}")
    resp = vnode.verifier.VerifyBatch(verifier_pb2.VerifyBatchRequest(requests=reqs), timeout=120)
    check_answers(reqs, resp.responses, want, cids)


@pytest.mark.parametrize("size", [0, 1001])
def test_batch_size_out_of_range(vnode, node_issuer, size):
    reqs = [req(node_issuer.code(), request_id=f"s{i}") for i in range(size)]
    with pytest.raises(grpc.RpcError) as ei:
        vnode.verifier.VerifyBatch(verifier_pb2.VerifyBatchRequest(requests=reqs), timeout=120)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (ei.value.code(), ei.value.details())
    assert "requests" in error_fields(ei.value), error_fields(ei.value)


def test_batch_rejects_a_bad_item_by_index(vnode, node_issuer):
    reqs = [req(node_issuer.code(), request_id=f"i{i}") for i in range(10)]
    reqs[7].request_id = ""
    with pytest.raises(grpc.RpcError) as ei:
        vnode.verifier.VerifyBatch(verifier_pb2.VerifyBatchRequest(requests=reqs), timeout=30)
    err = ei.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = error_fields(err)
    assert any(f.endswith("request_id") for f in fields), fields
    assert "7" in err.details() or any("7" in f for f in fields), (err.details(), fields)
    # nothing of the refused batch was used
    assert all(vnode.outcome(r.code) == "VALID" for r in reqs[:7])


def test_batch_equal_codes(vnode, node_issuer):
    code = node_issuer.code()
    reqs = [req(code, request_id="eq-a-" + new_rid()), req(code, request_id="eq-b-" + new_rid())]
    out = vnode.verifier.VerifyBatch(verifier_pb2.VerifyBatchRequest(requests=reqs), timeout=30).responses
    assert [oname(r.outcome) for r in out] == ["VALID", "REPLAYED"]


def test_batch_retry_gets_the_first_answers(vnode, node_issuer, stranger):
    reqs, want, cids = mixed(40, node_issuer, stranger, "bretry-" + os.urandom(4).hex())
    batch = verifier_pb2.VerifyBatchRequest(requests=reqs)
    first = vnode.verifier.VerifyBatch(batch, timeout=60).responses
    check_answers(reqs, first, want, cids)
    again = vnode.verifier.VerifyBatch(batch, timeout=60).responses
    # retried requests (same institution, request id and code) get the first answer;
    # within the batch the second of two equal codes stays REPLAYED
    check_answers(reqs, again, want, cids)
    for a, b in zip(first, again, strict=True):
        if oname(a.outcome) == "VALID":
            assert a.ec_token == b.ec_token


# --------------------------------------------------------------------------
# VerifyStream
# --------------------------------------------------------------------------
def test_stream_2000_in_order(vnode, node_issuer, stranger):
    reqs, want, cids = mixed(2000, node_issuer, stranger, "st-" + os.urandom(4).hex())
    t0 = time.monotonic()
    resps = list(vnode.verifier.VerifyStream(iter(reqs), timeout=120))
    check_answers(reqs, resps, want, cids)
    assert time.monotonic() - t0 < 120


@pytest.mark.timeout(240)
def test_stream_back_pressure_slow_reader(vnode, node_issuer, stranger):
    """5,000 requests sent as fast as the transport takes them, read slowly:
    the stream completes, in order, one answer each, in bounded time."""
    reqs, want, cids = mixed(5000, node_issuer, stranger, "bp-" + os.urandom(4).hex())
    sent = [0]

    def gen():
        for r in reqs:
            sent[0] += 1
            yield r

    t0 = time.monotonic()
    call = vnode.verifier.VerifyStream(gen(), timeout=150)
    resps, ahead = [], []
    for r in call:
        resps.append(r)
        if len(resps) % 500 == 0:
            ahead.append(sent[0] - len(resps))
            time.sleep(0.3)
    elapsed = time.monotonic() - t0
    check_answers(reqs, resps, want, cids)
    assert elapsed < 120, f"5,000 codes through a slow reader took {elapsed:.1f}s"
    print(f"back-pressure: {elapsed:.1f}s, requests consumed ahead of reader at pauses: {ahead}")


def test_stream_bad_request_ends_stream_earlier_answers_stand(vnode, node_issuer):
    q: queue.Queue = queue.Queue()

    def gen():
        for _ in range(100):
            item = q.get(timeout=60)
            if item is None:
                return
            yield item

    call = vnode.verifier.VerifyStream(gen(), timeout=60)
    try:
        good = [req(node_issuer.code(), request_id=f"sg{i}") for i in range(5)]
        for r in good:
            q.put(r)
        got = [next(call) for _ in range(5)]
        assert [g.request_id for g in got] == [r.request_id for r in good]
        assert all(oname(g.outcome) == "VALID" for g in got)
        q.put(req(node_issuer.code(), institution_code="H4403000000", request_id="sg-bad"))
        with pytest.raises(grpc.RpcError) as ei:
            for extra in call:
                pytest.fail(f"no answer expected after the bad request, got {extra}")
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT, ei.value.code()
        fields = error_fields(ei.value)
        # the field, possibly with the request's position in the stream
        assert any(f.endswith("institution_code") for f in fields), fields
    finally:
        q.put(None)
        call.cancel()


def test_stream_of_one_and_of_none(vnode, node_issuer):
    r = req(node_issuer.code())
    out = list(vnode.verifier.VerifyStream(iter([r]), timeout=30))
    assert len(out) == 1 and oname(out[0].outcome) == "VALID" and out[0].request_id == r.request_id
    assert list(vnode.verifier.VerifyStream(iter([]), timeout=30)) == []


def test_concurrent_verifies_of_one_code_accept_exactly_one(vnode, node_issuer):
    """The replay record is atomic: many callers racing with the same code,
    exactly one VALID."""
    code = node_issuer.code()
    results: list[str] = []
    lock = threading.Lock()

    def worker(i):
        o = vnode.outcome(code, request_id=f"race-{i}-{new_rid()}", timeout=30)
        with lock:
            results.append(o)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 16
    assert results.count("VALID") == 1 and results.count("REPLAYED") == 15, results


# --------------------------------------------------------------------------
# Health and reflection
# --------------------------------------------------------------------------
def test_health_and_reflection(vnode):
    from grpc_health.v1 import health_pb2
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    assert vnode.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status == \
        health_pb2.HealthCheckResponse.SERVING
    services = set(ProtoReflectionDescriptorDatabase(vnode.channel).get_services())
    assert {"yibao.v1.Verifier", "yibao.v1.Admin", "grpc.health.v1.Health"} <= services, services


# --------------------------------------------------------------------------
# Both event loops the node offers (--event-loop) serve the same answers
# --------------------------------------------------------------------------
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_node_runs_on_either_event_loop(node_factory, node_issuer, loop):
    node = node_factory.start(extra_args=("--event-loop", loop))
    assert f"event loop {loop}" in node.log_tail(200)
    code = node_issuer.code(new_id())
    first = node.verifier.Verify(req(code), timeout=10)
    assert oname(first.outcome) == "VALID", first.detail
    again = node.verifier.Verify(req(code), timeout=10)
    assert oname(again.outcome) == "REPLAYED"
    batch = node.verifier.VerifyBatch(
        verifier_pb2.VerifyBatchRequest(requests=[req(node_issuer.code(new_id())) for _ in range(20)]), timeout=10
    )
    assert [oname(r.outcome) for r in batch.responses] == ["VALID"] * 20
