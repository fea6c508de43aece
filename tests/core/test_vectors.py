"""The published credential-v1 vectors (shared/spec/vectors) through the core,
one by one and in batches, and the trust list they come with."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

import yibao_core

CREDENTIAL_FIELDS = (
    "credential_id",
    "presenter_id",
    "insured_region",
    "province",
    "channel",
    "issued_at_ms",
    "expires_at_ms",
    "key_id",
    "family",
)
UNDECODED = {"MALFORMED", "UNSUPPORTED_VERSION"}


def _run(case: dict, trust_list, skew_ms: int, code=None):
    return yibao_core.check(
        case["code"] if code is None else code, trust_list, case["now_ms"], skew_ms=skew_ms
    )


def test_case_count(cases):
    assert len(cases) == 24
    names = [c["name"] for c in cases]
    assert len(set(names)) == len(names), "case names must be unique"


def test_vector_file_settings(vectors):
    assert vectors["skew_ms"] == 5000
    assert vectors["revocations"] == []


def test_outcomes_constant(ref):
    assert len(yibao_core.OUTCOMES) == len(set(yibao_core.OUTCOMES)) == 11
    assert set(yibao_core.OUTCOMES) == set(ref.OUTCOMES)


def test_vector(vector_case, trust_list, vectors, ref):
    res = _run(vector_case, trust_list, vectors["skew_ms"])
    assert res.outcome == vector_case["outcome"], (vector_case["name"], res.outcome, res.detail)
    assert res.outcome in yibao_core.OUTCOMES
    assert isinstance(res.detail, str) and res.detail.strip(), "detail must be a sentence"

    if res.outcome in UNDECODED:
        for field in CREDENTIAL_FIELDS + ("ttl_s", "nonce"):
            assert getattr(res, field) is None, (field, getattr(res, field))
    else:
        # The payload decoded: every field is reported, and agrees with the bytes.
        p = ref.parse_payload(ref.payload_of(vector_case["code"]))
        assert res.credential_id == p["credential_id"]
        assert res.key_id == p["key_id"]
        assert res.issued_at_ms == p["issued_at_ms"]
        assert res.ttl_s == p["ttl_s"]
        assert res.expires_at_ms == p["issued_at_ms"] + 1000 * p["ttl_s"]
        assert res.nonce is not None and res.nonce.upper() == p["nonce"]
        assert res.channel == p["channel"]
        assert res.insured_region == p["insured_region"]
        assert res.province == p["insured_region"][:2]
        assert res.family is bool(p["flags"] & 1)
        assert res.presenter_id == (p["presenter_id"] if res.family else "")
    if res.outcome != "REVOKED":
        assert res.revocation_reason is None

    expected = vector_case.get("credential")
    if expected is not None:
        got = {f: getattr(res, f) for f in CREDENTIAL_FIELDS}
        assert got == expected
        assert type(res.channel) is int and type(res.family) is bool


def test_vector_as_bytes(vector_case, trust_list, vectors):
    """The code may be handed over as bytes (what a scanner produces)."""
    res = _run(vector_case, trust_list, vectors["skew_ms"], code=vector_case["code"].encode("ascii"))
    assert res.outcome == vector_case["outcome"]


def test_vector_to_dict(vector_case, trust_list, vectors):
    res = _run(vector_case, trust_list, vectors["skew_ms"])
    d = res.to_dict()
    assert d["outcome"] == res.outcome
    for field in CREDENTIAL_FIELDS + ("detail", "ttl_s", "nonce", "revocation_reason"):
        assert d[field] == getattr(res, field), field
    json.dumps(d)  # plain data


def test_default_skew_is_5000(cases, trust_list):
    """Without skew_ms the verifier uses 5 s: the edge vectors keep their outcomes."""
    for case in cases:
        if case["name"] in {"expired-last-valid-ms", "expired-first-ms", "not-yet-valid-edge-ok", "not-yet-valid"}:
            assert yibao_core.check(case["code"], trust_list, case["now_ms"]).outcome == case["outcome"]


def test_skew_is_honoured(cases, trust_list):
    by_name = {c["name"]: c for c in cases}
    code = by_name["valid-wechat-shenzhen"]["code"]
    issued, ttl = 1790000000000, 60
    assert yibao_core.check(code, trust_list, issued + ttl * 1000 - 1, skew_ms=0).outcome == "VALID"
    assert yibao_core.check(code, trust_list, issued + ttl * 1000, skew_ms=0).outcome == "EXPIRED"
    assert yibao_core.check(code, trust_list, issued - 1, skew_ms=0).outcome == "NOT_YET_VALID"
    assert yibao_core.check(code, trust_list, issued + ttl * 1000 + 29_999, skew_ms=30_000).outcome == "VALID"
    assert yibao_core.check(code, trust_list, issued - 30_000, skew_ms=30_000).outcome == "VALID"


def test_batch_matches_single(cases, trust_list, vectors):
    skew = vectors["skew_ms"]
    groups: dict[int, list[dict]] = defaultdict(list)
    for case in cases:
        groups[case["now_ms"]].append(case)
    seen = 0
    for now_ms, group in groups.items():
        batch = yibao_core.check_batch([c["code"] for c in group], trust_list, now_ms, skew_ms=skew)
        assert len(batch) == len(group)
        for case, res in zip(group, batch):
            single = yibao_core.check(case["code"], trust_list, now_ms, skew_ms=skew)
            assert res.outcome == single.outcome == case["outcome"], case["name"]
            assert res.to_dict() == single.to_dict(), case["name"]
            seen += 1
    assert seen == 24


@pytest.mark.parametrize("threads", [None, 1, 2, 7])
def test_batch_whole_file_any_threads(cases, trust_list, vectors, threads):
    """All 24 codes in one call (one clock), in input order, for any thread count."""
    now = 1790000000000
    codes = [c["code"] for c in cases] * 5
    batch = yibao_core.check_batch(codes, trust_list, now, skew_ms=vectors["skew_ms"], threads=threads)
    single = [yibao_core.check(c, trust_list, now, skew_ms=vectors["skew_ms"]).to_dict() for c in codes]
    assert [r.to_dict() for r in batch] == single


def test_batch_empty(trust_list):
    assert yibao_core.check_batch([], trust_list, 1790000000000) == []


# --------------------------------------------------------------------------
# The trust list (section 6)
# --------------------------------------------------------------------------
def test_trust_list_loads(trust_list, trust_list_text, trust_list_data):
    assert len(trust_list) == 2
    assert trust_list.key_ids == [k["key_id"] for k in trust_list_data["keys"]]
    assert trust_list.key_ids == ["8461942B", "FC4604A6"]
    assert yibao_core.TrustList.from_json(trust_list_text.encode("utf-8")).key_ids == trust_list.key_ids


def test_trust_list_wrong_key_id_refused(trust_list_data):
    data = json.loads(json.dumps(trust_list_data))
    data["keys"][1]["key_id"] = "FC4604A7"
    with pytest.raises(yibao_core.TrustListError) as ei:
        yibao_core.TrustList.from_json(json.dumps(data))
    assert "FC4604A7" in str(ei.value).upper() or "FC4604A6" in str(ei.value).upper(), str(ei.value)
    assert isinstance(ei.value, ValueError)


def test_trust_list_point_off_curve_refused(trust_list_data, ref):
    data = json.loads(json.dumps(trust_list_data))
    pub = bytearray(bytes.fromhex(data["keys"][0]["public_key"]))
    pub[-1] ^= 1  # y changed: no longer on the curve
    assert not ref.on_curve(bytes(pub))
    data["keys"][0]["public_key"] = pub.hex()
    data["keys"][0]["key_id"] = ref.sm3(bytes(pub))[:4].hex().upper()  # the id matches, the point does not
    with pytest.raises(yibao_core.TrustListError) as ei:
        yibao_core.TrustList.from_json(json.dumps(data))
    assert data["keys"][0]["key_id"] in str(ei.value).upper(), str(ei.value)


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", '{"version": 1}', '{"version": 1, "keys": [{"key_id": "8461942B"}]}'],
)
def test_trust_list_garbage_refused(text):
    with pytest.raises(ValueError):
        yibao_core.TrustList.from_json(text)


def test_empty_trust_list_knows_no_key(cases):
    tl = yibao_core.TrustList.from_json('{"version": 1, "keys": []}')
    assert len(tl) == 0
    valid = next(c for c in cases if c["name"] == "valid-wechat-shenzhen")
    assert yibao_core.check(valid["code"], tl, valid["now_ms"]).outcome == "UNKNOWN_KEY"


def test_new_trust_list_takes_effect_without_restart(cases, trust_list_data):
    """A verifier swaps lists at run time: a list without the 2026 key makes
    the same code UNKNOWN_KEY, the full list makes it VALID again."""
    valid = next(c for c in cases if c["name"] == "valid-wechat-shenzhen")
    only_old = dict(trust_list_data, keys=[trust_list_data["keys"][1]])
    tl_old = yibao_core.TrustList.from_json(json.dumps(only_old))
    tl_full = yibao_core.TrustList.from_json(json.dumps(trust_list_data))
    assert yibao_core.check(valid["code"], tl_old, valid["now_ms"]).outcome == "UNKNOWN_KEY"
    assert yibao_core.check(valid["code"], tl_full, valid["now_ms"]).outcome == "VALID"
